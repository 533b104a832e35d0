//! A replica digest in the spirit of ZooKeeper's `DigestCalculator`: the wrapping
//! sum of two hashes per znode, one of its path and stat, one of its path and
//! data, so it is updated in O(1) per change, a change of the stat alone (a
//! parent's, at every create and delete below it) does not hash the data, and
//! a node keeps no hash of its data. Two members that applied the same entries
//! report the same value.
//!
//! The hash is written out here, so it is the same on every platform and Rust
//! version (`DefaultHasher` is not): eight bytes per multiply-rotate step and
//! splitmix64's finalizer. FNV-1a, a multiply per byte, was a tenth of a
//! million-znode restart.

use super::tree::{NodeStat, len_i32};

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// Fed after the path, so a node's stat and data hashes never coincide.
const STAT_DOMAIN: u64 = 1;
const DATA_DOMAIN: u64 = 2;
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

fn step(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(MULTIPLIER).rotate_left(29)
}

/// Feeds `bytes` eight at a time, then their length (so trailing zero bytes
/// count).
fn absorb(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = step(hash, u64::from_le_bytes(word));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    step(step(hash, u64::from_le_bytes(tail)), bytes.len() as u64)
}

/// splitmix64's finalizer: every input bit moves about half the output bits.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of some bytes.
pub fn hash_bytes(data: &[u8]) -> u64 {
    finish(absorb(SEED, data))
}

/// A node's path, hashed once for every hash of that node a change needs
/// (before and after, stat and data).
#[derive(Debug, Clone, Copy)]
pub struct PathHash(u64);

impl PathHash {
    /// Hashes `path`.
    pub fn new(path: &str) -> Self {
        Self(absorb(SEED, path.as_bytes()))
    }

    /// The node's share of the digest: [`PathHash::stat`] plus [`PathHash::data`].
    pub fn node(self, data: &[u8], stat: &NodeStat) -> u64 {
        self.stat(stat, len_i32(data)).wrapping_add(self.data(data))
    }

    /// Hash of the path and data (the path too, so that nodes swapping their
    /// data change the digest).
    pub fn data(self, data: &[u8]) -> u64 {
        finish(absorb(step(self.0, DATA_DOMAIN), data))
    }

    /// Hash of the path and every field of the node's whole stat (its data
    /// length among them).
    pub fn stat(self, stat: &NodeStat, data_length: i32) -> u64 {
        let words = [
            stat.czxid,
            stat.mzxid,
            stat.pzxid,
            stat.ephemeral_owner,
            stat.ctime as u64,
            stat.mtime as u64,
            u64::from(stat.version as u32),
            u64::from(stat.cversion as u32),
            u64::from(stat.aversion as u32),
            u64::from(data_length as u32),
            u64::from(stat.num_children as u32),
        ];
        finish(words.into_iter().fold(step(self.0, STAT_DOMAIN), step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::v1::Stat;

    /// The stat hash of a client's whole stat.
    fn whole(path: PathHash, stat: &Stat) -> u64 {
        path.stat(&NodeStat::from_stat(stat), stat.data_length)
    }

    /// Pinned values: members compare digests, so the hash must not move with
    /// the platform, the Rust version or a refactoring.
    #[test]
    fn hashes_are_pinned() {
        let got = [
            hash_bytes(b""),
            hash_bytes(b"a"),
            hash_bytes(b"foobar, twelve+"),
            whole(
                PathHash::new("/a"),
                &Stat {
                    czxid: 7,
                    version: -1,
                    ..Stat::default()
                },
            ),
        ];
        assert_eq!(
            got,
            [
                0x0d51_8abf_5047_0bbf,
                0x8a89_efd2_0eeb_2319,
                0xe487_eabf_d038_c3c0,
                0x384b_6555_16a7_abcd,
            ],
            "{got:#x?}"
        );
    }

    #[test]
    fn length_and_trailing_zeros_change_the_hash() {
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"a\0"));
        assert_ne!(hash_bytes(b""), hash_bytes(&[0; 8]));
        assert_ne!(hash_bytes(&[0; 8]), hash_bytes(&[0; 16]));
    }

    #[test]
    fn every_stat_field_changes_the_hash() {
        let base = Stat::default();
        let h = whole(PathHash::new("/a"), &base);
        let variants = [
            Stat { czxid: 1, ..base },
            Stat { mzxid: 1, ..base },
            Stat { pzxid: 1, ..base },
            Stat { ctime: 1, ..base },
            Stat { mtime: 1, ..base },
            Stat { version: 1, ..base },
            Stat {
                cversion: 1,
                ..base
            },
            Stat {
                aversion: 1,
                ..base
            },
            Stat {
                ephemeral_owner: 1,
                ..base
            },
            Stat {
                data_length: 1,
                ..base
            },
            Stat {
                num_children: 1,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(whole(PathHash::new("/a"), &v), h, "{v:?}");
        }
        assert_ne!(whole(PathHash::new("/b"), &base), h);
    }

    #[test]
    fn data_and_path_change_the_data_hash_and_swaps_show() {
        let (a, b) = (PathHash::new("/a"), PathHash::new("/b"));
        assert_ne!(a.data(b"x"), a.data(b"y"));
        assert_ne!(a.data(b"x"), b.data(b"x"));
        let base = NodeStat::default();
        let before = a.node(b"x", &base).wrapping_add(b.node(b"y", &base));
        let swapped = a.node(b"y", &base).wrapping_add(b.node(b"x", &base));
        assert_ne!(before, swapped);
    }
}

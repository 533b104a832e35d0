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

use coord_proto::v1::Stat;

/// Starting state of data hashes.
const DATA_SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// Starting state of stat hashes (another, so the two kinds never coincide).
const STAT_SEED: u64 = 0x8422_2325_cbf2_9ce4;
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
    finish(absorb(DATA_SEED, data))
}

/// A znode's share of the digest: [`hash_stat`] plus [`hash_data`].
pub fn hash_node(path: &str, data: &[u8], stat: &Stat) -> u64 {
    hash_stat(path, stat).wrapping_add(hash_data(path, data))
}

/// Hash of a node's path and data (the path, so that nodes swapping their data
/// change the digest).
pub fn hash_data(path: &str, data: &[u8]) -> u64 {
    finish(absorb(absorb(DATA_SEED, path.as_bytes()), data))
}

/// Hash of a node's path and every stat field.
pub fn hash_stat(path: &str, stat: &Stat) -> u64 {
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
        u64::from(stat.data_length as u32),
        u64::from(stat.num_children as u32),
    ];
    finish(
        words
            .into_iter()
            .fold(absorb(STAT_SEED, path.as_bytes()), step),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: members compare digests, so the hash must not move with
    /// the platform, the Rust version or a refactoring.
    #[test]
    fn hashes_are_pinned() {
        let got = [
            hash_bytes(b""),
            hash_bytes(b"a"),
            hash_bytes(b"foobar, twelve+"),
            hash_stat(
                "/a",
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
                0x0d3f_bc56_ad26_f3cc,
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
        let h = hash_stat("/a", &base);
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
            assert_ne!(hash_stat("/a", &v), h, "{v:?}");
        }
        assert_ne!(hash_stat("/b", &base), h);
    }

    #[test]
    fn data_and_path_change_the_data_hash_and_swaps_show() {
        assert_ne!(hash_data("/a", b"x"), hash_data("/a", b"y"));
        assert_ne!(hash_data("/a", b"x"), hash_data("/b", b"x"));
        let base = Stat::default();
        let before = hash_node("/a", b"x", &base).wrapping_add(hash_node("/b", b"y", &base));
        let swapped = hash_node("/a", b"y", &base).wrapping_add(hash_node("/b", b"x", &base));
        assert_ne!(before, swapped);
    }
}

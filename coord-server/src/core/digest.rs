//! A replica digest in the spirit of ZooKeeper's `DigestCalculator`: the wrapping
//! sum of two hashes per znode, one of its path and stat, one of its path and
//! data, so it is updated in O(1) per change, a change of the stat alone (a
//! parent's, at every create and delete below it) does not hash the data, and
//! a node keeps no hash of its data. Two members that applied the same entries
//! report the same value. FNV-1a is used because it is stable across Rust
//! versions and platforms, unlike `DefaultHasher`.

use coord_proto::v1::Stat;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// FNV-1a hash of some bytes.
pub fn hash_bytes(data: &[u8]) -> u64 {
    fnv(OFFSET, data)
}

/// A znode's share of the digest: [`hash_stat`] plus [`hash_data`].
pub fn hash_node(path: &str, data: &[u8], stat: &Stat) -> u64 {
    hash_stat(path, stat).wrapping_add(hash_data(path, data))
}

/// Hash of a node's path and data (the path, so that nodes swapping their data
/// change the digest).
pub fn hash_data(path: &str, data: &[u8]) -> u64 {
    fnv(fnv(OFFSET, path.as_bytes()), data)
}

/// Hash of a node's path and every stat field.
pub fn hash_stat(path: &str, stat: &Stat) -> u64 {
    let mut h = fnv(OFFSET, path.as_bytes());
    for v in [stat.czxid, stat.mzxid, stat.pzxid, stat.ephemeral_owner] {
        h = fnv(h, &v.to_le_bytes());
    }
    for v in [stat.ctime, stat.mtime] {
        h = fnv(h, &v.to_le_bytes());
    }
    for v in [
        stat.version,
        stat.cversion,
        stat.aversion,
        stat.data_length,
        stat.num_children,
    ] {
        h = fnv(h, &v.to_le_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(hash_bytes(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_bytes(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash_bytes(b"foobar"), 0x8594_4171_f739_67e8);
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

//! A znode's stat as the tree keeps it: ZooKeeper's stat without what the
//! node itself gives.

use coord_proto::v1::Stat;

/// ZooKeeper's stat without `data_length`, which the node's data gives. At 64
/// bytes instead of prost's 72 it lets a node (data handle and stat) fit 80
/// bytes, and with its reference counts jemalloc's 96-byte class instead of
/// 112: 16 bytes less per znode of a million-znode tree.
///
/// Nor is a counter of the children ever created kept (a sequential child's
/// suffix): every create below a node adds one to both its `cversion` and its
/// `num_children`, every delete adds one to `cversion` and takes one from
/// `num_children`, so that counter is half their sum
/// ([`NodeStat::children_created`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStat {
    /// zxid of the create.
    pub czxid: u64,
    /// zxid of the last data change (or the create).
    pub mzxid: u64,
    /// zxid of the last change of the children (or the create).
    pub pzxid: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: i64,
    /// Time of the last data change, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// The owning lease of an ephemeral node, the kind of a container or TTL
    /// node, 0 for a persistent one (`core::kind`).
    pub ephemeral_owner: u64,
    /// Data changes since the create.
    pub version: i32,
    /// Child creates and deletes since the create.
    pub cversion: i32,
    /// ACL changes (always 0: coord has no ACLs).
    pub aversion: i32,
    /// Children now.
    pub num_children: i32,
}

impl NodeStat {
    /// The stat a snapshot or a client sees, for a node holding
    /// `data_length` bytes.
    pub fn with_length(&self, data_length: i32) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            pzxid: self.pzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length,
            num_children: self.num_children,
        }
    }

    /// The tree's part of a snapshot's or a client's stat.
    pub fn from_stat(stat: &Stat) -> Self {
        Self {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            ephemeral_owner: stat.ephemeral_owner,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            num_children: stat.num_children,
        }
    }

    /// Children ever created below the node, modulo 2^31: the next
    /// sequential suffix. `cversion` counts creates plus deletes modulo 2^32
    /// and `num_children` creates minus deletes, so their sum is twice the
    /// creates modulo 2^32. Like ZooKeeper's signed 32-bit counter, the
    /// suffix does not go past 2,147,483,647 (ZooKeeper's turns negative,
    /// this one starts again at 0).
    pub fn children_created(&self) -> u64 {
        u64::from((self.cversion as u32).wrapping_add(self.num_children as u32)) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_goes_through_and_back_and_fits_64_bytes() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            pzxid: 3,
            ctime: 4,
            mtime: 5,
            version: 6,
            cversion: 7,
            aversion: 8,
            ephemeral_owner: 9,
            data_length: 10,
            num_children: 11,
        };
        assert_eq!(NodeStat::from_stat(&stat).with_length(10), stat);
        assert_eq!(size_of::<NodeStat>(), 64);
    }

    #[test]
    fn children_created_is_half_of_cversion_plus_children_even_past_the_wrap() {
        let after = |creates: u64, deletes: u64| NodeStat {
            cversion: (creates + deletes) as u32 as i32,
            num_children: i32::try_from(creates - deletes).expect("fits"),
            ..NodeStat::default()
        };
        assert_eq!(after(0, 0).children_created(), 0);
        assert_eq!(after(3, 2).children_created(), 3);
        assert_eq!(after(7, 0).children_created(), 7);
        // cversion has wrapped to negative; the suffix has not.
        assert_eq!(
            after((1 << 30) + 5, 1 << 30).children_created(),
            (1 << 30) + 5
        );
        assert_eq!(
            after((1 << 31) - 1, (1 << 31) - 10).children_created(),
            (1 << 31) - 1
        );
        // Past 2^31 creates the suffix starts again at 0.
        assert_eq!(after((1 << 31) + 2, 1 << 31).children_created(), 2);
    }
}

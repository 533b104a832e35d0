//! What kind of znode a node is. As in ZooKeeper, the kind is encoded in
//! `stat.ephemeral_owner`, so ZooKeeper users read it where they expect it:
//! 0 for persistent nodes, the owning lease id for ephemeral nodes,
//! `0x8000_0000_0000_0000` for containers and `0xFF << 56 | ttl_ms` for TTL nodes.

/// `ephemeral_owner` of a container.
pub const CONTAINER_OWNER: u64 = 0x8000_0000_0000_0000;
/// Top byte of `ephemeral_owner` of a TTL node.
const TTL_MARK: u64 = 0xFF00_0000_0000_0000;
/// Largest TTL a TTL node may have (ZooKeeper's limit: 40 bits of ms).
pub const MAX_TTL_MS: i64 = 0xFF_FFFF_FFFF;

/// The kind of a znode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Lives until deleted.
    Persistent,
    /// Owned by a lease; deleted when the lease ends.
    Ephemeral(u64),
    /// Deleted once its last child is deleted.
    Container,
    /// Deleted after this many ms without modification while childless.
    Ttl(i64),
}

impl NodeKind {
    /// Decodes `stat.ephemeral_owner`.
    pub fn of(ephemeral_owner: u64) -> Self {
        match ephemeral_owner {
            0 => Self::Persistent,
            CONTAINER_OWNER => Self::Container,
            o if o & TTL_MARK == TTL_MARK => {
                Self::Ttl(i64::try_from(o & !TTL_MARK).unwrap_or(MAX_TTL_MS))
            }
            lease => Self::Ephemeral(lease),
        }
    }

    /// Encodes it as `stat.ephemeral_owner`.
    pub fn owner(self) -> u64 {
        match self {
            Self::Persistent => 0,
            Self::Ephemeral(lease) => lease,
            Self::Container => CONTAINER_OWNER,
            Self::Ttl(ms) => TTL_MARK | u64::try_from(ms.clamp(0, MAX_TTL_MS)).unwrap_or(0),
        }
    }

    /// True for nodes that cannot have children.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, Self::Ephemeral(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_ephemeral_owner() {
        for kind in [
            NodeKind::Persistent,
            NodeKind::Ephemeral(42),
            NodeKind::Ephemeral(u64::from(u32::MAX) << 20),
            NodeKind::Container,
            NodeKind::Ttl(1),
            NodeKind::Ttl(MAX_TTL_MS),
        ] {
            assert_eq!(NodeKind::of(kind.owner()), kind, "{kind:?}");
        }
        assert_eq!(NodeKind::Ttl(1000).owner(), 0xFF00_0000_0000_03E8);
        assert_eq!(NodeKind::Container.owner(), 0x8000_0000_0000_0000);
    }
}

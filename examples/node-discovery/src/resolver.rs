//! The client-side resolver: a live view of one service's instances (the
//! discovery recipe's [`ServiceCache`], kept current by a persistent watch)
//! and a round-robin choice over it.
//!
//! Round-robin goes by instance id: each pick is the first live instance
//! whose id follows the last one picked (wrapping around). Unlike an index
//! into the list, that stays fair when instances come and go: a newcomer is
//! picked when the rotation reaches its id, within one round, and a removed
//! instance is never picked again because each pick reads the current view.

use coord_client::recipes::discovery::{
    Instance, MembershipChange, ServiceCache, ServiceDiscovery,
};
use coord_client::{Client, Error};

/// A live view of one service and the balancer's position in it.
#[derive(Debug)]
pub struct Resolver {
    cache: ServiceCache,
    last: Option<String>,
}

impl Resolver {
    /// Starts following `service` (its watch is set, and the instances read,
    /// before this returns).
    pub async fn start(client: &Client, service: &str) -> Result<Resolver, Error> {
        let cache = ServiceDiscovery::new(client.clone()).cache(service).await?;
        Ok(Resolver { cache, last: None })
    }

    /// The live instances now, ordered by id.
    pub fn instances(&self) -> Vec<Instance> {
        self.cache.instances()
    }

    /// The instances now, from which [`next_change`](Self::next_change)
    /// reports (so a printed view and the changes after it add up).
    pub fn take_snapshot(&mut self) -> Vec<Instance> {
        self.cache.take_snapshot()
    }

    /// The next membership change; `None` once the view has stopped.
    pub async fn next_change(&mut self) -> Option<Result<MembershipChange, Error>> {
        self.cache.next().await
    }

    /// The next instance in the rotation, or `None` if none is live.
    pub fn pick(&mut self) -> Option<Instance> {
        let picked = next_after(&self.cache.instances(), self.last.as_deref())?.clone();
        self.last = Some(picked.id.clone());
        Some(picked)
    }
}

/// The first instance (of `instances`, ordered by id) whose id is after
/// `last`, wrapping around to the first.
fn next_after<'a>(instances: &'a [Instance], last: Option<&str>) -> Option<&'a Instance> {
    let after = last.and_then(|last| instances.iter().find(|i| i.id.as_str() > last));
    after.or_else(|| instances.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ids: &[&str]) -> Vec<Instance> {
        ids.iter().map(|id| Instance::new(*id, "addr")).collect()
    }

    fn id(instance: Option<&Instance>) -> Option<&str> {
        instance.map(|i| i.id.as_str())
    }

    #[test]
    fn rotation_follows_ids_through_membership_changes() {
        let three = view(&["a", "b", "c"]);
        assert_eq!(id(next_after(&three, None)), Some("a"));
        assert_eq!(id(next_after(&three, Some("a"))), Some("b"));
        assert_eq!(id(next_after(&three, Some("c"))), Some("a"));
        // The last one picked is gone: the rotation goes on after its id.
        let without_b = view(&["a", "c"]);
        assert_eq!(id(next_after(&without_b, Some("b"))), Some("c"));
        // A newcomer is reached within the round.
        let with_bb = view(&["a", "b", "bb", "c"]);
        assert_eq!(id(next_after(&with_bb, Some("b"))), Some("bb"));
        assert_eq!(next_after(&[], Some("a")), None);
    }
}

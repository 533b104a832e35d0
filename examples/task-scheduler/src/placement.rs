//! Choosing a worker for a task: the live worker with the most room,
//! by load relative to capacity.
//!
//! A worker's registered load lags (it reports after it starts or finishes
//! a task), and the scheduler knows better about what it just assigned, so
//! the load assumed is the larger of the two: the reported load, and the
//! tasks assigned to the worker that are not done. A worker takes no more
//! than its capacity: tasks beyond that wait as pending, so a lost worker
//! takes at most its capacity of tasks down with it, and a worker that
//! comes late still gets a fair share.

/// One live worker, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Worker id.
    pub id: String,
    /// Tasks it runs at once (registered).
    pub capacity: u32,
    /// Tasks it says it is running (registered, lags).
    pub reported: u32,
    /// Tasks assigned to it and not done yet (the scheduler's count).
    pub outstanding: u32,
}

impl Candidate {
    /// The load assumed: the larger of the reported and the outstanding.
    pub fn load(&self) -> u32 {
        self.reported.max(self.outstanding)
    }

    /// True if it can take one more task.
    pub fn has_room(&self) -> bool {
        self.load() < self.capacity
    }
}

/// The index of the worker to give the next task: among those with room,
/// the lowest load relative to capacity (an idle worker first), then the
/// lowest load, then the lowest id. `None` if every worker is full.
pub fn choose(candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.has_room())
        .min_by(|(_, a), (_, b)| {
            // a.load/a.capacity vs b.load/b.capacity, without floats.
            let ratio_a = u64::from(a.load()) * u64::from(b.capacity);
            let ratio_b = u64::from(b.load()) * u64::from(a.capacity);
            ratio_a
                .cmp(&ratio_b)
                .then(a.load().cmp(&b.load()))
                .then(a.id.cmp(&b.id))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, capacity: u32, reported: u32, outstanding: u32) -> Candidate {
        Candidate {
            id: id.into(),
            capacity,
            reported,
            outstanding,
        }
    }

    #[test]
    fn the_least_loaded_worker_with_room_is_chosen() {
        let workers = [
            worker("a", 4, 2, 2),
            worker("b", 2, 0, 0),
            worker("c", 8, 1, 3),
        ];
        assert_eq!(choose(&workers), Some(1)); // idle
        let workers = [worker("a", 4, 2, 2), worker("c", 8, 1, 3)];
        assert_eq!(choose(&workers), Some(1)); // 3/8 < 2/4
        // A lagging report does not hide what was just assigned, nor the reverse.
        let workers = [worker("a", 2, 0, 2), worker("b", 2, 2, 0)];
        assert_eq!(choose(&workers), None);
        let workers = [worker("b", 2, 1, 1), worker("a", 2, 1, 0)];
        assert_eq!(choose(&workers), Some(1)); // tie: by id
        assert_eq!(choose(&[]), None);
        assert_eq!(choose(&[worker("z", 0, 0, 0)]), None);
    }
}

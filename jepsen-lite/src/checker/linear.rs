//! A linearizability checker in the style of Knossos and Porcupine: the
//! Wing–Gong–Lowe search with memoization (Lowe, "Testing for linearizability",
//! 2017). Operations whose outcome is unknown have no return time: they may take
//! effect at any point after their call, or never.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: how an operation (with its observed outcome)
/// transforms the state, or `None` when the outcome cannot have been observed
/// in that state.
pub trait Model {
    /// The object's state; hashed for memoization.
    type State: Clone + Eq + Hash + std::fmt::Debug;
    /// One operation with its observed outcome.
    type Op: std::fmt::Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Applies `op` at this point of a linearization.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// One operation of a history: when it was called and when it returned
/// (`None`: unknown outcome, it may still take effect at any later time).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<O> {
    /// Call time (any monotonic unit).
    pub call: u64,
    /// Return time, or `None` when the outcome is unknown.
    pub ret: Option<u64>,
    /// The operation with its outcome.
    pub op: O,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation<S> {
    /// The operation no linearization could place (index into the history).
    pub op: usize,
    /// Indexes of operations linearized before the search got stuck the deepest.
    pub linearized: Vec<usize>,
    /// The model state at that point.
    pub state: S,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<S> {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// None does.
    Violation(Violation<S>),
    /// The search explored `limit` states without deciding.
    Unknown {
        /// States explored.
        explored: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call: the node of its return.
    partner: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Doubly linked list of call and return events, sorted by time.
struct Events {
    nodes: Vec<Node>,
    head: Option<usize>,
}

impl Events {
    fn new<O>(history: &[Entry<O>]) -> Self {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * history.len());
        for (i, e) in history.iter().enumerate() {
            order.push((e.call, true, i));
            order.push((e.ret.unwrap_or(u64::MAX), false, i));
        }
        // Equal times: calls first, so touching operations count as concurrent.
        order.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
        let mut ret_node = vec![0; history.len()];
        for (pos, &(_, is_call, i)) in order.iter().enumerate() {
            if !is_call {
                ret_node[i] = pos;
            }
        }
        let last = order.len().checked_sub(1);
        let nodes = order
            .iter()
            .enumerate()
            .map(|(pos, &(_, is_call, op))| Node {
                op,
                is_call,
                partner: if is_call { ret_node[op] } else { pos },
                prev: pos.checked_sub(1),
                next: (Some(pos) != last).then_some(pos + 1),
            })
            .collect();
        Self {
            nodes,
            head: (!order.is_empty()).then_some(0),
        }
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.head = next,
        }
        if let Some(x) = next {
            self.nodes[x].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        match prev {
            Some(p) => self.nodes[p].next = Some(n),
            None => self.head = Some(n),
        }
        if let Some(x) = next {
            self.nodes[x].prev = Some(n);
        }
    }

    /// Removes a call and its return (the op is linearized).
    fn lift(&mut self, call: usize) {
        let ret = self.nodes[call].partner;
        self.unlink(call);
        self.unlink(ret);
    }

    /// Puts them back, in the reverse order of [`Events::lift`].
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].partner;
        self.relink(ret);
        self.relink(call);
    }
}

fn set_bit(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks `history` against `model`, exploring at most `limit` states.
pub fn check<M: Model>(model: &M, history: &[Entry<M::Op>], limit: usize) -> Verdict<M::State> {
    let mut events = Events::new(history);
    let mut linearized = vec![0u64; history.len().div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut deepest: Option<Violation<M::State>> = None;
    let mut cursor = events.head;
    let mut explored = 0usize;
    while let Some(n) = cursor {
        let node = events.nodes[n];
        if !node.is_call && history[node.op].ret.is_none() {
            // Only unknown-outcome operations remain: they may never take effect.
            return Verdict::Linearizable;
        }
        if node.is_call {
            explored += 1;
            if explored > limit {
                return Verdict::Unknown { explored };
            }
            if let Some(next_state) = model.step(&state, &history[node.op].op) {
                set_bit(&mut linearized, node.op, true);
                if cache.insert((linearized.clone(), next_state.clone())) {
                    stack.push((n, std::mem::replace(&mut state, next_state)));
                    events.lift(n);
                    cursor = events.head;
                    continue;
                }
                set_bit(&mut linearized, node.op, false);
            }
            cursor = node.next;
        } else {
            // This op returned before any order could place it: backtrack.
            if deepest
                .as_ref()
                .is_none_or(|d| stack.len() > d.linearized.len())
            {
                deepest = Some(Violation {
                    op: node.op,
                    linearized: stack.iter().map(|(c, _)| events.nodes[*c].op).collect(),
                    state: state.clone(),
                });
            }
            let Some((call, previous)) = stack.pop() else {
                return Verdict::Violation(deepest.unwrap_or(Violation {
                    op: node.op,
                    linearized: Vec::new(),
                    state,
                }));
            };
            state = previous;
            set_bit(&mut linearized, events.nodes[call].op, false);
            events.unlift(call);
            cursor = events.nodes[call].next;
        }
    }
    Verdict::Linearizable
}

//! One suite every [`LogStore`] must pass, run by each store's tests. `reopen`
//! (when given) closes and reopens the store, to check what survives a restart.

use std::io::Read;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, StorageError};

use super::LogStore;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 16].into(),
        ..Entry::default()
    }
}

fn snapshot(index: u64, term: u64, voters: &[u64]) -> Snapshot {
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters.to_vec();
    s.data = format!("state at {index}").into_bytes().into();
    s
}

/// The newest snapshot's data as [`LogStore::snapshot_reader`] reads it.
fn read_snapshot<S: LogStore>(store: &S) -> Option<String> {
    let mut reader = store.snapshot_reader().expect("snapshot reader")?;
    let mut data = String::new();
    reader.read_to_string(&mut data).expect("read the snapshot");
    Some(data)
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn indexes<S: LogStore>(store: &S, low: u64, high: u64, max: Option<u64>) -> Vec<u64> {
    store
        .entries(low, high, max, ctx())
        .expect("entries")
        .iter()
        .map(|e| e.index)
        .collect()
}

fn is_compacted<T: std::fmt::Debug>(r: raft::Result<T>) -> bool {
    matches!(r, Err(raft::Error::Store(StorageError::Compacted)))
}

/// Runs the whole suite: `open` makes a fresh empty store each time.
pub fn run<S: LogStore>(open: &mut dyn FnMut() -> S, reopen: Option<impl Fn(S) -> S>) {
    empty_store(open());
    append_and_read(open());
    append_overwrites_suffix(open());
    append_refuses_gaps(open());
    snapshot_and_compaction(open());
    install_snapshot_replaces_log(open());
    if let Some(reopen) = reopen {
        survives_reopen(open(), &reopen);
    }
}

fn empty_store<S: LogStore>(mut s: S) {
    assert!(!s.is_initialized());
    assert_eq!(s.first_index().expect("first"), 1);
    assert_eq!(s.last_index().expect("last"), 0);
    assert_eq!(s.term(0).expect("term 0"), 0);
    assert_eq!(s.snapshot_metadata().index, 0);
    assert_eq!(s.snapshot_bytes(), 0);
    assert_eq!(read_snapshot(&s), None);
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    };
    s.set_conf_state(&cs).expect("conf state");
    assert!(s.is_initialized());
    assert_eq!(s.initial_state().expect("state").conf_state, cs);
}

fn append_and_read<S: LogStore>(mut s: S) {
    let ents: Vec<_> = (1..=5).map(|i| entry(i, 1 + i / 3)).collect();
    s.append(&ents).expect("append");
    assert_eq!(
        (s.first_index().expect("f"), s.last_index().expect("l")),
        (1, 5)
    );
    assert_eq!(indexes(&s, 2, 5, None), [2, 3, 4]);
    assert_eq!(s.entries(1, 6, None, ctx()).expect("all"), ents);
    assert_eq!(s.term(3).expect("term"), 2);
    assert!(matches!(
        s.term(6),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    // A size limit keeps at least one entry.
    assert_eq!(indexes(&s, 1, 6, Some(0)), [1]);
    let one = u64::from(protobuf::Message::compute_size(&ents[0]));
    assert_eq!(indexes(&s, 1, 6, Some(2 * one)), [1, 2]);
    let hs = HardState {
        term: 2,
        vote: 3,
        commit: 4,
        ..HardState::default()
    };
    s.set_hard_state(&hs).expect("hard state");
    assert_eq!(s.hard_state(), hs);
    s.flush().expect("flush");
}

fn append_overwrites_suffix<S: LogStore>(mut s: S) {
    s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .expect("append");
    s.append(&[entry(3, 2), entry(4, 2)]).expect("overwrite");
    assert_eq!(s.last_index().expect("last"), 4);
    assert_eq!(s.term(3).expect("term"), 2);
    assert_eq!(s.term(2).expect("term"), 1);
    assert!(s.term(5).is_err());
    s.append(&[entry(5, 3)]).expect("extend");
    assert_eq!(indexes(&s, 1, 6, None), [1, 2, 3, 4, 5]);
}

fn append_refuses_gaps<S: LogStore>(mut s: S) {
    s.append(&[entry(1, 1)]).expect("append");
    assert!(s.append(&[entry(3, 1)]).is_err());
    assert_eq!(s.last_index().expect("last"), 1);
}

fn snapshot_and_compaction<S: LogStore>(mut s: S) {
    s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .expect("append");
    s.save_snapshot(&snapshot(6, 1, &[1]), 4).expect("snapshot");
    assert_eq!(s.first_index().expect("first"), 4);
    assert_eq!(s.last_index().expect("last"), 10);
    assert!(is_compacted(s.entries(3, 5, None, ctx())));
    assert!(is_compacted(s.term(2)));
    assert_eq!(indexes(&s, 4, 11, None), [4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(s.snapshot(0, 2).expect("snapshot").get_metadata().index, 6);
    assert!(matches!(
        s.snapshot(7, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    s.save_snapshot(&snapshot(8, 1, &[1]), 9).expect("snapshot");
    assert_eq!(s.first_index().expect("first"), 9);
    assert_eq!(s.term(8).expect("term of snapshot index"), 1);
    assert!(s.save_snapshot(&snapshot(9, 1, &[1]), 11).is_err());
    assert_eq!(s.latest_snapshot().expect("snapshot"), snapshot(8, 1, &[1]));
    assert_eq!(s.snapshot_bytes(), "state at 8".len() as u64);
    assert_eq!(read_snapshot(&s).as_deref(), Some("state at 8"));
}

fn install_snapshot_replaces_log<S: LogStore>(mut s: S) {
    s.append(&(1..=3).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .expect("append");
    let snap = snapshot(20, 4, &[1, 2, 3]);
    s.install_snapshot(&snap).expect("install");
    assert_eq!(
        (s.first_index().expect("f"), s.last_index().expect("l")),
        (21, 20)
    );
    assert_eq!(s.term(20).expect("term"), 4);
    assert_eq!(s.hard_state().commit, 20);
    assert_eq!(s.hard_state().term, 4);
    assert_eq!(
        s.initial_state().expect("state").conf_state.voters,
        [1, 2, 3]
    );
    s.append(&[entry(21, 4)]).expect("append after snapshot");
    assert_eq!(indexes(&s, 21, 22, None), [21]);
}

fn survives_reopen<S: LogStore>(mut s: S, reopen: &impl Fn(S) -> S) {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    };
    s.set_conf_state(&cs).expect("conf state");
    s.append(&(1..=8).map(|i| entry(i, 2)).collect::<Vec<_>>())
        .expect("append");
    let hs = HardState {
        term: 2,
        commit: 7,
        ..HardState::default()
    };
    s.set_hard_state(&hs).expect("hard state");
    s.save_snapshot(&snapshot(5, 2, &[1, 2, 3]), 4)
        .expect("snapshot");
    s.flush().expect("flush");
    let s = reopen(s);
    assert!(s.is_initialized());
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.initial_state().expect("state").conf_state, cs);
    assert_eq!(
        (s.first_index().expect("f"), s.last_index().expect("l")),
        (4, 8)
    );
    assert_eq!(indexes(&s, 4, 9, None), [4, 5, 6, 7, 8]);
    assert_eq!(
        s.entries(4, 9, None, ctx()).expect("entries"),
        (4..=8).map(|i| entry(i, 2)).collect::<Vec<_>>(),
        "whole entries come back"
    );
    assert_eq!(
        s.latest_snapshot().expect("snapshot"),
        snapshot(5, 2, &[1, 2, 3])
    );
    assert_eq!(read_snapshot(&s).as_deref(), Some("state at 5"));
}

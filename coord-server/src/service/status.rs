//! Builds the `Status` response from the driver's Raft view and the state machine.

use coord_proto::v1::{Member, StatusResponse};

use crate::core::StateMachine;
use crate::driver::{RaftStatus, Shared};

/// The status of this member, with every member's peer address and role.
pub fn build_status(
    shared: &Shared,
    state: &StateMachine,
    raft: RaftStatus,
    peers: &[(u64, String)],
) -> StatusResponse {
    let members = raft
        .members
        .iter()
        .map(|m| Member {
            id: m.id,
            peer_addr: peers
                .iter()
                .find(|(id, _)| *id == m.id)
                .map(|(_, addr)| addr.clone())
                .unwrap_or_default(),
            role: m.role as i32,
            match_index: m.match_index,
        })
        .collect();
    StatusResponse {
        header: Some(shared.header(state.applied())),
        role: raft.role as i32,
        commit_index: raft.commit,
        applied_index: state.applied(),
        snapshot_index: raft.snapshot_index,
        first_log_index: raft.first_index,
        last_log_index: raft.last_index,
        members,
        znode_count: state.tree().len() as u64,
        snapshots_installed: raft.snapshots_installed,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        digest: state.tree().digest(),
    }
}

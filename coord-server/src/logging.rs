//! Logging setup: tracing with `RUST_LOG` control, and raft-rs's slog output
//! routed into tracing (so `RUST_LOG=raft=debug` works).

use slog::{Drain, o};
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (stderr, `RUST_LOG`, default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A slog logger for raft-rs that forwards into tracing.
pub fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(tracing_slog::TracingSlogDrain.fuse(), o!("raft_id" => id))
}

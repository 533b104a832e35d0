//! Assembles a member: opens the store, restores the state machine, starts the
//! driver thread, the peer transport and both gRPC services, and shuts them down
//! in order (stop taking requests, flush and stop the driver, close sockets).
//! The caller binds the listeners and supplies the shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_proto::peer::peer_server::PeerServer;
use coord_proto::v1::coord_server::CoordServer;
use raft::eraftpb::ConfState;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tracing::{debug, error, info, warn};

use crate::config::{ConfigError, ServerConfig};
use crate::core::{SnapshotError, StateMachine};
use crate::driver::inbox::Inbox;
use crate::driver::{Driver, DriverConfig, DriverFatal, DriverHandle, Input, Shared};
use crate::lessor::Lessor;
use crate::listener::split_by_protocol;
use crate::service::plain::serve_plain;
use crate::service::{CoordService, Limits, PeerService, Snapshots};
use crate::storage::{DiskStore, LogStore, StoreError};
use crate::transport::{MAX_PEER_MESSAGE_BYTES, Transport, accept_peers};
use crate::watch::WatchConfig;

/// Why a member could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The data directory could not be used.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The stored snapshot does not restore.
    #[error("stored snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The Raft driver stopped on an error.
    #[error("raft driver: {0}")]
    Driver(#[from] DriverFatal),
    /// A gRPC server failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A file or thread operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The sockets a member serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Client gRPC API.
    pub client: TcpListener,
    /// Peer transport.
    pub peer: TcpListener,
}

fn open_store(config: &ServerConfig) -> Result<DiskStore, ServerError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let mut store = DiskStore::open(&config.data_dir.join("raft"), config.cache_mb << 20)?;
    if !store.is_initialized() {
        let mut voters: Vec<u64> = config.members()?.into_keys().collect();
        voters.sort_unstable();
        let conf = ConfState {
            voters: voters.clone(),
            ..ConfState::default()
        };
        store.set_conf_state(&conf)?;
        store.flush()?;
        info!(?voters, dir = %config.data_dir.display(), "initialized a new member");
    }
    Ok(store)
}

/// Runs a member until `shutdown` resolves or the driver fails.
pub async fn run(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    crate::clock::install(config.clock_skew_file.clone());
    let members = config.members()?;
    let started = Instant::now();
    let store = open_store(&config)?;
    let opened = started.elapsed();
    let state = match store.snapshot_reader()? {
        Some(mut reader) => StateMachine::restore_from(&mut reader, config.max_dedup_clients)?,
        None => StateMachine::new(config.max_dedup_clients),
    };
    info!(
        applied = state.applied(),
        znodes = state.tree().len(),
        open_ms = opened.as_millis(),
        restore_ms = (started.elapsed() - opened).as_millis(),
        "state machine restored"
    );
    let watches = WatchConfig {
        history_events: config.watch_history,
        max_watches_per_stream: config.max_watches_per_stream,
        stream_buffer: 16_384,
    };
    let shared = Arc::new(Shared::new(config.id, state, watches));
    let (inbox, mailbox) = Inbox::new()?;
    let handle = DriverHandle::new(mailbox, shared.clone(), config.request_timeout());
    let stager = store.stager();
    let transport = Transport::start(
        config.id,
        &members,
        handle.clone(),
        tokio::runtime::Handle::current(),
        stager.clone(),
    )?;
    let driver_config = DriverConfig {
        id: config.id,
        tick: config.tick(),
        election_ticks: config.election_ticks,
        heartbeat_ticks: config.heartbeat_ticks,
        snapshot_interval: config.snapshot_interval,
        snapshot_catchup_entries: config.snapshot_catchup_entries,
        request_timeout: config.request_timeout(),
        max_dedup_clients: config.max_dedup_clients,
    };
    let logger = crate::logging::raft_logger(config.id);
    let driver = Driver::new(driver_config, store, shared, inbox, transport, &logger)?;
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", config.id))
        .spawn(move || {
            let _ = done_tx.send(driver.run());
        })?;

    let mut peers: Vec<(u64, String)> = members.clone().into_iter().collect();
    peers.sort();
    let limits = Limits {
        max_data_bytes: config.max_data_bytes,
        max_multi_ops: config.max_multi_ops,
        min_lease_ttl_ms: config.min_lease_ttl_ms,
        max_lease_ttl_ms: config.max_lease_ttl_ms,
        watch_progress: Duration::from_millis(config.watch_progress_ms),
    };
    let lessor = Lessor::new(Arc::clone(handle.shared()), handle.clone(), &members)?;
    lessor.spawn();
    if config.unsafe_stale_reads {
        warn!(
            "--unsafe-stale-reads: linearizable reads skip ReadIndex and may be stale (testing only)"
        );
    }
    let service = CoordService::new(handle.clone(), Arc::clone(&lessor), limits, peers)
        .with_unsafe_stale_reads(config.unsafe_stale_reads);
    let unary_service = service.clone();
    let max_request_bytes = config.max_request_bytes;
    let coord = CoordServer::new(service)
        .max_decoding_message_size(config.max_request_bytes)
        .max_encoding_message_size(config.max_request_bytes);
    let peer = PeerServer::new(PeerService::new(
        handle.clone(),
        lessor,
        Snapshots {
            stager,
            max_dedup_clients: config.max_dedup_clients,
            restoring: Arc::default(),
        },
    ))
    .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
    let (stop, stopped) = watch::channel(false);
    let signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let client_server = Server::builder()
        .add_service(coord)
        .serve_with_incoming_shutdown(
            split_by_protocol(listeners.client, stopped.clone(), move |stream| {
                let service = unary_service.clone();
                async move {
                    if let Err(err) = serve_plain(stream, service, max_request_bytes).await {
                        debug!(%err, "plain-protocol connection dropped");
                    }
                }
            }),
            signal(stopped.clone()),
        );
    let peer_server = Server::builder()
        .add_service(peer)
        .serve_with_incoming_shutdown(
            accept_peers(listeners.peer, handle.clone(), stopped.clone()),
            signal(stopped),
        );
    let mut servers = tokio::spawn(async move { tokio::try_join!(client_server, peer_server) });
    info!(id = config.id, client = %config.client_addr, peer = %config.peer_addr, "serving");

    let outcome = tokio::select! {
        () = shutdown => {
            info!("shutdown requested");
            Ok(())
        }
        result = &mut done_rx => match result {
            Ok(Err(err)) => Err(ServerError::Driver(err)),
            _ => Ok(()),
        },
        result = &mut servers => match result {
            Ok(Err(err)) => Err(ServerError::Transport(err)),
            _ => Ok(()),
        },
    };
    if let Err(err) = &outcome {
        error!(%err, "stopping on error");
    }
    let _ = stop.send(true);
    let _ = handle.send(Input::Shutdown);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    // Snapshot streams may still be arriving: give in-flight answers a moment.
    if tokio::time::timeout(Duration::from_millis(500), &mut servers)
        .await
        .is_err()
    {
        servers.abort();
    }
    info!("stopped");
    outcome
}

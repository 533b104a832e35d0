//! `coord-server`: runs one member of a coord cluster. With no flags it starts a
//! single-member cluster on 127.0.0.1:2390 with data in `./coord-data`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use coord_server::config::ServerConfig;
use coord_server::server::{Listeners, run};
use tokio::net::TcpListener;

/// jemalloc rather than glibc's allocator: a member's memory is mostly a
/// million small long-lived nodes mixed with short-lived request buffers, and
/// glibc keeps the freed buffers' pages (about 90 B per znode after a
/// million-znode load), while jemalloc's background threads hand pages left
/// free back to the system within seconds (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, before the member listens, so a SIGTERM that comes as soon as it
/// serves shuts it down cleanly rather than killing it.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = recv(int.as_mut()) => {}
            () = recv(term.as_mut()) => {}
        }
    }
}

/// Waits for one delivery of a signal; forever if its handler could not be
/// installed.
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let client = TcpListener::bind(config.client_addr)
        .await
        .with_context(|| format!("cannot listen for clients on {}", config.client_addr))?;
    let peer = TcpListener::bind(config.peer_addr)
        .await
        .with_context(|| format!("cannot listen for peers on {}", config.peer_addr))?;
    run(config, Listeners { client, peer }, shutdown).await?;
    Ok(())
}

fn main() -> ExitCode {
    let config = ServerConfig::parse();
    coord_server::logging::init();
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%err, "jemalloc background threads unavailable: freed memory returns to the system only while allocating");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

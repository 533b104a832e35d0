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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let client = TcpListener::bind(config.client_addr)
        .await
        .with_context(|| format!("cannot listen for clients on {}", config.client_addr))?;
    let peer = TcpListener::bind(config.peer_addr)
        .await
        .with_context(|| format!("cannot listen for peers on {}", config.peer_addr))?;
    run(config, Listeners { client, peer }, shutdown_signal()).await?;
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

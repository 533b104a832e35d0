//! The smallest coord application: connect to a cluster, create a znode, read it
//! back, and update it with an optimistic, version-checked write.
//!
//! ```text
//! cargo run -p hello-coord -- 127.0.0.1:2390
//! ```
//!
//! Endpoints come from the arguments, else `COORD_ENDPOINTS`, else the default
//! single-member address.
#![allow(clippy::print_stdout)]

use anyhow::Context;
use coord_client::{Client, CreateMode, Error, Op};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut endpoints: Vec<String> = std::env::args().skip(1).collect();
    if endpoints.is_empty() {
        let env = std::env::var("COORD_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2390".into());
        endpoints = env.split(',').map(str::to_owned).collect();
    }
    let client = Client::connect(endpoints).await.context("connecting")?;

    match client
        .create("/hello", "world", CreateMode::Persistent)
        .await
    {
        Ok(created) => println!("created {} at zxid {}", created.path, created.stat.czxid),
        Err(Error::NodeExists(_)) => println!("/hello already exists"),
        Err(err) => return Err(err).context("creating /hello"),
    }

    let (data, stat) = client.get("/hello").await.context("reading /hello")?;
    println!(
        "/hello = {:?} (version {})",
        String::from_utf8_lossy(&data),
        stat.version
    );

    // Compare-and-set: only succeeds if nobody changed /hello since we read it.
    let greeting = format!("world, visit #{}", stat.version + 1);
    client
        .multi(vec![
            Op::check("/hello", stat.version),
            Op::set("/hello", greeting.clone(), stat.version),
        ])
        .await
        .context("updating /hello")?;
    println!("updated /hello to {greeting:?}");

    let seq = client
        .create("/hello-log-", greeting, CreateMode::PersistentSequential)
        .await
        .context("appending to the log")?;
    println!("appended {}", seq.path);
    Ok(())
}

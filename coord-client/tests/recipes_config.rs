//! The config recipe against a real 3-member cluster: handles on different
//! members follow each other's writes through their watch channels,
//! compare-and-set refuses stale versions, concurrent `update`s lose no
//! increment, and deleted or undecodable values keep the last good one.
#![allow(clippy::unwrap_used)]

mod recipe_support;

use std::time::Duration;

use coord_client::recipes::config::{ConfigError, ConfigHandle};
use coord_client::{Client, CreateMode, Error};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use recipe_support::{client_at, cluster};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Limits {
    max_connections: u32,
    mode: String,
}

fn limits(max_connections: u32, mode: &str) -> Limits {
    Limits {
        max_connections,
        mode: mode.to_owned(),
    }
}

/// Waits until the receiver holds `want`.
async fn until(rx: &mut watch::Receiver<Limits>, want: &Limits) {
    let seen = tokio::time::timeout(WAIT, rx.wait_for(|v| v == want))
        .await
        .map(|r| r.is_ok());
    assert_eq!(
        seen,
        Ok(true),
        "never saw {want:?}; last {:?}",
        *rx.borrow()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handles_follow_writes_and_compare_and_set_refuses_stale_versions() {
    let cluster = cluster().await;
    let path = "/config/app/limits";
    let missing = ConfigHandle::<Limits>::open(client_at(&cluster, 0).await, path).await;
    assert!(matches!(missing, Err(ConfigError::Coord(Error::NoNode(_)))));

    let default = limits(10, "safe");
    let a = ConfigHandle::open_or_create(client_at(&cluster, 0).await, path, &default)
        .await
        .unwrap();
    let b: ConfigHandle<Limits> = ConfigHandle::open_or_create(
        client_at(&cluster, 1).await,
        path,
        &limits(99, "ignored: exists"),
    )
    .await
    .unwrap();
    assert_eq!((a.get(), b.get()), (default.clone(), default.clone()));
    assert_eq!(b.version(), 0);

    let mut b_values = b.subscribe();
    let stat = a.set(&limits(20, "fast")).await.unwrap();
    assert_eq!(a.get(), limits(20, "fast")); // own write, at once
    until(&mut b_values, &limits(20, "fast")).await;
    assert_eq!(b.version(), stat.version);

    let stale = b.compare_and_set(0, &limits(1, "stale")).await.unwrap_err();
    assert!(
        matches!(stale, ConfigError::Coord(Error::BadVersion(_))),
        "{stale:?}"
    );
    b.compare_and_set(stat.version, &limits(30, "fast"))
        .await
        .unwrap();
    until(&mut a.subscribe(), &limits(30, "fast")).await;

    // Three handles add 10 each through compare-and-set loops: none is lost.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let handle: ConfigHandle<Limits> = ConfigHandle::open(client_at(&cluster, i).await, path)
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                handle
                    .update(|mut l| {
                        l.max_connections += 1;
                        l
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    until(&mut b_values, &limits(60, "fast")).await;
    until(&mut a.subscribe(), &limits(60, "fast")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_or_undecodable_values_keep_the_last_good_one() {
    let cluster = cluster().await;
    let raw = Client::connect(cluster.endpoints()).await.unwrap();
    raw.create(
        "/limits",
        "{\"max_connections\": 1, \"mode\": \"a\"}",
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    let handle: ConfigHandle<Limits> = ConfigHandle::open(client_at(&cluster, 2).await, "/limits")
        .await
        .unwrap();
    let mut values = handle.subscribe();
    assert_eq!(handle.get(), limits(1, "a"));

    raw.set("/limits", "not json", -1).await.unwrap();
    raw.set("/limits", "{\"max_connections\": 2, \"mode\": \"b\"}", -1)
        .await
        .unwrap();
    until(&mut values, &limits(2, "b")).await;

    raw.delete("/limits", -1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.get(), limits(2, "b"));
    raw.create(
        "/limits",
        "{\"max_connections\": 3, \"mode\": \"c\"}",
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    until(&mut values, &limits(3, "c")).await;
    assert_eq!(handle.version(), 0);

    raw.set("/limits", "[]", -1).await.unwrap();
    let undecodable = ConfigHandle::<Limits>::open(raw.clone(), "/limits").await;
    assert!(
        matches!(undecodable, Err(ConfigError::Decode { .. })),
        "{undecodable:?}"
    );
}

//! The first command of the README: `coord-server` with no cluster flags is a
//! working single-member cluster with its data in `./coord-data`.

use std::process::{Command, Stdio};
use std::time::Duration;

use coord_client::{Client, CreateMode};

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_single_member_keeps_data_in_coord_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = coord_testkit::free_ports(2);
    let client_addr = format!("127.0.0.1:{}", ports[0]);
    // Only the ports differ from the defaults, so the test never uses fixed ports.
    let child = Command::new(BIN)
        .args([
            "--client-addr",
            &client_addr,
            "--peer-addr",
            &format!("127.0.0.1:{}", ports[1]),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = Killed(child);
    let c = Client::builder([client_addr.clone()])
        .retry_timeout(Duration::from_secs(20))
        .build()
        .await
        .expect("client");
    let created = c
        .create("/hello", "world", CreateMode::Persistent)
        .await
        .expect("create");
    assert_eq!(created.path, "/hello");
    let status = c.status().await.expect("status");
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.header.expect("header").leader, 1);
    assert!(
        dir.path().join("coord-data").is_dir(),
        "data lives in ./coord-data"
    );
}

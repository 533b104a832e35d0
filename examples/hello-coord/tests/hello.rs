//! Runs the example against a real single-member cluster, twice: the second run
//! finds `/hello` and updates it again.

use std::process::Command;

use coord_testkit::Cluster;

fn run(endpoint: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hello-coord"))
        .arg(endpoint)
        .output()
        .expect("run hello-coord");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_runs_twice() {
    let cluster = Cluster::start(1).await;
    let endpoint = cluster.endpoints().remove(0);
    let first = run(&endpoint);
    assert!(first.contains("created /hello"), "{first}");
    assert!(
        first.contains("updated /hello to \"world, visit #1\""),
        "{first}"
    );
    assert!(first.contains("appended /hello-log-0000000001"), "{first}");
    let second = run(&endpoint);
    assert!(second.contains("/hello already exists"), "{second}");
    assert!(second.contains("version 1"), "{second}");
    assert!(
        second.contains("appended /hello-log-0000000002"),
        "{second}"
    );
}

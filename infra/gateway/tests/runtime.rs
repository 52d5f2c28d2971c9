//! The runtime host on its own, driven as the reloader drives it: a rebuild replaces idle
//! instances at once and busy ones only once their invocation has ended, so no request is cut
//! off by an edit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulso_gateway::runtime::pool::Outcome;
use pulso_gateway::runtime::{FunctionLog, FunctionSpec, Host, HostOptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A host running the fixture as `echo`, its Runtime API served on a free port; the folder of
/// links is removed when the guard drops.
struct Running {
    host: Arc<Host>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.host.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Running {
    let dir = std::env::temp_dir().join(format!("pulso-runtime-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("functions dir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_pulso-gateway-fixture"),
        dir.join("echo"),
    )
    .expect("link the fixture");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = std::fs::File::create(dir.join("functions.log")).expect("log");
    let spec = FunctionSpec {
        name: "echo".into(),
        resource: "EchoFunction".into(),
        timeout: Duration::from_secs(5),
        memory_mb: 128,
        reserved_concurrency: None,
    };
    let options = HostOptions {
        binaries: dir.clone(),
        max_instances: 4,
        idle_reap: Duration::from_secs(600),
        region: "us-east-1".into(),
        log: FunctionLog::new(Box::new(log)),
    };
    let host = Arc::new(Host::new(vec![spec], options, addr));
    let app = pulso_gateway::runtime::router(Arc::clone(&host));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Running { host, dir }
}

/// Invokes `echo` with an HTTP event for `path`; the pid of the instance that answered.
async fn pid_for(host: &Arc<Host>, path: &str) -> Value {
    let event = json!({"rawPath": path, "requestContext": {"http": {"method": "GET"}}});
    let outcome = host
        .invoke(
            "echo",
            Bytes::from(event.to_string()),
            Duration::from_secs(10),
        )
        .await
        .expect("invoked");
    let Outcome::Returned(output) = outcome else {
        panic!("echo failed: {outcome:?}");
    };
    let response: Value = serde_json::from_slice(&output).expect("json");
    let body: Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("echo json");
    body["pid"].clone()
}

/// Until every instance is parked in `/next`.
async fn settle(host: &Host) {
    for _ in 0..100 {
        let idle = host.status().iter().all(|(_, status)| {
            status["instances"]
                .as_array()
                .is_some_and(|i| i.iter().all(|i| i["state"] == "idle"))
        });
        if idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the instances never became idle");
}

#[tokio::test]
async fn a_rebuild_replaces_an_idle_instance() {
    let running = start().await;
    let before = pid_for(&running.host, "/items/1").await;
    settle(&running.host).await;
    running.host.recycle(&["echo".to_owned()]);
    let after = pid_for(&running.host, "/items/1").await;
    assert_ne!(before, after);
}

#[tokio::test]
async fn a_rebuild_lets_a_busy_instance_finish_first() {
    let running = start().await;
    let busy = pid_for(&running.host, "/items/1").await;
    settle(&running.host).await;
    let host = Arc::clone(&running.host);
    let slow = tokio::spawn(async move { pid_for(&host, "/echo/slow").await });
    // The slow invocation is running on the only instance when the rebuild lands.
    tokio::time::sleep(Duration::from_millis(150)).await;
    running.host.recycle(&["echo".to_owned()]);
    assert_eq!(
        slow.await.expect("slow call"),
        busy,
        "answered by the old instance"
    );
    let after = pid_for(&running.host, "/items/1").await;
    assert_ne!(after, busy, "then replaced");
    let status = &running.host.status()[0].1;
    assert_eq!(status["crashes"], 0);
    assert_eq!(status["errors"], 0);
}

#[tokio::test]
async fn an_unknown_function_and_an_oversized_event_are_refused_before_any_instance() {
    let running = start().await;
    let unknown = running
        .host
        .invoke("nobody", Bytes::from_static(b"{}"), Duration::from_secs(1))
        .await;
    assert!(unknown.is_err());
    let huge = Bytes::from(vec![b' '; 6 * 1024 * 1024 + 1]);
    let oversized = running
        .host
        .invoke("echo", huge, Duration::from_secs(1))
        .await;
    assert!(oversized.is_err());
    assert_eq!(running.host.status()[0].1["starts"], 0);
}

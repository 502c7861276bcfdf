//! `hubctl events tail --from-nats` against the shared JetStream server (`HUB_TEST_NATS_URL`,
//! default nats://127.0.0.1:4222): events published the way the state hub's fan-out publishes
//! them come out in order, filtered, without a hub or a token. The test's stream is its own and
//! is deleted at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_nats::jetstream;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const HUBCTL: &str = env!("CARGO_BIN_EXE_hubctl");

fn event(seq: i64, event_type: &str) -> Value {
    json!({
        "seq": seq,
        "id": uuid::Uuid::now_v7(),
        "created_at": "2026-11-23T10:00:00Z",
        "event_type": event_type,
        "summary": format!("event {seq}"),
        "author": "test",
        "detail": {},
        "prev_hash": "00".repeat(32),
        "hash": "11".repeat(32),
    })
}

#[tokio::test]
async fn tail_from_nats_follows_the_fanout_in_order() {
    let url = std::env::var("HUB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (name, prefix) = (
        format!("HUBCTLTEST_{}", &id[..12]),
        format!("hubctltest.{}", &id[..12]),
    );
    let client = async_nats::connect(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("no NATS server at {url} ({e}); start `nats-server -js`"));
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let publish = |seq: i64, t: &'static str| {
        let (js, prefix) = (js.clone(), prefix.clone());
        async move {
            let body = serde_json::to_vec(&event(seq, t)).unwrap();
            js.publish(format!("{prefix}.{t}"), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    publish(1, "task.moved").await;
    publish(2, "decision.made").await;
    publish(3, "task.moved").await;
    js.publish(format!("{prefix}.not.event"), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mut child = Command::new(HUBCTL)
        .args(["--output", "json", "events", "tail", "--from-nats", &url])
        .args([
            "--subject",
            &format!("{prefix}.>"),
            "--from-seq",
            "1",
            "--noun",
            "task",
        ])
        .env_remove("HUBCTL_TOKEN")
        .env_remove("HUBCTL_TOKEN_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |rx: &mpsc::Receiver<String>| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("hubctl printed no event within 10 s");
        serde_json::from_str(&line).unwrap()
    };
    // Event 1 is before --from-seq, event 2 is another noun, the fourth message is no event.
    assert_eq!(next(&rx)["seq"], 3);
    publish(4, "decision.made").await;
    publish(5, "task.done").await;
    let e = next(&rx);
    assert_eq!(
        (e["seq"].clone(), e["event_type"].clone()),
        (json!(5), json!("task.done"))
    );

    let _ = child.kill();
    let _ = child.wait();
    js.delete_stream(&name).await.unwrap();
}

//! Faults the hub must ride out: the state hub away while events pile up and the relay killed in
//! the middle of handing them over, the cluster away while people keep reading, and a request
//! pool held to the last connection while `/readyz` must still tell the truth.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{
    admin_url, callable, config_text, eventually, temp_dir, Setup, TempDir, TestApp, TestDb,
    STATE_HUB_TOKEN,
};
use crate::standins::{free_port, ClusterStandin};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_domain-hub");

/// How long a read may take while the cluster or the request pool is in trouble. Generous for a
/// shared two-core machine, far below any time-out that would hide a hang (2 s and more).
const QUICK: Duration = Duration::from_millis(1500);

/// The `domain-hub` binary serving `config`, killed (SIGKILL) when dropped.
struct HubProcess {
    child: Child,
    base: String,
}

impl HubProcess {
    /// Starts the binary with `text` as its config (its listen address replaced by a free port)
    /// and waits until `/readyz` answers 200.
    async fn start(dir: &TempDir, text: &str) -> HubProcess {
        let port = free_port();
        let cfg = dir.0.join(format!("hub-{port}.toml"));
        std::fs::write(
            &cfg,
            text.replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join(format!("hub-{port}.log"))).unwrap();
        let child =
            Command::new(BIN)
                .args(["--config", cfg.to_str().unwrap(), "serve"])
                .env_clear()
                .envs(std::env::vars().filter(|(k, _)| {
                    !k.starts_with("HUB_") && k != "RUST_LOG" && k != "NOTIFY_SOCKET"
                }))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
        let hub = HubProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        eventually(30, "the hub process is ready", || async {
            let r = http.get(hub.url("/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        hub
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no stop handler runs, nothing is flushed, open transactions die with the process.
    fn crash(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member's API token, written straight into the hub's database.
async fn member_token(db: &TestDb, subject: &str) -> String {
    use hub_core::auth::tokens::{generate, insert, NewToken};
    use hub_core::auth::{PrincipalKind, Role, Subject};
    let secret = generate();
    insert(
        &db.connect().await,
        &NewToken {
            name: format!("{subject} test"),
            subject: Subject::parse(subject).unwrap(),
            kind: PrincipalKind::Human,
            roles: [Role::Member].into(),
            scopes: Default::default(),
            expires_at: None,
        },
        &secret,
        "test",
    )
    .await
    .unwrap();
    secrecy::ExposeSecret::expose_secret(&secret).to_owned()
}

/// Outbox rows as (seq, idempotency key, event type, delivered?), in order.
async fn outbox_rows(db: &tokio_postgres::Client) -> Vec<(i64, String, String, bool)> {
    db.query(
        "SELECT seq, idempotency_key, event->>'event_type', delivered_at IS NOT NULL
           FROM outbox ORDER BY seq",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

const NOTES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_hub_outage_and_a_relay_killed_mid_drain_lose_and_duplicate_nothing() {
    let cluster = ClusterStandin::start();
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable = vec![
        callable(&cluster, "deployments"),
        callable(&cluster, "nodes"),
    ];
    let db = TestDb::create().await;
    let dir = temp_dir("domain-hub-faults");
    let text = config_text(&Setup::ops(&fake, Some(&cluster)), &db.url, &dir.0);
    let mut first = HubProcess::start(&dir, &text).await;
    let http = reqwest::Client::new();
    let conn = db.connect().await;
    eventually(20, "first observations stored", || async {
        let n: i64 = conn
            .query_one("SELECT count(*) FROM observations", &[])
            .await
            .unwrap()
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    eventually(10, "registered", || async {
        (!fake.state.lock().unwrap().heartbeats.is_empty()).then_some(())
    })
    .await;
    let member = member_token(&db, "bob").await;

    // The state hub goes away; people keep annotating and the cluster goes away too.
    fake.stop().await;
    for i in 1..=NOTES {
        let r = http
            .post(first.url("/api/v1/annotations"))
            .bearer_auth(&member)
            .json(&json!({"category": "incident", "target": "deployments", "text": format!("note {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "annotation {i} while the state hub is down"
        );
    }
    cluster.stop();
    conn.execute("UPDATE poll_state SET next_due_at = now()", &[])
        .await
        .unwrap();
    eventually(20, "the poller raises capability.unreachable", || async {
        outbox_rows(&conn)
            .await
            .iter()
            .any(|r| r.2 == "capability.unreachable")
            .then_some(())
    })
    .await;
    let before = outbox_rows(&conn).await;
    let pending = before.iter().filter(|r| !r.3).count();
    assert!(
        pending > NOTES,
        "every note and the outage wait in the outbox: {pending} pending"
    );

    // The state hub comes back. Half-way through the drain, it stores an event and withholds
    // the answer; the relay is killed while it waits for it.
    let watcher = {
        let state = fake.state.clone();
        let already = fake.events().len();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while state.lock().unwrap().events.len() < already + NOTES / 2 {
                assert!(Instant::now() < deadline, "the drain never got half-way");
                std::thread::sleep(Duration::from_micros(200));
            }
            state.lock().unwrap().lose_next_ack = true;
            while state.lock().unwrap().lose_next_ack {
                assert!(
                    Instant::now() < deadline,
                    "no event after the half-way mark"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    fake.start_again();
    while !watcher.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watcher.join().unwrap();
    first.crash();
    let crashed_key = {
        let s = fake.state.lock().unwrap();
        s.events.last().unwrap().0.clone()
    };
    let at_crash = outbox_rows(&conn).await;
    let row = at_crash
        .iter()
        .find(|r| r.1 == crashed_key)
        .expect("the withheld event is an outbox row");
    assert!(
        !row.3,
        "killed inside the window: stored by the state hub, not marked delivered ({crashed_key})"
    );
    let delivered_at_crash = at_crash.iter().filter(|r| r.3).count();
    assert!(
        delivered_at_crash < at_crash.len(),
        "the crash came before the end of the drain"
    );

    // A fresh process takes over the same outbox.
    let second = HubProcess::start(&dir, &text).await;
    eventually(30, "the outbox drains", || async {
        outbox_rows(&conn).await.iter().all(|r| r.3).then_some(())
    })
    .await;

    let rows = outbox_rows(&conn).await;
    let (events, requests) = {
        let s = fake.state.lock().unwrap();
        (s.events.clone(), s.event_requests.clone())
    };
    let stored_keys: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let row_keys: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        stored_keys, row_keys,
        "every outbox row stored exactly once, in outbox order"
    );
    let notes: Vec<&str> = events
        .iter()
        .filter(|(_, e)| e["event_type"] == "annotation.added")
        .map(|(_, e)| e["detail"]["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (1..=NOTES).map(|i| format!("note {i}")).collect();
    assert_eq!(notes, want, "each note once, in the order written");
    assert!(
        events
            .iter()
            .any(|(_, e)| e["event_type"] == "capability.unreachable"),
        "the poller's event arrived too"
    );
    let distinct: HashSet<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(distinct.len(), events.len(), "no key stored twice");
    let resent = requests.iter().filter(|k| **k == crashed_key).count();
    assert!(
        resent >= 2,
        "the new process sent the withheld event again with its key ({resent})"
    );

    let status: Value = http
        .get(second.url("/api/v1/status"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["outbox"]["pending"], 0, "{status}");
}

/// Sends `req` and asserts it answers `want` within [`QUICK`].
async fn quick(req: reqwest::RequestBuilder, what: &str, want: u16) -> reqwest::Response {
    let started = Instant::now();
    let r = tokio::time::timeout(QUICK, req.send())
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {QUICK:?}"))
        .unwrap();
    assert_eq!(r.status(), want, "{what}");
    assert!(started.elapsed() < QUICK, "{what}: {:?}", started.elapsed());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cluster_down_pages_and_api_answer_quickly_with_the_last_data() {
    let cluster = ClusterStandin::start();
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    fake.state.lock().unwrap().callable = vec![
        callable(&cluster, "deployments"),
        callable(&cluster, "nodes"),
    ];
    let app = TestApp::spawn(Setup::ops(&fake, Some(&cluster))).await;
    let viewer = app.token("carol", &["viewer"], &[]).await;
    let member = app.token("bob", &["member"], &[]).await;
    eventually(20, "deployments fresh", || async {
        let w = app.widget(&viewer, "deployments").await;
        (w["freshness"]["state"] == "fresh").then_some(())
    })
    .await;
    let r = app
        .post(
            &member,
            "/api/v1/annotations",
            json!({"category": "note", "target": "deployments", "text": "before the outage"}),
        )
        .await;
    assert_eq!(r.status(), 201);

    cluster.stop();
    // Not polled for a while: the last data is older than the widget's 120 s.
    let db = app.db.connect().await;
    db.execute(
        "UPDATE poll_state SET last_success_at = now() - interval '10 minutes',
                next_due_at = now() + interval '1 hour'",
        &[],
    )
    .await
    .unwrap();
    let w = app.widget(&viewer, "deployments").await;
    assert_eq!(w["freshness"]["state"], "stale", "{w}");
    assert_eq!(w["freshness"]["text"], "stale (last data 10 min ago)");
    assert_eq!(w["data"].as_array().unwrap().len(), 6, "last data shown");

    // The poller finds the cluster gone.
    app.poll_now().await;
    let w = eventually(20, "deployments unreachable", || async {
        let w = app.widget(&viewer, "deployments").await;
        (w["freshness"]["state"] == "unreachable").then_some(w)
    })
    .await;
    assert_eq!(w["data"].as_array().unwrap().len(), 6, "last data shown");
    // Keep the pollers busy failing against the dead cluster while we read.
    app.poll_now().await;

    let browser = app.browser_as("carol", &["hub_viewers"], &[]).await;
    for page in ["/", "/annotations", "/actions"] {
        let r = quick(
            browser
                .http
                .get(format!("{}{page}", app.base))
                .header("cookie", &browser.cookie),
            page,
            200,
        )
        .await;
        let html = r.text().await.unwrap();
        if page == "/" {
            assert!(html.contains("data-freshness=\"unreachable\""), "{html}");
            assert!(html.contains("shop"), "the last deployments are listed");
        }
        if page == "/annotations" {
            assert!(html.contains("before the outage"));
        }
    }
    let get = |path: &str| app.http.get(app.url(path)).bearer_auth(&viewer);
    let widgets: Value = quick(get("/api/v1/widgets"), "widgets", 200)
        .await
        .json()
        .await
        .unwrap();
    for w in widgets["items"].as_array().unwrap() {
        let state = w["freshness"]["state"].as_str().unwrap();
        assert!(
            state == "unreachable" || state == "stale",
            "no widget claims fresh data with the cluster down: {w}"
        );
    }
    let obs: Value = quick(
        get("/api/v1/observations?capability=deployments&path=/status&limit=1"),
        "observations",
        200,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(obs["items"][0]["status"], 200, "the last good answer");
    assert_eq!(
        obs["items"][0]["body"]["deployments"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let notes: Value = quick(get("/api/v1/annotations"), "annotations", 200)
        .await
        .json()
        .await
        .unwrap();
    assert!(notes.to_string().contains("before the outage"));
    quick(get("/api/v1/status"), "status", 200).await;
    quick(
        app.http
            .post(app.url("/api/v1/annotations"))
            .bearer_auth(&member)
            .json(
                &json!({"category": "incident", "target": "deployments", "text": "cluster down"}),
            ),
        "annotating",
        201,
    )
    .await;
}

/// How many of the connections named `app_name` on `db` wait for a lock.
async fn lock_waiters(admin: &tokio_postgres::Client, db: &str, app_name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = $1 AND application_name = $2 AND wait_event_type = 'Lock'",
            &[&db, &app_name],
        )
        .await
        .unwrap()
        .get(0)
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_stays_truthful_with_the_request_pool_exhausted_and_the_database_gone() {
    const POOL: i64 = 2;
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let db = TestDb::create().await;
    let dir = temp_dir("domain-hub-faults");
    let text = config_text(&Setup::ops(&fake, None), &db.url, &dir.0)
        .replace("pool_size = 8", &format!("pool_size = {POOL}"));
    let hub = HubProcess::start(&dir, &text).await;
    let member = member_token(&db, "bob").await;
    let http = reqwest::Client::new();
    let admin = admin().await;

    // Every request-pool connection ends up waiting on a lock this test holds.
    let mut locker = db.connect().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE annotations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let blocked: Vec<_> = (0..4)
        .map(|_| {
            let r = http
                .get(hub.url("/api/v1/annotations"))
                .bearer_auth(&member)
                .send();
            tokio::spawn(r)
        })
        .collect();
    eventually(10, "the whole request pool waits on the lock", || async {
        (lock_waiters(&admin, &db.name, "ops-hub").await == POOL).then_some(())
    })
    .await;
    let probe = http
        .get(hub.url("/api/v1/status"))
        .bearer_auth(&member)
        .send();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), probe)
            .await
            .is_err(),
        "a request that needs the request pool waits: the pool is exhausted"
    );

    for _ in 0..5 {
        let r = quick(http.get(hub.url("/readyz")), "readyz, pool exhausted", 200).await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["checks"]["database"], true, "{v}");
    }
    tx.rollback().await.unwrap();
    let mut answered = 0;
    for r in blocked {
        let r = r.await.unwrap().unwrap();
        assert!(
            r.status() == 200 || r.status() == 503,
            "a request past the pool's wait answers 503: {}",
            r.status()
        );
        answered += usize::from(r.status() == 200);
    }
    assert!(answered >= 2, "the requests that held the pool finish");

    // The database really goes away: no new connections, existing ones terminated.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            db.name
        ))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .unwrap();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), http.get(hub.url("/readyz")).send())
        .await
        .expect("readyz answers while the database is gone")
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not_ready", "{v}");
    assert!(v["checks"]["problem"].is_string(), "{v}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Healthz is about the process, which is fine.
    quick(http.get(hub.url("/healthz")), "healthz", 200).await;

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .unwrap();
    eventually(15, "ready again", || async {
        let r = http.get(hub.url("/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    drop(locker);
}

//! Retention: the purge job deletes ended sessions, abandoned login flows and expired
//! idempotency records, keeps everything young, never touches the journal (not even one ten
//! years old), claims each table through PostgreSQL so replicas running it at once delete every
//! row once, and shows its work and the tables' sizes on `/metrics`. Bad `[retention]` values
//! stop `configtest` with the field's name.

use crate::helpers::{config_for, init_logs, metric, TempDir, TestDb};
use chrono::{Duration as Age, Utc};
use hub_core::journal::{self, Sealed};
use hub_core::retention::{Outcome, Purger, RetentionConfig};
use serde_json::{json, Value};
use state_hub::startup::{self, Application};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Events older than any retention window, written straight into the table with a valid chain.
const ANCIENT_EVENTS: i64 = 50;
/// Idempotency records older than the window.
const OLD_KEYS: i64 = 40;

fn pool(db: &TestDb) -> deadpool_postgres::Pool {
    let pg: tokio_postgres::Config = db.url.parse().unwrap();
    deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(pg, NoTls))
        .max_size(2)
        .build()
        .unwrap()
}

fn never_stopping() -> tokio::sync::watch::Receiver<bool> {
    tokio::sync::watch::channel(false).1
}

/// A fresh, migrated state hub database and a config for it.
async fn migrated(extra: &str) -> (TestDb, TempDir, state_hub::config::StateHubConfig, String) {
    init_logs();
    let db = TestDb::create().await;
    let dir = TempDir(std::env::temp_dir().join(format!(
        "state-hub-retention-{}",
        uuid::Uuid::new_v4().simple()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let token =
        secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
    std::fs::write(dir.0.join("admin.token"), &token).unwrap();
    let cfg = config_for(&db, &dir.0, extra);
    startup::migrate(&cfg).await.unwrap();
    (db, dir, cfg, token)
}

/// Writes `n` events dated ten years ago as the start of the journal, chained like the writer
/// chains them.
async fn write_ancient_journal(c: &tokio_postgres::Client, n: i64) {
    let mut prev = journal::GENESIS;
    let start = journal::db_precision(Utc::now() - Age::days(3650));
    for seq in 1..=n {
        let id = uuid::Uuid::new_v4();
        let created_at = start + Age::seconds(seq);
        let detail = json!({"n": seq});
        let summary = format!("ancient event {seq}");
        let sealed = Sealed {
            seq,
            id,
            created_at,
            event_type: "legacy.imported",
            summary: &summary,
            author: "archivist",
            workstream_id: None,
            workplan_id: None,
            task_id: None,
            decision_id: None,
            detail: &detail,
        };
        let hash = journal::link(&prev, &sealed);
        c.execute(
            "INSERT INTO events (seq, id, created_at, event_type, summary, author, detail, prev_hash, hash)
             VALUES ($1, $2, $3, 'legacy.imported', $4, 'archivist', $5, $6, $7)",
            &[&seq, &id, &created_at, &summary, &detail, &prev.as_slice(), &hash.as_slice()],
        )
        .await
        .unwrap();
        prev = hash;
    }
}

/// A user and sessions in every state that matters; returns the ids of the ones to keep.
async fn write_sessions(c: &tokio_postgres::Client) -> Vec<uuid::Uuid> {
    let user = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO users (id, issuer, subject, username) VALUES ($1, 'https://sso.test', 'sub-alice', 'alice')",
        &[&user],
    )
    .await
    .unwrap();
    // (created, idle expiry, absolute expiry, revoked) in days from now; purged?
    let cases: [(i64, i64, i64, Option<i64>, bool); 6] = [
        (-100, -99, -99, None, true), // expired three months ago
        (-40, 1, 1, Some(-35), true), // revoked five weeks ago
        (-60, -45, -30, None, true),  // idled out 45 days ago
        (0, 1, 1, None, false),       // in use
        (-3, -2, -2, None, false),    // expired two days ago: still within 30 days
        (-2, 1, 1, Some(-1), false),  // revoked yesterday
    ];
    let mut keep = Vec::new();
    for (created, idle, absolute, revoked, purged) in cases {
        let id = uuid::Uuid::new_v4();
        let day = |d: i64| Utc::now() + Age::days(d);
        let hash = sha2_of(id.as_bytes());
        c.execute(
            "INSERT INTO sessions (id, secret_hash, user_id, method, created_at, last_seen_at,
                                   idle_expires_at, absolute_expires_at, revoked_at)
             VALUES ($1, $2, $3, 'oidc', $4, $4, $5, $6, $7)",
            &[
                &id,
                &hash.as_slice(),
                &user,
                &day(created),
                &day(idle),
                &day(absolute),
                &revoked.map(day),
            ],
        )
        .await
        .unwrap();
        if !purged {
            keep.push(id);
        }
    }
    keep
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

async fn write_login_flows(c: &tokio_postgres::Client) {
    for (minutes, tag) in [(-120i64, 1u8), (-1, 2)] {
        c.execute(
            "INSERT INTO login_flows (flow_hash, pending, next_path, created_at)
             VALUES ($1, '{}', '/', now() + make_interval(mins => $2::int))",
            &[&sha2_of(&[tag]).as_slice(), &(minutes as i32)],
        )
        .await
        .unwrap();
    }
}

async fn write_old_idempotency_keys(c: &tokio_postgres::Client, n: i64, hours_old: i32) {
    c.execute(
        "INSERT INTO idempotency_keys (principal, key, request_hash, event_seqs, created_at)
         SELECT 'admin', 'old-' || g, sha256(g::text::bytea), ARRAY[1]::bigint[],
                now() - make_interval(hours => $2::int)
           FROM generate_series(1, $1::bigint) g",
        &[&n, &hours_old],
    )
    .await
    .unwrap();
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// Every event through the API, verified link by link; returns how many.
async fn verify_chain_via_api(http: &reqwest::Client, base: &str, token: &str) -> u64 {
    let mut v = hub_core::journal::Verifier::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(c) => format!("{base}/api/v1/events?order=asc&limit=500&after={c}"),
            None => format!("{base}/api/v1/events?order=asc&limit=500"),
        };
        let page: hub_core::api::Page<hub_core::api::events::Event> = http
            .get(path)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in &page.items {
            v.push(e).unwrap_or_else(|b| panic!("chain broken: {b}"));
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return v.checked(),
        }
    }
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_purge_deletes_old_rows_keeps_young_ones_and_never_touches_the_journal() {
    // One purge at start, then not again during the test.
    let (db, _dir, cfg, token) =
        migrated("[retention]\npurge_interval_seconds = 86400\nidempotency_hours = 48\n").await;
    let c = db.connect().await;
    write_ancient_journal(&c, ANCIENT_EVENTS).await;
    let keep_sessions = write_sessions(&c).await;
    write_login_flows(&c).await;
    write_old_idempotency_keys(&c, OLD_KEYS, 49).await;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with_listener(cfg.clone(), listener)
        .await
        .expect("state hub builds on an ancient journal");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown();
    let server = tokio::spawn(app.run_until_shutdown());
    let http = reqwest::Client::new();

    // The hub's own job purges at start; wait for its last table.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = metrics_text(&http, &base).await;
        if metric(
            &text,
            r#"hub_purge_runs_total{outcome="ok",table="idempotency_keys"}"#,
        ) >= 1.0
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no purge run at start:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        metric(&text, r#"hub_purge_rows_total{table="sessions"}"#),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"hub_purge_rows_total{table="login_flows"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"hub_purge_rows_total{table="idempotency_keys"}"#),
        OLD_KEYS as f64
    );
    assert!(
        metric(
            &text,
            r#"hub_purge_last_success_timestamp_seconds{table="sessions"}"#
        ) > 0.0
    );
    assert!(
        metric(&text, r#"hub_table_size_bytes{table="events"}"#) > 0.0,
        "{text}"
    );
    assert!(metric(&text, r#"hub_table_size_bytes{table="idempotency_keys"}"#) > 0.0);

    // Young rows survived.
    let sessions: Vec<uuid::Uuid> = c
        .query("SELECT id FROM sessions ORDER BY created_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = keep_sessions.clone();
    expected.sort();
    let mut got = sessions.clone();
    got.sort();
    assert_eq!(
        got, expected,
        "exactly the sessions ended within 30 days are kept"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM login_flows").await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM idempotency_keys").await, 0);

    // A key written now is honoured after another purge: same key and body replay the event.
    let body = json!({"event_type": "deploy.started", "summary": "Deploy after purge"});
    let post = |key: &'static str| {
        http.post(format!("{base}/api/v1/events"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = post("young-key").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    write_old_idempotency_keys(&c, 5, 72).await;
    let events_before = count(&c, "SELECT count(*) FROM events").await;
    let purger = Purger::new(
        pool(&db),
        state_hub::retention::targets(&cfg.retention),
        &cfg.retention,
        &prometheus::Registry::new(),
    )
    .unwrap();
    let runs = purger.run_once(&never_stopping()).await;
    let idem = runs.iter().find(|r| r.table == "idempotency_keys").unwrap();
    assert_eq!((idem.deleted, &idem.outcome), (5, &Outcome::Ok));
    assert!(runs.iter().all(|r| r.table != "events"));
    let again = post("young-key").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(
        again.headers().get("idempotency-replayed").unwrap(),
        "true",
        "a young key is still honoured"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["seq"], first["seq"]);

    // The journal: every event still there, the ancient ones included, and the chain verifies
    // from the first link.
    assert_eq!(
        count(&c, "SELECT count(*) FROM events").await,
        events_before
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM events WHERE created_at < now() - interval '9 years'"
        )
        .await,
        ANCIENT_EVENTS
    );
    let checked = verify_chain_via_api(&http, &base, &token).await;
    assert_eq!(checked as i64, events_before);
    assert!(
        checked as i64 > ANCIENT_EVENTS,
        "the hub appended after them"
    );

    shutdown.run().await;
    let _ = server.await;
}

#[tokio::test]
async fn a_purge_with_every_window_at_zero_still_leaves_the_journal_alone() {
    // The shortest windows the config allows are a day; a purge whose cutoff is "now" goes
    // further than any config can, and still must not find the journal.
    let (db, _dir, cfg, _token) = migrated("").await;
    let c = db.connect().await;
    write_ancient_journal(&c, 10).await;
    let targets: Vec<_> = state_hub::retention::targets(&cfg.retention)
        .into_iter()
        .map(|mut t| {
            t.keep = Duration::ZERO;
            t
        })
        .collect();
    let purger = Purger::new(
        pool(&db),
        targets,
        &cfg.retention,
        &prometheus::Registry::new(),
    )
    .unwrap();
    let runs = purger.run_once(&never_stopping()).await;
    assert!(runs.iter().all(|r| r.outcome == Outcome::Ok), "{runs:?}");
    assert_eq!(count(&c, "SELECT count(*) FROM events").await, 10);
    // And the database itself refuses, should anything ever try.
    let refused = c.execute("DELETE FROM events WHERE seq = 1", &[]).await;
    let refused = refused.unwrap_err();
    let message = refused.as_db_error().unwrap().message();
    assert!(message.contains("append-only"), "{message}");
}

#[tokio::test]
async fn two_replicas_purging_at_once_delete_every_row_exactly_once() {
    let (db, _dir, _cfg, _token) = migrated("").await;
    let c = db.connect().await;
    const OLD: i64 = 3000;
    write_old_idempotency_keys(&c, OLD, 24 * 30).await;
    c.execute(
        "INSERT INTO idempotency_keys (principal, key, request_hash, event_seqs)
         SELECT 'admin', 'young-' || g, sha256(g::text::bytea), ARRAY[1]::bigint[]
           FROM generate_series(1, 200) g",
        &[],
    )
    .await
    .unwrap();
    // Every delete is written down, to count deletions apart from what the purgers report.
    c.batch_execute(
        "CREATE TABLE purged_log (key text NOT NULL);
         CREATE FUNCTION log_purge() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO purged_log VALUES (OLD.key); RETURN OLD; END; $$;
         CREATE TRIGGER log_purge BEFORE DELETE ON idempotency_keys
             FOR EACH ROW EXECUTE FUNCTION log_purge();",
    )
    .await
    .unwrap();
    let cfg = RetentionConfig {
        batch_size: 50,
        idempotency_hours: Some(24),
        ..RetentionConfig::default()
    };
    let registries = [prometheus::Registry::new(), prometheus::Registry::new()];
    let purgers: Vec<Arc<Purger>> = registries
        .iter()
        .map(|r| {
            Arc::new(Purger::new(pool(&db), state_hub::retention::targets(&cfg), &cfg, r).unwrap())
        })
        .collect();
    let mut reported = 0u64;
    let mut busy = 0;
    for _ in 0..100 {
        let stop = never_stopping();
        let (a, b) = tokio::join!(purgers[0].run_once(&stop), purgers[1].run_once(&stop));
        for run in a.iter().chain(b.iter()) {
            if run.table == "idempotency_keys" {
                reported += run.deleted;
                assert!(!matches!(run.outcome, Outcome::Error(_)), "{run:?}");
                busy += usize::from(run.outcome == Outcome::Busy);
            }
        }
        if count(
            &c,
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE 'old-%'",
        )
        .await
            == 0
        {
            break;
        }
    }
    assert_eq!(reported, OLD as u64, "the purgers report each row once");
    assert_eq!(count(&c, "SELECT count(*) FROM purged_log").await, OLD);
    assert_eq!(
        count(&c, "SELECT count(DISTINCT key) FROM purged_log").await,
        OLD,
        "no row was deleted twice"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM purged_log WHERE key LIKE 'young-%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM idempotency_keys").await,
        200
    );
    // The metrics of both agree with the rows.
    let total: f64 = registries
        .iter()
        .map(|r| {
            let text = prometheus::TextEncoder::new()
                .encode_to_string(&r.gather())
                .unwrap();
            metric(&text, r#"hub_purge_rows_total{table="idempotency_keys"}"#)
        })
        .sum();
    assert_eq!(total, OLD as f64);
    eprintln!("two purgers: {reported} rows, {busy} runs found the table busy");
}

#[tokio::test]
async fn table_sizes_and_row_estimates_are_sampled_from_the_catalog() {
    let (db, _dir, cfg, _token) = migrated("").await;
    let c = db.connect().await;
    write_ancient_journal(&c, 300).await;
    c.batch_execute("ANALYZE events").await.unwrap();
    let registry = prometheus::Registry::new();
    let purger = Purger::new(
        pool(&db),
        state_hub::retention::targets(&cfg.retention),
        &cfg.retention,
        &registry,
    )
    .unwrap();
    let tables = purger.sample_sizes().await.unwrap();
    assert!(tables >= 10, "every table of the schema: {tables}");
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(metric(&text, r#"hub_table_size_bytes{table="events"}"#) >= 8192.0);
    assert_eq!(
        metric(&text, r#"hub_table_rows_estimate{table="events"}"#),
        300.0,
        "{text}"
    );
}

fn configtest(extra: &str) -> (bool, String) {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "state-hub-retention-cfg-{}",
        uuid::Uuid::new_v4().simple()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("state-hub.toml");
    std::fs::write(
        &path,
        format!(
            "dev_mode = true\n[server]\npublic_url = \"http://127.0.0.1:8080\"\n\
             [database]\nurl = \"postgres://postgres@127.0.0.1/state\"\n{extra}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_state-hub"))
        .arg("--config")
        .arg(&path)
        .arg("configtest")
        .env_remove("STATE_HUB_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn configtest_names_every_bad_retention_value() {
    let (ok, text) = configtest("[retention]\nsessions_days = 36500\nidempotency_hours = 24\n");
    assert!(!ok);
    assert!(
        text.contains("retention.sessions_days: 36500 is out of range"),
        "{text}"
    );

    let (ok, text) = configtest(
        "[retention]\nsessions_days = 0\nidempotency_hours = 1\npurge_interval_seconds = 0\nbatch_size = 0\n",
    );
    assert!(!ok);
    for key in [
        "retention.sessions_days",
        "retention.idempotency_hours",
        "retention.purge_interval_seconds",
        "retention.batch_size",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
    assert!(text.contains("write twice"), "{text}");

    let (ok, text) = configtest("[retention]\nsessions_days = -1\n");
    assert!(!ok);
    assert!(text.contains("retention.sessions_days"), "{text}");

    let (ok, text) = configtest("[retention]\nobservations_days = 10\n");
    assert!(!ok);
    assert!(text.contains("retention.observations_days"), "{text}");

    let (ok, text) = configtest("[retention]\nsession_days = 10\n");
    assert!(!ok);
    assert!(text.contains("session_days"), "{text}");

    let (ok, text) = configtest(
        "[retention]\nsessions_days = 14\nidempotency_hours = 72\npurge_interval_seconds = 600\nbatch_size = 500\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("config ok"));
}

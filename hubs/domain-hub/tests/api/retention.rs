//! Retention in a domain hub: old observations go, except the newest of each path (a widget
//! whose capability has been silent for months still shows what it last knew); delivered outbox
//! rows go after their window, pending and rejected ones never; two replicas purging at once
//! delete each row once; the hub's own job reports on `/metrics`.

use crate::fake_state_hub::FakeStateHub;
use crate::helpers::{eventually, Setup, TestApp, STATE_HUB_TOKEN};
use hub_core::retention::{Outcome, Purger};
use std::sync::Arc;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// `n` observations of one path, the first `days_old` days ago and one second apart.
async fn observe(c: &tokio_postgres::Client, capability: &str, path: &str, n: i32, days_old: i32) {
    c.execute(
        "INSERT INTO observations (capability, path, fetched_at, status, body, sha256)
         SELECT $1, $2, now() - make_interval(days => $4::int) + make_interval(secs => g),
                200, jsonb_build_object('n', g), repeat('a', 64)
           FROM generate_series(1, $3::int) g",
        &[&capability, &path, &n, &days_old],
    )
    .await
    .unwrap();
}

/// One outbox row: delivered or rejected `days_old` days ago, or pending.
async fn outbox_row(c: &tokio_postgres::Client, state: &str, days_old: i32) {
    let id = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO outbox (id, event, idempotency_key, created_at, delivered_at, rejected_at)
         VALUES ($1, jsonb_build_object('event_type', 'test.row', 'summary', $2::text),
                 $4, now() - make_interval(days => $3::int),
                 CASE WHEN $2 = 'delivered' THEN now() - make_interval(days => $3::int) END,
                 CASE WHEN $2 = 'rejected' THEN now() - make_interval(days => $3::int) END)",
        &[&id, &state, &days_old, &format!("test:{id}")],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn old_observations_and_delivered_outbox_rows_are_purged_the_rest_is_kept() {
    let fake = FakeStateHub::start(STATE_HUB_TOKEN);
    let mut setup = Setup::ops(&fake, None);
    setup.extra.push_str(
        "[retention]\npurge_interval_seconds = 86400\nobservations_days = 30\n\
         outbox_delivered_days = 7\nbatch_size = 7\n",
    );
    let mut app = TestApp::spawn(setup).await;
    // The hub's own purge ran at start (and will not again during the test).
    let text = eventually(20, "the purge at start", || async {
        let text = metrics_text(&app).await;
        (metric(
            &text,
            r#"hub_purge_runs_total{outcome="ok",table="outbox"}"#,
        ) >= 1.0)
            .then_some(text)
    })
    .await;
    for table in ["sessions", "login_flows", "observations", "outbox"] {
        assert!(
            metric(
                &text,
                &format!(r#"hub_purge_runs_total{{outcome="ok",table="{table}"}}"#)
            ) >= 1.0,
            "{table}: {text}"
        );
    }
    assert!(metric(&text, r#"hub_table_size_bytes{table="outbox"}"#) > 0.0);
    assert!(metric(&text, r#"hub_table_size_bytes{table="observations"}"#) > 0.0);

    let c = app.db.connect().await;
    // A path polled for a year: 40 answers older than the window, 5 within it.
    observe(&c, "deployments", "/deployments/status", 40, 365).await;
    observe(&c, "deployments", "/deployments/status", 5, 1).await;
    // A path silent for 200 days: only old answers; the newest must stay.
    observe(&c, "nodes", "/nodes", 12, 200).await;
    // Another young path.
    observe(&c, "nodes", "/nodes/pressure", 3, 2).await;
    let newest_silent: i64 = c
        .query_one(
            "SELECT id FROM observations WHERE path = '/nodes' ORDER BY fetched_at DESC, id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    outbox_row(&c, "delivered", 30).await;
    outbox_row(&c, "delivered", 8).await;
    outbox_row(&c, "delivered", 1).await;
    outbox_row(&c, "rejected", 90).await;
    let outbox_before = count(&c, "SELECT count(*) FROM outbox").await;

    // Two replicas at once, each with its own purger on the same database.
    let registries = [prometheus::Registry::new(), prometheus::Registry::new()];
    let purgers: Vec<Arc<Purger>> = registries
        .iter()
        .map(|r| {
            Arc::new(
                Purger::new(
                    app.pool(),
                    domain_hub::retention::targets(&app.config.retention),
                    &app.config.retention,
                    r,
                )
                .unwrap(),
            )
        })
        .collect();
    let (mut observations, mut outbox) = (0u64, 0u64);
    for _ in 0..20 {
        let stop = tokio::sync::watch::channel(false).1;
        let (a, b) = tokio::join!(purgers[0].run_once(&stop), purgers[1].run_once(&stop));
        for run in a.iter().chain(b.iter()) {
            assert!(!matches!(run.outcome, Outcome::Error(_)), "{run:?}");
            match run.table {
                "observations" => observations += run.deleted,
                "outbox" => outbox += run.deleted,
                _ => {}
            }
        }
        if observations == 40 + 11 && outbox == 2 {
            break;
        }
    }
    assert_eq!(observations, 51, "40 + 11 old observations, each once");
    assert_eq!(outbox, 2, "the two delivered rows past seven days");

    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM observations WHERE path = '/deployments/status'"
        )
        .await,
        5
    );
    let left: Vec<i64> = c
        .query("SELECT id FROM observations WHERE path = '/nodes'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        vec![newest_silent],
        "the newest of a silent path stays"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM observations WHERE path = '/nodes/pressure'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM outbox").await,
        outbox_before - 2
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox WHERE rejected_at IS NOT NULL"
        )
        .await,
        1,
        "rejected rows wait for an operator"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM outbox WHERE delivered_at < now() - interval '7 days'"
        )
        .await,
        0
    );
    let total: f64 = registries
        .iter()
        .map(|r| {
            let text = prometheus::TextEncoder::new()
                .encode_to_string(&r.gather())
                .unwrap();
            metric(&text, r#"hub_purge_rows_total{table="observations"}"#)
        })
        .sum();
    assert_eq!(total, 51.0);
    app.stop().await;
}

#[test]
fn bad_retention_values_are_refused_by_name() {
    let dir = crate::helpers::temp_dir("domain-hub-retention-cfg");
    let fake_url = "http://127.0.0.1:9";
    let setup = |extra: &str| Setup {
        name: "ops-hub",
        kind: "ops",
        manifest: crate::helpers::shipped_manifest("ops-hub"),
        state_hub_url: fake_url.to_owned(),
        state_hub_token: STATE_HUB_TOKEN.to_owned(),
        cluster: None,
        extra: extra.to_owned(),
    };
    let check = |extra: &str| -> Result<(), String> {
        let path = dir.0.join("domain-hub.toml");
        std::fs::write(
            &path,
            crate::helpers::config_text(&setup(extra), "postgres://postgres@127.0.0.1/x", &dir.0),
        )
        .unwrap();
        let loaded = hub_core::config::load_with_env::<domain_hub::config::DomainHubConfig>(
            Some(&path),
            domain_hub::config::SECTIONS,
            &[],
        )
        .map_err(|e| e.to_string())?;
        loaded
            .config
            .validate()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    check("[retention]\nobservations_days = 30\noutbox_delivered_days = 7\n").unwrap();
    let err = check(
        "[retention]\nobservations_days = 0\noutbox_delivered_days = 100000\nbatch_size = 0\n",
    )
    .unwrap_err();
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(
        err.contains("retention.observations_days: 0 is out of range"),
        "{err}"
    );
    assert!(err.contains("retention.outbox_delivered_days"), "{err}");
    assert!(err.contains("retention.batch_size"), "{err}");
    let err = check("[retention]\nobservations_days = -3\n").unwrap_err();
    assert!(err.contains("retention.observations_days"), "{err}");
    let err = check("[retention]\nidempotency_hours = 48\n").unwrap_err();
    assert!(
        err.contains("retention.idempotency_hours: this hub has no such table"),
        "{err}"
    );
}

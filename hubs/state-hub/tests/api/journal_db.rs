use crate::helpers::{metric, TestApp};
use serde_json::json;

#[tokio::test]
async fn the_database_forbids_rewriting_the_journal() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/v1/events",
        json!({"event_type": "note.added", "summary": "keep me"}),
    )
    .await;
    let db = app.db.connect().await;
    for sql in [
        "UPDATE events SET summary = 'changed'",
        "DELETE FROM events",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ] {
        let err = db.batch_execute(sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{sql}: {err:?}"
        );
    }
    assert_eq!(app.event_count().await, 2);
    app.verify_chain().await;
}

#[tokio::test]
async fn decisions_cannot_be_deleted_and_outcomes_not_rewritten_at_the_database() {
    let app = TestApp::spawn().await;
    let d: serde_json::Value = app
        .post("/api/v1/decisions", json!({"title": "Use LLDAP", "options": ["yes", "no"], "outcome": {"choice": "yes", "rationale": "small"}}))
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = d["id"].as_str().unwrap().parse().unwrap();
    let db = app.db.connect().await;
    let err = db
        .execute("DELETE FROM decisions WHERE id = $1", &[&id])
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("never deleted"));
    let err = db
        .execute(
            "UPDATE decisions SET outcome_choice = 'no' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("immutable"));
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let db = crate::helpers::TestDb::create().await;
    let dir = std::env::temp_dir().join(format!("mig-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin.token"), "x".repeat(40)).unwrap();
    let cfg = crate::helpers::config_for(&db, &dir, "");
    let runs = (0..4).map(|_| state_hub::startup::migrate(&cfg));
    let results = futures_util::future::join_all(runs).await;
    let applied: usize = results.into_iter().map(|r| r.unwrap().len()).sum();
    let sets = state_hub::migrations::sets();
    let total: usize = sets.iter().map(|s| s.runner.get_migrations().len()).sum();
    assert_eq!(applied, total, "each migration applied exactly once");
    let c = db.connect().await;
    for set in &sets {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {}", set.table), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n as usize,
            set.runner.get_migrations().len(),
            "{}",
            set.table
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_replicas_writing_at_once_keep_one_gapless_chain() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let mut writes = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            replica.base.clone()
        };
        let (http, token) = (app.http.clone(), app.token.clone());
        writes.push(tokio::spawn(async move {
            let body = json!({"event_type": "load.tick", "summary": format!("r{i}")});
            http.post(format!("{base}/api/v1/events"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
        if i % 10 == 0 {
            // Alternate bursts and single writes so both the grouped and the re-read path run.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    for w in writes {
        assert_eq!(w.await.unwrap(), 201);
    }
    assert_eq!(app.verify_chain().await, 201);
    let mut moved = 0.0;
    for base in [&app.base, &replica.base] {
        let text = app.metrics_text(base).await;
        moved += metric(&text, "journal_head_moved_total");
        assert!(
            metric(&text, "journal_fast_batches_total") > 0.0,
            "the one-round-trip path ran"
        );
    }
    assert!(
        moved > 0.0,
        "interleaved replicas exercised the head-moved retry"
    );
    // A replica's live stream sees what the other replica wrote.
    let r = app
        .http
        .get(format!("{}/api/v1/events/stream?after=200", replica.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    replica.shutdown.run().await;
}

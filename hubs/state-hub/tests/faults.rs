//! Faults under write load, against the real `state-hub` binary: the hub killed with SIGKILL, its
//! PostgreSQL restarted (fast and crash-like), and a graceful SIGTERM. Clients append events
//! concurrently, each with its own Idempotency-Key, retrying with the same key; afterwards every
//! write a client saw acknowledged is in the journal exactly once, nothing is stored twice, the
//! sequence is gapless and `hubctl audit verify` passes.
//!
//! Needs `HUB_TEST_DATABASE_URL` (a PostgreSQL superuser URL), `hubctl` built next to the hub
//! (`cargo build -p hubctl`, or `HUB_BIN_DIR`), and PostgreSQL's server programs for the restart
//! test (installed from Debian when missing). Figures are printed to stderr as `faults:` lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "faults/check.rs"]
mod check;
#[path = "faults/hub.rs"]
mod hub;
#[path = "faults/load.rs"]
mod load;
#[path = "../../../tests/support/pgcluster.rs"]
mod pgcluster;

use hub::{Database, Hub};
use load::{Answer, Retry};
use pgcluster::{PgCluster, StopMode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

fn assert_audit_passes(hub: &Hub) {
    let (code, out) = hub.audit_verify();
    assert_eq!(code, Some(0), "hubctl audit verify failed:\n{out}");
}

/// Polls `/readyz` until it answers 200; returns how long that took.
async fn time_to_ready(hub: &Hub, limit: Duration) -> Duration {
    let started = Instant::now();
    while !hub.ready().await {
        assert!(
            started.elapsed() < limit,
            "/readyz did not return to 200 within {limit:?} (the hub was not restarted):\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_and_duplicates_no_acknowledged_write() {
    const TOTAL: usize = 2000;
    let db = Database::create(&hub::admin_url()).await;
    let mut hub = Hub::start(&db.url, 5).await;
    let tag = tag();
    let started = Instant::now();
    let (live, outcome) = load::start(
        &hub.url,
        &hub.token,
        &tag,
        TOTAL,
        CLIENTS,
        Retry::Until(started + Duration::from_secs(40)),
    );

    load::wait_acked(&live, TOTAL / 3, Duration::from_secs(20)).await;
    let in_flight = live.in_flight.load(Ordering::SeqCst);
    let acked_before = live.acked.load(Ordering::SeqCst);
    hub.kill9();
    let killed = Instant::now();
    hub.spawn()
        .await
        .unwrap_or_else(|why| panic!("the hub did not come back after SIGKILL: {why}"));
    let back = killed.elapsed();

    let outcome = outcome.await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        outcome.rejected().is_empty(),
        "answers no retry can fix: {:?}",
        outcome.rejected()
    );
    let acked = outcome.acked();
    assert_eq!(
        acked.len(),
        TOTAL,
        "every event is acknowledged once the hub is back"
    );
    assert!(
        outcome.retries() > 0,
        "the kill interrupted writes (else this test proves nothing)"
    );
    let journal = check::journal(&db.url, &tag, &outcome).await;
    assert_eq!(journal.stored, TOTAL);
    assert_audit_passes(&hub);
    eprintln!(
        "faults: sigkill: events={TOTAL} clients={CLIENTS} acked_before_kill={acked_before} \
         in_flight_at_kill={in_flight} acked={} retried_requests={} retried_events={} \
         replayed={} duplicates=0 journal_events={} restart_to_ready={back:?} total={elapsed:?}",
        acked.len(),
        outcome.retries(),
        outcome.retried_events(),
        outcome.replayed(),
        journal.total_events,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarts_under_load_lose_no_acknowledged_write_and_the_hub_recovers_alone() {
    const TOTAL: usize = 1500;
    let pg = PgCluster::start();
    let db = Database::create(&pg.url("postgres")).await;
    let mut hub = Hub::start(&db.url, 5).await;
    let tag = tag();
    let started = Instant::now();
    let (live, outcome) = load::start(
        &hub.url,
        &hub.token,
        &tag,
        TOTAL,
        CLIENTS,
        Retry::Until(started + Duration::from_secs(45)),
    );

    let mut figures = Vec::new();
    for (mode, at) in [
        (StopMode::Fast, TOTAL / 4),
        (StopMode::Immediate, TOTAL * 5 / 8),
    ] {
        load::wait_acked(&live, at, Duration::from_secs(20)).await;
        let in_flight = live.in_flight.load(Ordering::SeqCst);
        let restarting = Instant::now();
        pg.restart(mode);
        let restart_took = restarting.elapsed();
        if let StopMode::Immediate = mode {
            assert!(
                pg.log().contains("not properly shut down"),
                "an immediate stop leaves WAL recovery to the next start:\n{}",
                pg.log()
            );
        }
        // The hub is not restarted: its pools, journal writer and NOTIFY listener reconnect.
        let ready_after = time_to_ready(&hub, Duration::from_secs(15)).await;
        let acked_at = live.acked.load(Ordering::SeqCst);
        load::wait_acked(&live, acked_at + 50, Duration::from_secs(15)).await;
        let writing_after = restarting.elapsed();
        assert!(hub.try_exit().is_none(), "the hub process keeps running");
        figures.push(format!(
            "{mode:?}: in_flight={in_flight} pg_ctl_restart={restart_took:?} \
             readyz_200_after={ready_after:?} acks_flowing_after={writing_after:?}"
        ));
    }

    let outcome = outcome.await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        outcome.rejected().is_empty(),
        "answers no retry can fix: {:?}",
        outcome.rejected()
    );
    let acked = outcome.acked();
    assert_eq!(
        acked.len(),
        TOTAL,
        "every event is acknowledged once the database is back"
    );
    assert!(
        outcome.retries() > 0,
        "the restarts interrupted writes (else this test proves nothing)"
    );
    let journal = check::journal(&db.url, &tag, &outcome).await;
    assert_eq!(journal.stored, TOTAL);
    assert!(hub.ready().await, "/readyz is 200 at the end");
    assert_audit_passes(&hub);
    eprintln!(
        "faults: postgres restart: events={TOTAL} clients={CLIENTS} acked={} retried_requests={} \
         retried_events={} replayed={} duplicates=0 total={elapsed:?} | {}",
        acked.len(),
        outcome.retries(),
        outcome.retried_events(),
        outcome.replayed(),
        figures.join(" | ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_honestly_and_exits_cleanly() {
    const TOTAL: usize = 3000;
    const GRACE: u64 = 5;
    let db = Database::create(&hub::admin_url()).await;
    let mut hub = Hub::start(&db.url, GRACE).await;
    let tag = tag();
    let (live, outcome) = load::start(&hub.url, &hub.token, &tag, TOTAL, CLIENTS, Retry::Never);

    load::wait_acked(&live, TOTAL / 4, Duration::from_secs(20)).await;
    let in_flight = live.in_flight.load(Ordering::SeqCst);
    let signalled = Instant::now();
    hub.sigterm();
    let status = hub
        .wait_exit(Duration::from_secs(GRACE + 5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the hub did not exit within its stop timeout:\n{}",
                hub.log()
            )
        });
    let stop_took = signalled.elapsed();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    assert!(
        hub.log().contains("shutdown complete"),
        "the shutdown registry ran to its end:\n{}",
        hub.log()
    );

    // Once the process is gone nobody listens: a write is refused, never half-answered.
    let http = reqwest::Client::new();
    for i in 0..20 {
        let answer = load::post(&http, &hub.url, &hub.token, &tag, TOTAL + i).await;
        assert_eq!(answer, Answer::Refused, "a write after the stop");
    }

    let outcome = outcome.await.unwrap();
    let acked = outcome.acked();
    assert!(acked.len() >= TOTAL / 4);
    assert!(
        acked.len() < TOTAL,
        "the stop came while writes were still arriving"
    );
    let journal = check::journal(&db.url, &tag, &outcome).await;
    // A 5xx says nothing was written; the journal must agree.
    let db_client = hub::connect(&db.url).await;
    let mut refused = 0;
    let mut broken = 0;
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    for (i, answers) in outcome.attempts.iter().enumerate() {
        match answers.as_slice() {
            [Answer::Acked { .. }] => {}
            [Answer::Refused] => refused += 1,
            [Answer::Broken(why)] => {
                broken += 1;
                eprintln!("faults: sigterm: event {i} cut: {why}");
            }
            [Answer::Status(s, body)] => {
                *statuses.entry(*s).or_default() += 1;
                assert!(
                    *s == 503,
                    "event {i}: only 503 (not accepting writes) is expected during the drain, got {s}: {body}"
                );
                let n: i64 = db_client
                    .query_one(
                        "SELECT count(*) FROM events WHERE summary = $1",
                        &[&load::key(&tag, i)],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(n, 0, "event {i} was answered {s} but written: {body}");
            }
            other => panic!("event {i}: one attempt expected, got {other:?}"),
        }
    }
    assert!(
        journal.unacked_stored <= broken,
        "events stored without an acknowledgement ({}) can only come from connections cut mid-request ({broken})",
        journal.unacked_stored
    );
    assert_eq!(journal.stored, acked.len() + journal.unacked_stored);
    // The journal the drained hub left behind verifies once the hub is started again.
    hub.spawn()
        .await
        .unwrap_or_else(|why| panic!("the hub did not start again: {why}"));
    assert_audit_passes(&hub);
    eprintln!(
        "faults: sigterm: events={TOTAL} clients={CLIENTS} in_flight_at_signal={in_flight} \
         acked={} refused={refused} cut_mid_request={broken} unacked_but_stored={} \
         status_answers={statuses:?} duplicates=0 exit_after={stop_took:?} (grace {GRACE} s)",
        acked.len(),
        journal.unacked_stored,
    );
}

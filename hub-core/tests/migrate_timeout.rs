#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Migrations run without the hubs' request statement timeout: building an index on a journal of
//! millions of events takes longer than any request may (docs/journal-growth.md), and a hub that
//! cannot finish its migrations does not start.

use hub_core::db::{migrate, MigrationSet};
use std::str::FromStr;
use tokio_postgres::NoTls;

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to HUB_TEST_DATABASE_URL");
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn a_migration_may_outlast_the_request_statement_timeout() {
    let url = std::env::var("HUB_TEST_DATABASE_URL").expect(
        "HUB_TEST_DATABASE_URL must name a PostgreSQL server this test may create a database on",
    );
    let db = format!("hubcore_migrate_{}", uuid::Uuid::new_v4().simple());
    let admin = admin(&url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create the scratch database");

    // What the hubs connect with: a statement timeout far below the migration's run time.
    let mut pg = tokio_postgres::Config::from_str(&url).expect("parse the URL");
    pg.dbname(&db);
    pg.options("-c statement_timeout=200");
    let slow = refinery::Migration::unapplied("V1__slow_index_build", "SELECT pg_sleep(0.8);")
        .expect("a valid migration");
    let set = MigrationSet {
        table: "refinery_schema_history",
        runner: refinery::Runner::new(&[slow]),
    };
    let result = migrate(&pg, vec![set], 4242).await;

    // The request connections still carry the timeout.
    let (client, conn) = pg
        .connect(NoTls)
        .await
        .expect("connect to the scratch database");
    tokio::spawn(conn);
    let timed_out = client.batch_execute("SELECT pg_sleep(0.8)").await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1);
    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .expect("drop the scratch database");

    assert_eq!(
        result.expect("the slow migration applies"),
        vec!["V1__slow_index_build".to_string()]
    );
    assert_eq!(applied, 1, "the migration is recorded");
    assert!(
        timed_out.is_err(),
        "request connections keep their statement timeout"
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A statement cancelled by `statement_timeout` is the client's 503 with Retry-After, saying that
//! nothing was written, not an opaque 500: a deep time-window read on a large journal can run
//! past the limit (docs/journal-growth.md), and the client can narrow it or retry.

use actix_web::{body::to_bytes, http::header, ResponseError};
use hub_core::http::problem::ApiError;
use tokio_postgres::NoTls;

#[tokio::test]
async fn a_statement_timeout_is_a_503_that_says_nothing_was_written() {
    let url = std::env::var("HUB_TEST_DATABASE_URL")
        .expect("HUB_TEST_DATABASE_URL must name a PostgreSQL server this test may connect to");
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connect to HUB_TEST_DATABASE_URL");
    tokio::spawn(conn);
    client
        .batch_execute("SET statement_timeout = 50")
        .await
        .expect("set the statement timeout");
    let e = client
        .query_one("SELECT pg_sleep(2)", &[])
        .await
        .expect_err("the statement must be cancelled");

    let api: ApiError = e.into();
    assert!(matches!(api, ApiError::Unavailable(_)), "got {api:?}");
    let res = api.error_response();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: serde_json::Value =
        serde_json::from_slice(&to_bytes(res.into_body()).await.unwrap()).unwrap();
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("nothing was written"), "{body}");
    assert!(
        !detail.contains("pg_sleep"),
        "the SQL must not leak: {body}"
    );

    // Any other database failure stays an internal error whose cause is not shown.
    let other: ApiError = client
        .query_one("SELECT * FROM no_such_table_here", &[])
        .await
        .expect_err("an unknown table fails")
        .into();
    assert!(matches!(other, ApiError::Internal(_)), "got {other:?}");
}

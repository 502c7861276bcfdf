//! The state hub's API, end to end: a real server on a loopback port, a fresh PostgreSQL database
//! per test. `TEST_LOG=1` prints the hub's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod decisions;
mod events;
mod health;
mod helpers;
mod journal_db;
mod lifecycle;
mod plans;
mod routes;
mod sessions;
mod stream;
mod tokens;

//! The state hub's API, end to end: a real server on a loopback port, a fresh PostgreSQL database
//! per test. `TEST_LOG=1` prints the hub's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod capabilities;
mod contract;
mod decisions;
mod events;
mod fanout;
mod health;
mod helpers;
mod journal_db;
mod lifecycle;
mod login;
mod open_decisions;
mod plans;
mod registry;
mod retention;
mod routes;
mod sessions;
#[path = "../../../../tests/support/standins.rs"]
mod standins;
mod stream;
mod tokens;
mod ui;

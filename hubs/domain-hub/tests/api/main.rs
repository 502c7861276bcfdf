//! The domain hub's API and page suite: one test binary, a fresh database per test, a fake
//! state hub in process, the cluster stand-in over HTTPS.

// Fixtures fail loudly; that is what they are for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_state_hub;
mod helpers;
#[path = "../../../../tests/support/standins.rs"]
mod standins;

mod actions;
mod annotations;
mod faults;
mod outbox;
mod polling;
mod replicas;
mod retention;

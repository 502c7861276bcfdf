//! The domain hub: one binary, run as many instances (dev-hub, ops-hub, fin-hub). Each polls the
//! capabilities its manifest names, keeps timestamped observations and shows them as widgets that
//! say how fresh they are, lets people annotate them and run the manifest's actions, and relays
//! everything it journals to the state hub through a local outbox.

pub mod actions;
pub mod annotations;
pub mod backoff;
pub mod cluster;
pub mod config;
pub mod database;
pub mod ledger;
pub mod manifest;
pub mod migrations;
pub mod observations;
pub mod openapi;
pub mod outbox;
pub mod polling;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod state_hub;
pub mod status;
pub mod ui;
pub mod widgets;

//! The state hub: decisions, workstreams/workplans/tasks, and the hash-chained journal of
//! progress events, served as a REST API.

pub mod capabilities;
pub mod config;
pub mod database;
pub mod decisions;
pub mod events;
pub mod fanout;
pub mod journal;
pub mod ledger;
pub mod migrations;
pub mod openapi;
pub mod plans;
pub mod registry;
pub mod respond;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tokens;
pub mod ui;

//! Workstreams → workplans → tasks.

pub mod handlers;
pub mod rules;
pub mod store;

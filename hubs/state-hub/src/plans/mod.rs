//! Workstreams → workplans → tasks.
//!
//! Rules live in [`rules`] as plain functions; [`store`] owns the SQL; [`service`] runs each
//! change with its journal event; [`handlers`] are thin.

pub mod handlers;
pub mod rules;
pub mod service;
pub mod store;

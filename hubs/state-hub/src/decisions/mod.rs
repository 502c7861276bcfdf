//! Decisions: propose, escalate, resolve (approve), supersede, link tasks.
//!
//! Rules live in [`rules`] as plain functions over domain values; [`store`] owns the SQL;
//! [`service`] runs each operation with its journal event; [`handlers`] are thin.

pub mod handlers;
pub mod rules;
pub mod service;
pub mod store;

//! The hub registry: hub kinds, hub instances with heartbeat health, their capability manifests
//! (`draft → active → retired`) and the type registries an active manifest fills.
//!
//! Rules live in [`rules`] as plain functions; [`store`] owns the SQL (and the
//! [`store::active_manifest`] other modules read); [`service`] runs each operation with its
//! journal event; [`handlers`] are thin.

pub mod handlers;
pub mod rules;
pub mod service;
pub mod store;

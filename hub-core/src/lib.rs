//! The library every Hubplane hub is built from. It knows no hub's domain: configuration, the
//! database pools and migrations, the HTTP edge (request ids, security headers, problem+json,
//! health and metrics), API tokens and permissions, the journal's hash chain, telemetry and the
//! process lifecycle (sd_notify, ordered shutdown). `api` holds the wire types hubs and `hubctl`
//! share, so no hub links another hub's crate.

pub mod api;
pub mod auth;
pub mod capability;
pub mod config;
pub mod db;
pub mod http;
pub mod identity;
pub mod journal;
pub mod lifecycle;
pub mod retention;
pub mod sealed;
pub mod secret;
pub mod telemetry;
pub mod text;
pub mod web;

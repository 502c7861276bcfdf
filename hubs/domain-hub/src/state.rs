//! What every handler can reach.

use crate::cluster::Cluster;
use crate::outbox::Outbox;
use crate::state_hub::registrar::Link;
use crate::state_hub::StateHubClient;
use deadpool_postgres::Pool;
use hub_core::api::manifest::Manifest;
use std::sync::Arc;

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// Request pool.
    pub pool: Pool,
    /// The manifest this instance works from.
    pub manifest: Arc<Manifest>,
    /// Events on their way to the state hub.
    pub outbox: Outbox,
    /// The cluster's capabilities.
    pub cluster: Cluster,
    /// The state hub's API.
    pub state_hub: StateHubClient,
    /// How the conversation with the state hub is going.
    pub link: Arc<Link>,
}

//! The application cluster as this hub reaches it: hub-core's capability client, fed with the
//! callable list the state hub hands out. Until the first list arrives nothing is callable; when
//! the state hub goes away the last list stays in force.

use hub_core::api::capabilities::CallableCapability;
use hub_core::capability::{CapabilityClient, Registration};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

/// The capability client and the names it can call.
#[derive(Clone)]
pub struct Cluster {
    /// The only outbound path to the cluster.
    pub client: CapabilityClient,
    callable: Arc<RwLock<Option<BTreeSet<String>>>>,
}

impl Cluster {
    /// Wraps a client that has no registrations yet.
    pub fn new(client: CapabilityClient) -> Self {
        Self {
            client,
            callable: Arc::default(),
        }
    }

    /// Installs the state hub's callable list; entries with an unusable base URL are skipped.
    pub fn set_callable(&self, items: Vec<CallableCapability>) {
        let mut regs = Vec::with_capacity(items.len());
        for item in items {
            match url::Url::parse(&item.base_url) {
                Ok(base_url) => regs.push(Registration {
                    name: item.name,
                    base_url,
                    health_path: item.health_path,
                    credential: item.credential.map(SecretString::from),
                }),
                Err(e) => tracing::warn!(capability = %item.name, error = %e,
                    "callable capability has an unusable base URL; skipped"),
            }
        }
        let names: BTreeSet<String> = regs.iter().map(|r| r.name.clone()).collect();
        self.client.set_registrations(regs);
        *self
            .callable
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(names);
    }

    /// Whether a callable list has arrived at all.
    pub fn loaded(&self) -> bool {
        self.callable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Whether `capability` may be called now.
    pub fn is_callable(&self, capability: &str) -> bool {
        self.callable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|names| names.contains(capability))
    }

    /// The callable names, empty before the first list.
    pub fn callable_names(&self) -> Vec<String> {
        self.callable
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
}

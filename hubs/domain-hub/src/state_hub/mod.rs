//! The state hub, seen from a domain hub: an HTTP client for the calls a domain hub makes
//! (register, submit the manifest, heartbeat, fetch the callable capabilities, append events,
//! open and read decisions), and the background [`registrar`] that keeps the hub registered.

pub mod registrar;

use crate::config::{read_pem_bundle, StateHubSection};
use hub_core::api::capabilities::CallableList;
use hub_core::api::decisions::{Decision, EscalateRequest, NewDecision};
use hub_core::api::events::NewEvent;
use hub_core::api::manifest::Manifest;
use hub_core::api::registry::{Heartbeat, HubRegistration};
use hub_core::http::problem::{FieldError, Problem};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Why a call to the state hub did not succeed. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum StateHubError {
    /// No HTTP answer: refused connection, time-out, TLS failure.
    #[error("the state hub is unreachable: {0}")]
    Unreachable(String),
    /// An answer other than the expected 2xx.
    #[error("the state hub answered HTTP {status}: {detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The problem's detail, or the start of the body.
        detail: String,
        /// Invalid fields the problem listed.
        errors: Vec<FieldError>,
    },
    /// A 2xx answer whose body is not what the API documents.
    #[error("the state hub's answer cannot be read: {0}")]
    Decode(String),
    /// The client could not be built.
    #[error("state hub client: {0}")]
    Config(String),
}

impl StateHubError {
    /// The HTTP status, when the state hub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            StateHubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for answers no retry of the same request can change: malformed (400), too large
    /// (413), an idempotency key reused with another body (409), invalid fields (422).
    /// Everything else (down, 5xx, 401/403 until the token is fixed, 429) may pass later.
    pub fn is_permanent(&self) -> bool {
        matches!(self.status(), Some(400 | 409 | 413 | 422))
    }
}

/// What submitting the manifest achieved.
#[derive(Debug)]
pub enum ManifestOutcome {
    /// Stored as a new draft (201).
    Created,
    /// This version is stored already (200).
    AlreadyStored,
}

/// The HTTP client for one state hub. Clones share the connection pool.
#[derive(Clone)]
pub struct StateHubClient {
    http: reqwest::Client,
    base: Arc<url::Url>,
    token: Arc<SecretString>,
    hub: Arc<str>,
}

impl std::fmt::Debug for StateHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHubClient")
            .field("base", &self.base.as_str())
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl StateHubClient {
    /// A client for hub `hub` from `[state_hub]` (reads the token and the CA file).
    pub fn new(cfg: &StateHubSection, hub: &str) -> Result<Self, StateHubError> {
        let mut base = url::Url::parse(&cfg.url)
            .map_err(|e| StateHubError::Config(format!("state_hub.url: {e}")))?;
        // Joining "api/v1/..." must keep a base path such as /state/.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = cfg.token().map_err(StateHubError::Config)?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout())
            // The bearer token must never follow a redirect anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hubplane-domain-hub/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            for cert in read_pem_bundle(ca).map_err(StateHubError::Config)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| StateHubError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: Arc::new(base),
            token: Arc::new(token),
            hub: hub.into(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<url::Url, StateHubError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| StateHubError::Config(format!("bad path {path}: {e}")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::Response, StateHubError> {
        let mut req = self
            .http
            .request(method, self.url(path)?)
            .bearer_auth(self.token.expose_secret());
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req
            .send()
            .await
            .map_err(|e| StateHubError::Unreachable(transport(&e)))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(status_error(res).await)
    }

    async fn json<T: DeserializeOwned>(res: reqwest::Response) -> Result<T, StateHubError> {
        let bytes = res
            .bytes()
            .await
            .map_err(|e| StateHubError::Unreachable(transport(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| StateHubError::Decode(e.to_string()))
    }

    /// `PUT /api/v1/hubs/{name}`: registers this hub (idempotent).
    pub async fn register(&self, reg: &HubRegistration) -> Result<(), StateHubError> {
        self.send(
            Method::PUT,
            &format!("api/v1/hubs/{}", self.hub),
            Some(reg),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/hubs/{name}/manifests`; a 422 comes back as `Status` with every problem.
    pub async fn submit_manifest(
        &self,
        manifest: &Manifest,
    ) -> Result<ManifestOutcome, StateHubError> {
        let res = self
            .send(
                Method::POST,
                &format!("api/v1/hubs/{}/manifests", self.hub),
                Some(manifest),
                None,
            )
            .await?;
        Ok(if res.status() == StatusCode::CREATED {
            ManifestOutcome::Created
        } else {
            ManifestOutcome::AlreadyStored
        })
    }

    /// `POST /api/v1/hubs/{name}/heartbeat`.
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), StateHubError> {
        self.send(
            Method::POST,
            &format!("api/v1/hubs/{}/heartbeat", self.hub),
            Some(beat),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/capabilities/callable`: what this hub may call, credentials included.
    pub async fn callable(&self) -> Result<CallableList, StateHubError> {
        let res = self
            .send(
                Method::GET,
                "api/v1/capabilities/callable",
                None::<&()>,
                None,
            )
            .await?;
        Self::json(res).await
    }

    /// `POST /api/v1/events` with an idempotency key.
    pub async fn post_event(&self, event: &NewEvent, key: &str) -> Result<(), StateHubError> {
        self.send(Method::POST, "api/v1/events", Some(event), Some(key))
            .await
            .map(|_| ())
    }

    /// `POST /api/v1/decisions`.
    pub async fn create_decision(&self, new: &NewDecision) -> Result<Decision, StateHubError> {
        let res = self
            .send(Method::POST, "api/v1/decisions", Some(new), None)
            .await?;
        Self::json(res).await
    }

    /// `POST /api/v1/decisions/{id}/escalate`.
    pub async fn escalate(&self, id: Uuid, reason: &str) -> Result<(), StateHubError> {
        let body = EscalateRequest {
            reason: reason.to_owned(),
        };
        self.send(
            Method::POST,
            &format!("api/v1/decisions/{id}/escalate"),
            Some(&body),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/decisions/{id}`; `None` when there is no such decision.
    pub async fn decision(&self, id: Uuid) -> Result<Option<Decision>, StateHubError> {
        match self
            .send(
                Method::GET,
                &format!("api/v1/decisions/{id}"),
                None::<&()>,
                None,
            )
            .await
        {
            Ok(res) => Self::json(res).await.map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A transport error's text, with its causes (reqwest's top line alone says little).
fn transport(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn status_error(res: reqwest::Response) -> StateHubError {
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Problem>(&bytes) {
        Ok(p) => StateHubError::Status {
            status,
            detail: p.detail,
            errors: p.errors,
        },
        Err(_) => StateHubError::Status {
            status,
            detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            errors: Vec::new(),
        },
    }
}

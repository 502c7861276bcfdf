//! The HTTP side of `hubctl`: where the token comes from, how requests are sent, and how the hub's
//! `application/problem+json` answers become errors a person can act on.

use hub_core::http::problem::{Problem, PROBLEM_JSON};
use hub_core::secret::{self, SecretError, SecretSource};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable holding the token itself (a `--token-file` wins over it).
pub const TOKEN_ENV: &str = "HUBCTL_TOKEN";
/// The header that names a retried write.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header the hub sets on a replayed write.
const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";
/// The header that resumes an event stream.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";
/// A followed stream sends a keep-alive every 15 s; silence for this long means it is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// Everything that can go wrong talking to the hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No token configured.
    #[error(
        "no API token: pass --token-file PATH, or set HUBCTL_TOKEN_FILE or {TOKEN_ENV} \
         (`hubctl tokens create` makes one, or use the hub's bootstrap admin token file)"
    )]
    NoToken,
    /// The token file cannot be read (the message names the file, never the content).
    #[error("cannot read the API token: {0}")]
    TokenFile(SecretError),
    /// The token cannot be sent as a header value.
    #[error("the API token contains characters that cannot be sent in an HTTP header")]
    TokenNotHeaderSafe,
    /// `--url` is not usable.
    #[error("--url {0}: only http:// and https:// base URLs are supported")]
    BadBaseUrl(Url),
    /// `--ca-file` is not usable.
    #[error("--ca-file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Nothing answered.
    #[error("cannot reach the hub at {url}: {cause}")]
    Connect {
        /// Where.
        url: Url,
        /// Why, as the OS or TLS stack said it.
        cause: String,
    },
    /// The hub did not answer in time.
    #[error("no answer from {url} within {seconds} s (raise --timeout?)")]
    Timeout {
        /// Where.
        url: Url,
        /// The limit.
        seconds: u64,
    },
    /// The hub answered with a problem document.
    #[error("{}", describe_problem(.0))]
    Api(Problem),
    /// Something answered with an error that is not a problem document (a proxy, say).
    #[error("{url} answered {status}: {body}")]
    Http {
        /// Where.
        url: Url,
        /// Status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// The body is not what the API promises.
    #[error("unexpected response from {url}: {reason}")]
    Decode {
        /// Where.
        url: Url,
        /// What is wrong.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of an error answer, if the hub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(p) => Some(p.status),
            ClientError::Http { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }
}

/// `<title> (<status>): <detail>` and one line per invalid field.
fn describe_problem(p: &Problem) -> String {
    let mut s = format!("{} ({}): {}", p.title, p.status, p.detail);
    for e in &p.errors {
        s.push_str(&format!("\n  {}: {}", e.field, e.message));
    }
    s
}

/// Reads the API token: `--token-file`/`HUBCTL_TOKEN_FILE` first, else `HUBCTL_TOKEN`.
pub fn load_token(file: Option<&Path>) -> Result<SecretString, ClientError> {
    if let Some(path) = file {
        return secret::read(&SecretSource::File(path.to_path_buf()), 1)
            .map_err(ClientError::TokenFile);
    }
    match std::env::var(TOKEN_ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_owned())),
        _ => Err(ClientError::NoToken),
    }
}

/// How to reach the hub.
pub struct ClientOptions<'a> {
    /// Base URL, e.g. `https://state.mgmt.example.org`.
    pub base: Url,
    /// Bearer token.
    pub token: SecretString,
    /// Extra root CA (PEM).
    pub ca_file: Option<&'a Path>,
    /// Per-request time-out.
    pub timeout: Duration,
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// The JSON body (`null` when empty).
    pub body: Value,
    /// The hub returned a stored result for a retried write.
    pub replayed: bool,
}

/// The state hub's REST API.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
}

impl Client {
    /// Builds a client; the token is attached to every request and marked sensitive.
    pub fn new(opts: ClientOptions<'_>) -> Result<Client, ClientError> {
        if !matches!(opts.base.scheme(), "http" | "https") || opts.base.cannot_be_a_base() {
            return Err(ClientError::BadBaseUrl(opts.base));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", opts.token.expose_secret()))
            .map_err(|_| ClientError::TokenNotHeaderSafe)?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hubctl/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .read_timeout(opts.timeout.max(STREAM_SILENCE))
            // A bearer token must not follow a redirect to wherever it points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = opts.ca_file {
            let ca_err = |reason: String| ClientError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ca_err(format!("not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(ca_err("holds no PEM certificate".to_owned()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(error_chain(&e)))?;
        Ok(Client {
            http,
            base: opts.base,
            timeout: opts.timeout,
        })
    }

    /// The URL of `/api/v1/<segments…>`, each segment percent-encoded.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// A request to `/api/v1/<segments…>`.
    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.endpoint(segments))
    }

    /// `GET /api/v1/<segments…>`.
    pub fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::GET, segments)
    }

    /// `POST /api/v1/<segments…>` with a JSON body.
    pub fn post(&self, segments: &[&str], body: &impl serde::Serialize) -> RequestBuilder {
        self.request(Method::POST, segments).json(body)
    }

    /// Sends a request and decodes its JSON answer; error answers become [`ClientError`]s.
    pub async fn send(&self, req: RequestBuilder) -> Result<Reply, ClientError> {
        let res = self.open(req.timeout(self.timeout)).await?;
        let url = res.url().clone();
        let replayed = res
            .headers()
            .get(IDEMPOTENCY_REPLAYED)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let bytes = res.bytes().await.map_err(|e| self.transport(&url, &e))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                url: url.clone(),
                reason: format!("body is not JSON ({e})"),
            })?
        };
        Ok(Reply { body, replayed })
    }

    /// Sends a request and returns the response once its status is a success (for streams).
    pub async fn open(&self, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let (client, req) = req.build_split();
        let req = req.map_err(|e| ClientError::Setup(error_chain(&e)))?;
        let url = req.url().clone();
        let res = client
            .execute(req)
            .await
            .map_err(|e| self.transport(&url, &e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(self.error_answer(res).await)
    }

    /// Turns an error answer into a [`ClientError`], preferring the problem document.
    async fn error_answer(&self, res: reqwest::Response) -> ClientError {
        let url = res.url().clone();
        let status = res.status();
        let is_problem = header_text(res.headers(), CONTENT_TYPE)
            .is_some_and(|ct| ct.starts_with(PROBLEM_JSON) || ct.starts_with("application/json"));
        let bytes = res.bytes().await.unwrap_or_default();
        if is_problem {
            if let Ok(p) = serde_json::from_slice::<Problem>(&bytes) {
                return ClientError::Api(p);
            }
        }
        if status.is_redirection() {
            return ClientError::Http {
                url,
                status,
                body: "redirects are not followed; point --url at the hub itself".to_owned(),
            };
        }
        let text = String::from_utf8_lossy(&bytes);
        let body: String = text
            .chars()
            .filter(|c| !c.is_control() || *c == ' ')
            .take(300)
            .collect();
        ClientError::Http {
            url,
            status,
            body: if body.trim().is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                body
            },
        }
    }

    /// Maps a transport failure to a message naming the URL.
    pub fn transport(&self, url: &Url, e: &reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.clone(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            ClientError::Connect {
                url: url.clone(),
                cause: error_chain(e),
            }
        }
    }
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The causes of an error, outermost first, without reqwest's repetition of the URL.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = e.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// An `If-Match` value: a bare version number is quoted into the hub's strong `ETag` form.
pub fn if_match_value(etag: &str) -> String {
    let t = etag.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        format!("\"{t}\"")
    } else {
        t.to_owned()
    }
}

/// Adds `If-Match` when the caller asked for it.
pub fn with_if_match(req: RequestBuilder, etag: Option<&str>) -> RequestBuilder {
    match etag {
        Some(e) => req.header(IF_MATCH, if_match_value(e)),
        None => req,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::http::problem::FieldError;

    fn client(base: &str) -> Client {
        Client::new(ClientOptions {
            base: Url::parse(base).unwrap(),
            token: SecretString::from("hpt_test".to_owned()),
            ca_file: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn endpoints_keep_a_base_path_and_encode_segments() {
        let c = client("https://hub.example.org/state/");
        assert_eq!(
            c.endpoint(&["workstreams", "a b/c"]).as_str(),
            "https://hub.example.org/state/api/v1/workstreams/a%20b%2Fc"
        );
        let c = client("http://127.0.0.1:8080");
        assert_eq!(
            c.endpoint(&["events"]).as_str(),
            "http://127.0.0.1:8080/api/v1/events"
        );
    }

    #[test]
    fn problems_print_title_status_detail_and_fields() {
        let p = Problem {
            kind: "urn:hubplane:problem:validation-failed".into(),
            title: "Validation failed".into(),
            status: 422,
            detail: "title: must not be empty".into(),
            errors: vec![FieldError::new("title", "must not be empty")],
        };
        assert_eq!(
            ClientError::Api(p).to_string(),
            "Validation failed (422): title: must not be empty\n  title: must not be empty"
        );
    }

    #[test]
    fn if_match_quotes_bare_versions() {
        assert_eq!(if_match_value("3"), "\"3\"");
        assert_eq!(if_match_value("\"3\""), "\"3\"");
        assert_eq!(if_match_value("*"), "*");
    }

    #[test]
    fn unusable_ca_files_are_named() {
        let options = |ca: &'static str| ClientOptions {
            base: Url::parse("https://hub.example.org").unwrap(),
            token: SecretString::from("hpt_test".to_owned()),
            ca_file: Some(Path::new(ca)),
            timeout: Duration::from_secs(5),
        };
        let err = Client::new(options("/nonexistent/ca.pem"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("--ca-file /nonexistent/ca.pem: "), "{err}");
        let err = Client::new(options(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("PEM certificate"), "{err}");
    }

    #[test]
    fn tokens_are_never_in_debug_output_and_bad_bases_are_refused() {
        let c = Client::new(ClientOptions {
            base: Url::parse("ftp://hub").unwrap(),
            token: SecretString::from("hpt_secret".to_owned()),
            ca_file: None,
            timeout: Duration::from_secs(5),
        });
        assert!(matches!(c, Err(ClientError::BadBaseUrl(_))));
        assert!(!format!("{:?}", SecretString::from("hpt_secret".to_owned())).contains("hpt_"));
    }
}

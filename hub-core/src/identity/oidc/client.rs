//! The relying party proper: a discovery cache shared by every request, the authorization URL,
//! the code exchange and the checks on what comes back.

use super::{Authorization, OidcConfig, OidcError, OidcIdentity, PendingLogin};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreResponseType,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::reqwest;
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AuthType, AuthenticationFlow,
    AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpClientError, IdToken, IdTokenClaims, IdTokenFields, IssuerUrl, JwsSigningAlgorithm, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, UserInfoClaims, UserInfoError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// A pending login older than this is refused: the user has long given up on that tab.
pub const MAX_PENDING_AGE: ChronoDuration = ChronoDuration::minutes(10);
/// Clock difference tolerated between this host and the provider for `exp` and `iat`.
pub const CLOCK_SKEW: ChronoDuration = ChronoDuration::seconds(60);
/// A forced discovery + JWKS refresh (after an unknown `kid` or a bad signature) happens at most
/// this often, so forged tokens cannot make the hub hammer the provider.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Every claim outside the standard set, so the configured groups claim can be read by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

type HubIdTokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type HubTokenResponse = StandardTokenResponse<HubIdTokenFields, CoreTokenType>;
type HubIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type HubIdTokenClaims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type HubUserInfo = UserInfoClaims<OtherClaims, CoreGenderClaim>;

/// `CoreClient` with [`OtherClaims`] and the endpoint states discovery leaves it in.
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    HubTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One discovery result: endpoints, keys, and when they were fetched.
struct Provider {
    client: ProviderClient,
    /// The provider's advertised id_token algorithms minus the HMAC ones: a shared-secret
    /// signature would let anyone holding the client secret mint id_tokens.
    signing_algs: Vec<CoreJwsSigningAlgorithm>,
    end_session: Option<url::Url>,
    fetched_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct Cache {
    current: Option<Arc<Provider>>,
    /// Bumped by every successful discovery.
    generation: u64,
    last_forced_refresh: Option<Instant>,
    /// The outcome of the latest failed attempt, handed to callers that queued behind it.
    last_error: Option<OidcError>,
}

/// The OIDC relying party of one hub. `Send + Sync`; share it in an `Arc`.
pub struct OidcClient {
    http: reqwest::Client,
    issuer: url::Url,
    issuer_id: IssuerUrl,
    client_id: ClientId,
    client_secret: SecretString,
    redirect: RedirectUrl,
    scopes: Vec<Scope>,
    groups_claim: String,
    discovery_ttl: Duration,
    /// Held across a discovery fetch, so concurrent logins wait for one fetch instead of each
    /// starting their own.
    cache: tokio::sync::Mutex<Cache>,
    /// Completed discovery attempts; read before queueing on `cache` to learn whether an attempt
    /// finished while waiting.
    attempts: AtomicU64,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer_id.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("redirect", &self.redirect.as_str())
            .finish_non_exhaustive()
    }
}

/// Reads a PEM bundle of extra root certificates; at least one certificate must be in it.
pub(super) fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The issuer as the provider spells it. `url::Url` always adds a `/` to an empty path, but
/// Authelia's issuer has none, and discovery and the `iss` claim are compared as exact strings.
fn issuer_identifier(issuer: &url::Url) -> String {
    let text = issuer.as_str();
    if issuer.path() == "/" && issuer.query().is_none() && issuer.fragment().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text.to_owned()
    }
}

fn transport_reason(e: &HttpClientError<reqwest::Error>) -> String {
    match e {
        HttpClientError::Reqwest(inner) if inner.is_timeout() => "timed out".to_owned(),
        HttpClientError::Reqwest(inner) if inner.is_connect() => "connection failed".to_owned(),
        _ => "request failed".to_owned(),
    }
}

/// The error and its causes on one line, for the log; none of the errors passed here carry a
/// token or code in their messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn discovery_error(e: DiscoveryError<HttpClientError<reqwest::Error>>) -> OidcError {
    match e {
        DiscoveryError::Request(inner) => OidcError::ProviderUnreachable(transport_reason(&inner)),
        DiscoveryError::Response(status, _, _) if status.is_server_error() => {
            OidcError::ProviderUnreachable(format!("discovery answered HTTP {}", status.as_u16()))
        }
        DiscoveryError::Response(_, _, why) => OidcError::Discovery(why),
        DiscoveryError::Parse(inner) => OidcError::Discovery(format!(
            "discovery document or JWKS unreadable at `{}`",
            inner.path()
        )),
        DiscoveryError::Validation(why) => OidcError::Discovery(why),
        DiscoveryError::UrlParse(inner) => OidcError::Discovery(format!("bad URL: {inner}")),
        other => OidcError::Discovery(other.to_string()),
    }
}

/// What went wrong when verifying an id_token against the keys at hand.
enum Verification {
    /// The keys may be stale: no key matches the `kid`, or the signature does not verify.
    Keys(KeyTrouble),
    /// Anything a refresh cannot fix.
    Refused(OidcError),
}

#[derive(Clone, Copy)]
enum KeyTrouble {
    UnknownKey,
    BadSignature,
}

impl KeyTrouble {
    fn into_error(self) -> OidcError {
        match self {
            KeyTrouble::UnknownKey => OidcError::UnknownSigningKey,
            KeyTrouble::BadSignature => {
                OidcError::IdToken("its signature does not verify".to_owned())
            }
        }
    }
}

fn claims_error(e: ClaimsVerificationError) -> Verification {
    let refused = |why: String| Verification::Refused(OidcError::IdToken(why));
    match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => Verification::Keys(KeyTrouble::UnknownKey),
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::CryptoError(_),
        ) => Verification::Keys(KeyTrouble::BadSignature),
        ClaimsVerificationError::SignatureVerification(other) => {
            refused(format!("signature not acceptable: {other}"))
        }
        ClaimsVerificationError::Expired(why) => {
            refused(format!("expired or not yet valid: {why}"))
        }
        ClaimsVerificationError::InvalidAudience(why) => refused(format!("wrong audience: {why}")),
        ClaimsVerificationError::InvalidIssuer(why) => refused(format!("wrong issuer: {why}")),
        ClaimsVerificationError::InvalidNonce(why) => refused(format!("wrong nonce: {why}")),
        other => refused(other.to_string()),
    }
}

/// A groups claim: an array of strings, or a single string meaning one group.
fn parse_groups(value: &serde_json::Value) -> Result<Vec<String>, String> {
    let names: Vec<String> = match value {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(one) => vec![one.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "the groups claim holds a value that is not a string".to_owned())
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("the groups claim is neither a string nor a list of strings".to_owned()),
    };
    let mut groups: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !name.is_empty() && !groups.contains(&name) {
            groups.push(name);
        }
    }
    Ok(groups)
}

/// Builds the identity from the verified id_token and, where it has them, userinfo.
fn identity(
    id: &HubIdTokenClaims,
    userinfo: Option<&HubUserInfo>,
    groups_claim: &str,
) -> Result<OidcIdentity, OidcError> {
    let from_userinfo = |f: fn(&HubUserInfo) -> Option<String>| userinfo.and_then(f);
    let username = from_userinfo(|u| u.preferred_username().map(|v| v.as_str().to_owned()))
        .or_else(|| id.preferred_username().map(|v| v.as_str().to_owned()));
    let display_name = from_userinfo(|u| u.name().and_then(|n| n.get(None)).map(|v| v.to_string()))
        .or_else(|| id.name().and_then(|n| n.get(None)).map(|v| v.to_string()));
    let email = from_userinfo(|u| u.email().map(|v| v.as_str().to_owned()))
        .or_else(|| id.email().map(|v| v.as_str().to_owned()));
    let groups = match userinfo.and_then(|u| u.additional_claims().claims.get(groups_claim)) {
        Some(value) => parse_groups(value).map_err(OidcError::Userinfo)?,
        None => match id.additional_claims().claims.get(groups_claim) {
            Some(value) => parse_groups(value).map_err(OidcError::IdToken)?,
            None => Vec::new(),
        },
    };
    Ok(OidcIdentity {
        issuer: id.issuer().as_str().to_owned(),
        subject: id.subject().as_str().to_owned(),
        username,
        display_name,
        email,
        groups,
    })
}

/// Refuses a callback whose state differs from the pending login's, or a pending login that is
/// too old (or dated in the future, which only a forged record would be).
fn check_pending(
    pending: &PendingLogin,
    returned_state: &str,
    now: DateTime<Utc>,
) -> Result<(), OidcError> {
    // Constant time, so the comparison does not tell an attacker how much of a guess was right.
    let same = pending
        .state
        .as_bytes()
        .ct_eq(returned_state.as_bytes())
        .unwrap_u8()
        == 1;
    if !same || pending.state.is_empty() {
        return Err(OidcError::StateMismatch);
    }
    let age = now.signed_duration_since(pending.created_at);
    if age > MAX_PENDING_AGE || age < -CLOCK_SKEW {
        return Err(OidcError::Expired);
    }
    Ok(())
}

impl OidcClient {
    /// Builds the HTTP client (rustls, extra roots from `ca_file`, redirects not followed, time
    /// limits); no network traffic yet.
    pub fn new(cfg: &OidcConfig, client_secret: SecretString) -> Result<Self, OidcError> {
        if client_secret.expose_secret().is_empty() {
            return Err(OidcError::Config("the client secret is empty".to_owned()));
        }
        if cfg.client_id.trim().is_empty() {
            return Err(OidcError::Config("the client id is empty".to_owned()));
        }
        let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            // A redirect followed on the provider's say-so could point the hub at internal
            // addresses (SSRF); OIDC endpoints never need one.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("hubplane/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            for cert in read_ca_file(path).map_err(OidcError::Config)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| OidcError::Config(format!("cannot build the HTTP client: {e}")))?;
        let issuer_id = IssuerUrl::new(issuer_identifier(&cfg.issuer))
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let scopes = cfg
            .scopes
            .iter()
            // `openid` is always sent by the library; listing it twice would repeat it in the URL.
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()))
            .collect();
        Ok(Self {
            http,
            issuer: cfg.issuer.clone(),
            issuer_id,
            client_id: ClientId::new(cfg.client_id.clone()),
            client_secret,
            redirect: RedirectUrl::from_url(cfg.redirect_url.clone()),
            scopes,
            groups_claim: cfg.groups_claim.clone(),
            discovery_ttl: Duration::from_secs(cfg.discovery_ttl_seconds.max(1)),
            cache: tokio::sync::Mutex::new(Cache::default()),
            attempts: AtomicU64::new(0),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &url::Url {
        &self.issuer
    }

    /// The provider's end-session (logout) URL, if it advertises one and discovery answers.
    pub async fn end_session_url(&self) -> Option<url::Url> {
        self.provider().await.ok()?.end_session.clone()
    }

    /// Whether the provider answers right now, for the break-glass decision "is it down?". Always
    /// asks the provider (its discovery document): a cached discovery says nothing about an
    /// outage that began since, and break-glass is needed exactly then.
    pub async fn provider_reachable(&self) -> bool {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer_id.as_str().trim_end_matches('/')
        );
        match self.http.get(&url).send().await {
            Ok(r) => r.status().is_success(),
            Err(e) => {
                tracing::info!(error = %e, "the OIDC provider does not answer");
                false
            }
        }
    }

    /// Discovery (cached for `discovery_ttl_seconds`), then the authorization URL with a fresh
    /// state, nonce and PKCE S256 challenge.
    pub async fn begin(&self) -> Result<Authorization, OidcError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = provider
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url,
            pending: PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                created_at: Utc::now(),
            },
        })
    }

    /// Checks the returned state (constant time) and the pending login's age, exchanges the code
    /// with the PKCE verifier (`client_secret_basic`), verifies the id_token (signature against
    /// the JWKS, refreshed once on an unknown key or bad signature, at most once a minute; `iss`,
    /// `aud`, `azp`, `exp`/`iat` with [`CLOCK_SKEW`], nonce, `at_hash`), then reads the profile
    /// from userinfo, whose `sub` must match, falling back to id_token claims it lacks.
    pub async fn complete(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
    ) -> Result<OidcIdentity, OidcError> {
        let result = self.complete_inner(pending, returned_state, code).await;
        match &result {
            Ok(who) => tracing::info!(
                issuer = %who.issuer,
                subject = %who.subject,
                username = who.username.as_deref().unwrap_or(""),
                groups = who.groups.len(),
                "OIDC login verified"
            ),
            // Info, not warn: the caller logs the refusal with what it knows (client address).
            Err(e) => {
                tracing::info!(issuer = %self.issuer_id.as_str(), error = %e, "OIDC login refused")
            }
        }
        result
    }

    async fn complete_inner(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
    ) -> Result<OidcIdentity, OidcError> {
        check_pending(pending, returned_state, Utc::now())?;
        let mut provider = self.provider().await?;

        let token = provider
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Discovery(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = token.extra_fields().id_token().ok_or_else(|| {
            OidcError::IdToken("the token response carries no id_token".to_owned())
        })?;
        let nonce = Nonce::new(pending.nonce.clone());
        let access_token = token.access_token();

        let claims = match self.verify(&provider, id_token, &nonce, access_token) {
            Ok(claims) => claims,
            Err(Verification::Refused(e)) => return Err(e),
            Err(Verification::Keys(trouble)) => {
                tracing::warn!(
                    issuer = %self.issuer_id.as_str(),
                    "id_token signing key not among the cached keys; refreshing discovery and JWKS"
                );
                let Some(fresh) = self.forced_refresh(provider.generation).await? else {
                    tracing::warn!("JWKS refresh skipped: one happened less than a minute ago");
                    return Err(trouble.into_error());
                };
                provider = fresh;
                match self.verify(&provider, id_token, &nonce, access_token) {
                    Ok(claims) => claims,
                    Err(Verification::Refused(e)) => return Err(e),
                    Err(Verification::Keys(trouble)) => return Err(trouble.into_error()),
                }
            }
        };

        let userinfo = self
            .userinfo(&provider, access_token, claims.subject())
            .await?;
        identity(&claims, userinfo.as_ref(), &self.groups_claim)
    }

    fn verify(
        &self,
        provider: &Provider,
        id_token: &HubIdToken,
        nonce: &Nonce,
        access_token: &AccessToken,
    ) -> Result<HubIdTokenClaims, Verification> {
        let verifier = provider
            .client
            .id_token_verifier()
            .set_allowed_algs(provider.signing_algs.iter().cloned())
            // The library compares `exp` with this clock; running it behind by the skew lets a
            // token from a provider whose clock is slightly ahead of ours still pass.
            .set_time_fn(|| Utc::now() - CLOCK_SKEW)
            // The token endpoint mints the id_token moments before it arrives here; one issued
            // longer ago than a whole login may take is a replay.
            .set_issue_time_verifier_fn(|iat| {
                let now = Utc::now();
                if iat > now + CLOCK_SKEW {
                    Err("issued in the future".to_owned())
                } else if iat < now - MAX_PENDING_AGE - CLOCK_SKEW {
                    Err("issued too long ago".to_owned())
                } else {
                    Ok(())
                }
            });
        let claims = id_token
            .claims(&verifier, nonce)
            .map_err(claims_error)?
            .clone();

        // The library leaves `azp` to the application: when present it must name this client.
        if let Some(azp) = claims.authorized_party() {
            if azp.as_str() != self.client_id.as_str() {
                return Err(Verification::Refused(OidcError::IdToken(
                    "it was issued to another client (azp)".to_owned(),
                )));
            }
        }
        if let Some(expected) = claims.access_token_hash() {
            let refused = |why: &str| Verification::Refused(OidcError::IdToken(why.to_owned()));
            let alg = id_token
                .signing_alg()
                .map_err(|_| refused("its signing algorithm is unusable"))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|_| refused("its signing key is unusable"))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|_| refused("its access token hash cannot be computed"))?;
            if actual != *expected {
                return Err(refused("its at_hash does not match the access token"));
            }
        }
        Ok(claims)
    }

    async fn userinfo(
        &self,
        provider: &Provider,
        access_token: &AccessToken,
        subject: &openidconnect::SubjectIdentifier,
    ) -> Result<Option<HubUserInfo>, OidcError> {
        let request = match provider
            .client
            .user_info(access_token.clone(), Some(subject.clone()))
        {
            Ok(request) => request,
            Err(_) => {
                tracing::info!("provider advertises no userinfo endpoint; using id_token claims");
                return Ok(None);
            }
        };
        let claims: HubUserInfo = request
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                UserInfoError::ClaimsVerification(ClaimsVerificationError::InvalidSubject(_)) => {
                    OidcError::Userinfo("its subject differs from the id_token's".to_owned())
                }
                UserInfoError::ClaimsVerification(other) => OidcError::Userinfo(other.to_string()),
                UserInfoError::Request(inner) => {
                    tracing::warn!(error = %chain(&inner), "userinfo request failed");
                    OidcError::ProviderUnreachable(transport_reason(&inner))
                }
                UserInfoError::Response(status, _, _) if status.is_server_error() => {
                    OidcError::ProviderUnreachable(format!(
                        "userinfo answered HTTP {}",
                        status.as_u16()
                    ))
                }
                UserInfoError::Response(status, _, why) => {
                    OidcError::Userinfo(format!("HTTP {}: {why}", status.as_u16()))
                }
                UserInfoError::Parse(inner) => {
                    OidcError::Userinfo(format!("unreadable at `{}`", inner.path()))
                }
                other => OidcError::Userinfo(other.to_string()),
            })?;
        Ok(Some(claims))
    }

    /// The cached discovery when fresh, else a new one; concurrent callers share one fetch, and
    /// callers queued behind a failed fetch get its error instead of repeating it.
    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        let attempts_seen = self.attempts.load(Ordering::Acquire);
        let mut cache = self.cache.lock().await;
        if let Some(current) = &cache.current {
            if current.fetched_at.elapsed() < self.discovery_ttl {
                return Ok(Arc::clone(current));
            }
        }
        if self.attempts.load(Ordering::Acquire) != attempts_seen {
            if let Some(e) = &cache.last_error {
                return Err(e.clone());
            }
        }
        self.fetch_into(&mut cache).await
    }

    /// A refresh after a key problem: none if another caller already refreshed since
    /// `seen_generation` (its result is returned), none if one was forced within
    /// [`FORCED_REFRESH_INTERVAL`] (`Ok(None)`).
    async fn forced_refresh(
        &self,
        seen_generation: u64,
    ) -> Result<Option<Arc<Provider>>, OidcError> {
        let mut cache = self.cache.lock().await;
        if cache.generation != seen_generation {
            if let Some(current) = &cache.current {
                return Ok(Some(Arc::clone(current)));
            }
        }
        if let Some(at) = cache.last_forced_refresh {
            if at.elapsed() < FORCED_REFRESH_INTERVAL {
                return Ok(None);
            }
        }
        // Stamped before fetching, so a failing provider is not retried on every forged token.
        cache.last_forced_refresh = Some(Instant::now());
        self.fetch_into(&mut cache).await.map(Some)
    }

    async fn fetch_into(&self, cache: &mut Cache) -> Result<Arc<Provider>, OidcError> {
        let result = self.discover(cache.generation + 1).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(provider) => {
                let provider = Arc::new(provider);
                cache.generation = provider.generation;
                cache.current = Some(Arc::clone(&provider));
                cache.last_error = None;
                Ok(provider)
            }
            Err(e) => {
                cache.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn discover(&self, generation: u64) -> Result<Provider, OidcError> {
        let metadata = ProviderMetadataWithLogout::discover_async(
            self.issuer_id.clone(),
            &self.http,
        )
        .await
        .map_err(|e| {
            let detail = chain(&e);
            let e = discovery_error(e);
            tracing::warn!(issuer = %self.issuer_id.as_str(), error = %e, %detail, "OIDC discovery failed");
            e
        })?;
        if metadata.token_endpoint().is_none() {
            return Err(OidcError::Discovery(
                "the provider advertises no token endpoint".to_owned(),
            ));
        }
        let signing_algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| !alg.uses_shared_secret())
            .cloned()
            .collect();
        if signing_algs.is_empty() {
            return Err(OidcError::Discovery(
                "the provider advertises no public-key id_token signing algorithm".to_owned(),
            ));
        }
        let end_session = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().clone());
        let keys = metadata.jwks().keys().len();
        let client = ProviderClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone())
        .set_auth_type(AuthType::BasicAuth);
        tracing::info!(issuer = %self.issuer_id.as_str(), keys, "OIDC discovery refreshed");
        Ok(Provider {
            client,
            signing_algs,
            end_session,
            fetched_at: Instant::now(),
            generation,
        })
    }
}

fn token_error(
    e: RequestTokenError<
        HttpClientError<reqwest::Error>,
        StandardErrorResponse<CoreErrorResponseType>,
    >,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(response) => {
            tracing::warn!(
                error = %response.error(),
                description = response.error_description().map(String::as_str).unwrap_or(""),
                "token endpoint refused the authorization code"
            );
            OidcError::CodeRejected(response.error().to_string())
        }
        RequestTokenError::Request(inner) => {
            tracing::warn!(error = %chain(&inner), "token request failed");
            OidcError::ProviderUnreachable(transport_reason(&inner))
        }
        // The body of an unreadable answer may hold tokens: only the JSON path is reported.
        RequestTokenError::Parse(inner, _) => {
            OidcError::CodeRejected(format!("unreadable token response at `{}`", inner.path()))
        }
        RequestTokenError::Other(why) => OidcError::CodeRejected(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(created_at: DateTime<Utc>) -> PendingLogin {
        PendingLogin {
            state: "the-state".to_owned(),
            nonce: "the-nonce".to_owned(),
            pkce_verifier: "the-verifier".to_owned(),
            created_at,
        }
    }

    #[test]
    fn a_different_state_is_refused() {
        let now = Utc::now();
        assert!(check_pending(&pending(now), "the-state", now).is_ok());
        for forged in ["the-statf", "the-state-", "", "THE-STATE"] {
            assert!(
                matches!(
                    check_pending(&pending(now), forged, now),
                    Err(OidcError::StateMismatch)
                ),
                "{forged:?} was accepted"
            );
        }
        let mut empty = pending(now);
        empty.state.clear();
        assert!(matches!(
            check_pending(&empty, "", now),
            Err(OidcError::StateMismatch)
        ));
    }

    #[test]
    fn a_pending_login_older_than_ten_minutes_is_refused() {
        let now = Utc::now();
        let fresh = pending(now - ChronoDuration::minutes(9));
        assert!(check_pending(&fresh, "the-state", now).is_ok());
        let stale = pending(now - ChronoDuration::minutes(10) - ChronoDuration::seconds(1));
        assert!(matches!(
            check_pending(&stale, "the-state", now),
            Err(OidcError::Expired)
        ));
        let future = pending(now + ChronoDuration::minutes(5));
        assert!(matches!(
            check_pending(&future, "the-state", now),
            Err(OidcError::Expired)
        ));
    }

    #[test]
    fn groups_accept_a_list_or_a_single_string() {
        let list = serde_json::json!(["admins", "devs", "admins", ""]);
        assert_eq!(parse_groups(&list).unwrap(), ["admins", "devs"]);
        let one = serde_json::json!("admins");
        assert_eq!(parse_groups(&one).unwrap(), ["admins"]);
        assert!(parse_groups(&serde_json::Value::Null).unwrap().is_empty());
        assert!(parse_groups(&serde_json::json!(7)).is_err());
        assert!(parse_groups(&serde_json::json!(["ok", 7])).is_err());
    }

    #[test]
    fn issuer_identifier_drops_the_slash_url_adds() {
        let bare = url::Url::parse("https://auth.example.com").unwrap();
        assert_eq!(issuer_identifier(&bare), "https://auth.example.com");
        let path = url::Url::parse("https://sso.example.com/realms/mgmt").unwrap();
        assert_eq!(
            issuer_identifier(&path),
            "https://sso.example.com/realms/mgmt"
        );
    }

    #[test]
    fn the_client_is_shareable_and_hides_its_secret() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OidcClient>();

        let cfg: OidcConfig = toml::from_str(
            "issuer = \"https://auth.example.com\"\nclient_id = \"state-hub\"\nredirect_url = \"https://hub.example.com/auth/callback\"\n",
        )
        .unwrap();
        let client = OidcClient::new(&cfg, SecretString::from("client-secret-value-1234")).unwrap();
        let text = format!("{client:?}");
        assert!(text.contains("state-hub"), "{text}");
        assert!(!text.contains("client-secret-value"), "{text}");
        assert_eq!(client.issuer().as_str(), "https://auth.example.com/");

        // The futures must be Send so handlers can run them on any worker.
        fn assert_send<T: Send>(_: &T) {}
        let p = pending(Utc::now());
        assert_send(&client.begin());
        assert_send(&client.complete(&p, "s", "c"));
        assert_send(&client.provider_reachable());
    }

    #[test]
    fn new_refuses_an_empty_secret_and_an_unreadable_ca_file() {
        let mut cfg: OidcConfig = toml::from_str(
            "issuer = \"https://auth.example.com\"\nclient_id = \"state-hub\"\nredirect_url = \"https://hub.example.com/auth/callback\"\n",
        )
        .unwrap();
        assert!(matches!(
            OidcClient::new(&cfg, SecretString::from("")),
            Err(OidcError::Config(_))
        ));
        cfg.ca_file = Some(std::path::PathBuf::from("/nonexistent/hub/ca.pem"));
        let err = OidcClient::new(&cfg, SecretString::from("client-secret-value-1234"))
            .err()
            .unwrap();
        assert!(matches!(err, OidcError::Config(_)));
        assert!(err.to_string().contains("/nonexistent/hub/ca.pem"), "{err}");
    }
}

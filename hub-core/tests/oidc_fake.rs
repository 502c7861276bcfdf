#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OIDC relying party against a fake provider shaped like Authelia (same endpoint paths,
//! PKCE S256 and `client_secret_basic` enforced, profile claims in userinfo), run in-process on
//! 127.0.0.1. Each test turns one knob of the fake and asserts which refusal the hub gives.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hub_core::identity::oidc::{OidcClient, OidcConfig, OidcError, PendingLogin};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "state-hub";
const CLIENT_SECRET: &str = "fake-provider-client-secret-0123456789";
const REDIRECT: &str = "https://hub.example.com/auth/callback";
const SUBJECT: &str = "0b7f5a7e-1d2c-4c1e-9a55-3f0e6b1f2a10";

/// A signing key; `kid` is what the JOSE header and the JWKS call it.
struct Key {
    kid: String,
    private: RsaPrivateKey,
}

impl Key {
    fn load(kid: &str, pem: &str) -> Arc<Self> {
        Arc::new(Self {
            kid: kid.to_owned(),
            private: RsaPrivateKey::from_pkcs8_pem(pem).unwrap(),
        })
    }
    fn a() -> Arc<Self> {
        Self::load("key-a", include_str!("oidc/key-a.pem"))
    }
    fn b() -> Arc<Self> {
        Self::load("key-b", include_str!("oidc/key-b.pem"))
    }
    fn rogue(kid: &str) -> Arc<Self> {
        Self::load(kid, include_str!("oidc/key-rogue.pem"))
    }

    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = SigningKey::<Sha256>::new(self.private.clone());
        let signature = signer.sign(input.as_bytes()).to_vec();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// One authorization the fake handed out a code for.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    used: bool,
}

/// The knobs and counters of the fake provider.
struct FakeState {
    published: Vec<Arc<Key>>,
    signer: Arc<Key>,
    /// Merged into the id_token's claims last; a `null` removes the claim.
    id_token_overrides: Map<String, Value>,
    /// Served by userinfo next to `sub`.
    userinfo_claims: Map<String, Value>,
    userinfo_sub: Option<String>,
    grants: HashMap<String, Grant>,
    access_tokens: HashMap<String, String>,
    /// Discovery answers with a redirect to `/elsewhere` instead of the document.
    redirect_discovery: bool,
    elsewhere_fetches: usize,
    discovery_fetches: usize,
    jwks_fetches: usize,
    token_requests: usize,
}

struct Fake {
    issuer: String,
    state: Mutex<FakeState>,
}

impl Fake {
    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn oauth_error(error: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({"error": error, "error_description": "fake provider refused"}))
}

async fn discovery(fake: web::Data<Fake>) -> HttpResponse {
    if fake.with(|s| {
        s.discovery_fetches += 1;
        s.redirect_discovery
    }) {
        return HttpResponse::Found()
            .insert_header(("Location", format!("{}/elsewhere", fake.issuer)))
            .finish();
    }
    let i = &fake.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/api/oidc/authorization"),
        "token_endpoint": format!("{i}/api/oidc/token"),
        "userinfo_endpoint": format!("{i}/api/oidc/userinfo"),
        "jwks_uri": format!("{i}/jwks.json"),
        "end_session_endpoint": format!("{i}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["form_post", "query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": ["sub", "preferred_username", "name", "email", "groups"],
    }))
}

async fn elsewhere(fake: web::Data<Fake>) -> HttpResponse {
    fake.with(|s| s.elsewhere_fetches += 1);
    HttpResponse::Ok().json(json!({}))
}

async fn jwks(fake: web::Data<Fake>) -> HttpResponse {
    let keys: Vec<Value> = fake.with(|s| {
        s.jwks_fetches += 1;
        s.published.iter().map(|k| k.jwk()).collect()
    });
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn authorization(
    fake: web::Data<Fake>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let q = query.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let scopes: Vec<String> = get("scope").split(' ').map(str::to_owned).collect();
    let acceptable = get("response_type") == "code"
        && get("client_id") == CLIENT_ID
        && get("redirect_uri") == REDIRECT
        && scopes.iter().any(|s| s == "openid")
        && get("code_challenge_method") == "S256"
        && get("code_challenge").len() >= 43
        && !get("nonce").is_empty()
        && !get("state").is_empty();
    if !acceptable {
        return HttpResponse::BadRequest().body(format!("bad authorization request: {q:?}"));
    }
    let code = random_token();
    fake.with(|s| {
        s.grants.insert(
            code.clone(),
            Grant {
                nonce: get("nonce"),
                challenge: get("code_challenge"),
                redirect_uri: get("redirect_uri"),
                used: false,
            },
        )
    });
    let mut location = url::Url::parse(REDIRECT).unwrap();
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"))
        .append_pair("iss", &fake.issuer);
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

fn client_authenticated(req: &HttpRequest) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

async fn token(
    fake: web::Data<Fake>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    fake.with(|s| s.token_requests += 1);
    if !client_authenticated(&req) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let f = form.into_inner();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type");
    }
    let issuer = fake.issuer.clone();
    fake.with(|s| {
        let Some(grant) = s.grants.get_mut(&get("code")) else {
            return oauth_error("invalid_grant");
        };
        if grant.used {
            return oauth_error("invalid_grant");
        }
        grant.used = true;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
        if challenge != grant.challenge || get("redirect_uri") != grant.redirect_uri {
            return oauth_error("invalid_grant");
        }
        let access_token = random_token();
        let digest = Sha256::digest(access_token.as_bytes());
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": issuer,
            "sub": SUBJECT,
            "aud": [CLIENT_ID],
            "azp": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "auth_time": now - 5,
            "nonce": grant.nonce,
            "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
            "amr": ["pwd"],
        });
        let object = claims.as_object_mut().unwrap();
        for (k, v) in &s.id_token_overrides {
            if v.is_null() {
                object.remove(k);
            } else {
                object.insert(k.clone(), v.clone());
            }
        }
        let id_token = s.signer.sign(&claims);
        s.access_tokens
            .insert(access_token.clone(), SUBJECT.to_owned());
        HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": 3599,
                "scope": "openid profile email groups",
                "id_token": id_token,
            }))
    })
}

async fn userinfo(fake: web::Data<Fake>, req: HttpRequest) -> HttpResponse {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    fake.with(|s| {
        let Some(sub) = s.access_tokens.get(&bearer).cloned() else {
            return HttpResponse::Unauthorized().json(json!({"error": "invalid_token"}));
        };
        let mut body = s.userinfo_claims.clone();
        body.insert(
            "sub".to_owned(),
            Value::String(s.userinfo_sub.clone().unwrap_or(sub)),
        );
        HttpResponse::Ok().json(Value::Object(body))
    })
}

/// The fake provider on a random loopback port.
struct Provider {
    fake: web::Data<Fake>,
    issuer: String,
    handle: actix_web::dev::ServerHandle,
}

impl Provider {
    async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fake = web::Data::new(Fake {
            issuer: issuer.clone(),
            state: Mutex::new(FakeState {
                published: vec![Key::a()],
                signer: Key::a(),
                id_token_overrides: Map::new(),
                userinfo_claims: json!({
                    "preferred_username": "alice",
                    "name": "Alice Adams",
                    "email": "alice@example.com",
                    "email_verified": true,
                    "groups": ["hub_admins", "hub_members"],
                })
                .as_object()
                .cloned()
                .unwrap(),
                userinfo_sub: None,
                grants: HashMap::new(),
                access_tokens: HashMap::new(),
                redirect_discovery: false,
                elsewhere_fetches: 0,
                discovery_fetches: 0,
                jwks_fetches: 0,
                token_requests: 0,
            }),
        });
        let data = fake.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks.json", web::get().to(jwks))
                .route("/elsewhere", web::get().to(elsewhere))
                .route("/api/oidc/authorization", web::get().to(authorization))
                .route("/api/oidc/token", web::post().to(token))
                .route("/api/oidc/userinfo", web::get().to(userinfo))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            fake,
            issuer,
            handle,
        }
    }

    fn config(issuer: &str) -> OidcConfig {
        toml::from_str(&format!(
            "issuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nredirect_url = \"{REDIRECT}\"\ntimeout_seconds = 5\n"
        ))
        .unwrap()
    }

    fn client(&self) -> OidcClient {
        OidcClient::new(
            &Self::config(&self.issuer),
            SecretString::from(CLIENT_SECRET),
        )
        .unwrap()
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        self.fake.with(f)
    }

    fn override_id_token(&self, claim: &str, value: Value) {
        self.with(|s| s.id_token_overrides.insert(claim.to_owned(), value));
    }

    /// What a browser does between `begin()` and the callback: follow the authorization URL
    /// (the fake approves at once) and read `code` and `state` from the redirect.
    async fn authorize(&self, client: &OidcClient) -> (PendingLogin, String, String) {
        let authorization = client.begin().await.unwrap();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = browser.get(authorization.url.clone()).send().await.unwrap();
        assert_eq!(
            response.status(),
            302,
            "{}",
            response.text().await.unwrap_or_default()
        );
        let location = url::Url::parse(
            response
                .headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        (authorization.pending, param("state"), param("code"))
    }

    /// A whole login; the error is what the tests look at.
    async fn login(
        &self,
        client: &OidcClient,
    ) -> Result<hub_core::identity::oidc::OidcIdentity, OidcError> {
        let (pending, state, code) = self.authorize(client).await;
        client.complete(&pending, &state, &code).await
    }

    fn jwks_fetches(&self) -> usize {
        self.with(|s| s.jwks_fetches)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // Stopping is asynchronous; the runtime ending with the test finishes it.
        drop(self.handle.stop(false));
    }
}

fn refused_id_token(result: Result<hub_core::identity::oidc::OidcIdentity, OidcError>, why: &str) {
    match result {
        Err(OidcError::IdToken(reason)) => assert!(
            reason.contains(why),
            "expected an id_token refusal mentioning {why:?}, got {reason:?}"
        ),
        other => panic!("expected OidcError::IdToken({why:?}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_login_reads_the_profile_from_userinfo_and_caches_discovery() {
    let provider = Provider::start().await;
    let client = provider.client();

    let authorization = client.begin().await.unwrap();
    let url = &authorization.url;
    assert!(url
        .as_str()
        .starts_with(&format!("{}/api/oidc/authorization?", provider.issuer)));
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["scope"], "openid profile email groups");
    assert_eq!(query["state"], authorization.pending.state);
    assert_eq!(query["nonce"], authorization.pending.nonce);
    assert!(!url.as_str().contains(&authorization.pending.pkce_verifier));

    let who = provider.login(&client).await.unwrap();
    assert_eq!(who.issuer, provider.issuer);
    assert_eq!(who.subject, SUBJECT);
    assert_eq!(who.username.as_deref(), Some("alice"));
    assert_eq!(who.display_name.as_deref(), Some("Alice Adams"));
    assert_eq!(who.email.as_deref(), Some("alice@example.com"));
    assert_eq!(who.groups, ["hub_admins", "hub_members"]);

    assert_eq!(
        client.end_session_url().await.map(|u| u.to_string()),
        Some(format!("{}/logout", provider.issuer))
    );
    // Two begins, one complete and the end-session look-up: discovery was fetched once.
    assert_eq!(provider.with(|s| s.discovery_fetches), 1);
    assert_eq!(provider.jwks_fetches(), 1);
    // The reachability probe always asks the provider: a cached discovery says nothing about
    // an outage that began since (break-glass depends on it).
    assert!(client.provider_reachable().await);
    assert_eq!(provider.with(|s| s.discovery_fetches), 2);
}

#[tokio::test]
async fn a_single_string_groups_claim_is_one_group() {
    let provider = Provider::start().await;
    provider.with(|s| {
        s.userinfo_claims
            .insert("groups".into(), json!("hub_viewers"))
    });
    let who = provider.login(&provider.client()).await.unwrap();
    assert_eq!(who.groups, ["hub_viewers"]);
}

#[tokio::test]
async fn id_token_claims_fill_in_only_what_userinfo_lacks() {
    let provider = Provider::start().await;
    provider.with(|s| {
        s.userinfo_claims.clear();
        s.userinfo_claims
            .insert("email".into(), json!("alice@userinfo.example"));
    });
    provider.override_id_token("preferred_username", json!("alice-from-id-token"));
    provider.override_id_token("email", json!("alice@id-token.example"));
    provider.override_id_token("groups", json!(["from_id_token"]));
    let who = provider.login(&provider.client()).await.unwrap();
    assert_eq!(who.username.as_deref(), Some("alice-from-id-token"));
    assert_eq!(who.email.as_deref(), Some("alice@userinfo.example"));
    assert_eq!(who.groups, ["from_id_token"]);
    assert_eq!(who.display_name, None);
}

#[tokio::test]
async fn a_tampered_state_is_refused_before_the_code_is_spent() {
    let provider = Provider::start().await;
    let client = provider.client();
    let (pending, state, code) = provider.authorize(&client).await;
    let mut forged = state.clone();
    forged.push('x');
    assert!(matches!(
        client.complete(&pending, &forged, &code).await,
        Err(OidcError::StateMismatch)
    ));
    assert_eq!(provider.with(|s| s.token_requests), 0);
    // The genuine callback still works: the refusal did not burn the code.
    assert!(client.complete(&pending, &state, &code).await.is_ok());
}

#[tokio::test]
async fn a_pending_login_older_than_ten_minutes_is_refused() {
    let provider = Provider::start().await;
    let client = provider.client();
    let (mut pending, state, code) = provider.authorize(&client).await;
    pending.created_at -= chrono::Duration::minutes(11);
    assert!(matches!(
        client.complete(&pending, &state, &code).await,
        Err(OidcError::Expired)
    ));
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_provider() {
    let provider = Provider::start().await;
    let client = provider.client();
    let (mut pending, state, code) = provider.authorize(&client).await;
    pending.pkce_verifier = "a-verifier-that-does-not-match-the-challenge-at-all-0123".into();
    match client.complete(&pending, &state, &code).await {
        Err(OidcError::CodeRejected(why)) => assert_eq!(why, "invalid_grant"),
        other => panic!("expected CodeRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    let provider = Provider::start().await;
    provider.override_id_token("nonce", json!("a-nonce-from-another-login"));
    refused_id_token(provider.login(&provider.client()).await, "nonce");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let provider = Provider::start().await;
    let now = chrono::Utc::now().timestamp();
    provider.override_id_token("exp", json!(now - 300));
    provider.override_id_token("iat", json!(now - 600));
    refused_id_token(provider.login(&provider.client()).await, "expired");
}

#[tokio::test]
async fn an_id_token_issued_in_the_future_is_refused() {
    let provider = Provider::start().await;
    let now = chrono::Utc::now().timestamp();
    provider.override_id_token("iat", json!(now + 600));
    provider.override_id_token("exp", json!(now + 900));
    refused_id_token(provider.login(&provider.client()).await, "future");
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    let provider = Provider::start().await;
    provider.override_id_token("aud", json!(["dev-hub"]));
    refused_id_token(provider.login(&provider.client()).await, "audience");

    // Listing this client next to an untrusted one is refused as well.
    provider.override_id_token("aud", json!([CLIENT_ID, "dev-hub"]));
    refused_id_token(provider.login(&provider.client()).await, "audience");
}

#[tokio::test]
async fn an_id_token_authorized_for_another_party_is_refused() {
    let provider = Provider::start().await;
    provider.override_id_token("azp", json!("dev-hub"));
    refused_id_token(provider.login(&provider.client()).await, "azp");
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    let provider = Provider::start().await;
    provider.override_id_token("iss", json!("https://auth.evil.example"));
    refused_id_token(provider.login(&provider.client()).await, "issuer");
}

#[tokio::test]
async fn an_at_hash_for_another_access_token_is_refused() {
    let provider = Provider::start().await;
    provider.override_id_token("at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA"));
    refused_id_token(provider.login(&provider.client()).await, "at_hash");
}

#[tokio::test]
async fn a_key_that_is_never_published_is_refused_after_exactly_one_jwks_refetch() {
    let provider = Provider::start().await;
    let client = provider.client();
    provider.with(|s| s.signer = Key::rogue("rogue"));
    assert!(matches!(
        provider.login(&client).await,
        Err(OidcError::UnknownSigningKey)
    ));
    assert_eq!(provider.jwks_fetches(), 2);

    // A second forged token within the minute does not make the hub fetch again.
    assert!(matches!(
        provider.login(&client).await,
        Err(OidcError::UnknownSigningKey)
    ));
    assert_eq!(provider.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_forged_signature_under_a_published_kid_is_refused() {
    let provider = Provider::start().await;
    provider.with(|s| s.signer = Key::rogue("key-a"));
    refused_id_token(provider.login(&provider.client()).await, "signature");
    assert_eq!(provider.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_key_rotated_after_discovery_is_picked_up_by_one_refetch() {
    let provider = Provider::start().await;
    let client = provider.client();
    let (pending, state, code) = provider.authorize(&client).await;
    assert_eq!(provider.jwks_fetches(), 1);

    provider.with(|s| {
        s.published = vec![Key::b()];
        s.signer = Key::b();
    });
    let who = client.complete(&pending, &state, &code).await.unwrap();
    assert_eq!(who.subject, SUBJECT);
    assert_eq!(provider.jwks_fetches(), 2);

    // The refreshed keys are kept: the next login needs no fetch.
    provider.login(&client).await.unwrap();
    assert_eq!(provider.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_userinfo_subject_other_than_the_id_token_subject_is_refused() {
    let provider = Provider::start().await;
    provider.with(|s| s.userinfo_sub = Some("9f1d1e0a-0000-4000-8000-000000000000".into()));
    match provider.login(&provider.client()).await {
        Err(OidcError::Userinfo(why)) => assert!(why.contains("subject"), "{why}"),
        other => panic!("expected OidcError::Userinfo, got {other:?}"),
    }
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let provider = Provider::start().await;
    let client = provider.client();
    let (pending, state, code) = provider.authorize(&client).await;
    client.complete(&pending, &state, &code).await.unwrap();
    match client.complete(&pending, &state, &code).await {
        Err(e @ OidcError::CodeRejected(_)) => {
            assert!(e.to_string().contains("invalid_grant"), "{e}");
            assert!(!e.to_string().contains(&code), "the code leaked: {e}");
        }
        other => panic!("expected CodeRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_provider_that_refuses_connections_is_reported_as_down() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = OidcClient::new(
        &Provider::config(&format!("http://{closed}")),
        SecretString::from(CLIENT_SECRET),
    )
    .unwrap();
    let err = client.begin().await.unwrap_err();
    assert!(matches!(err, OidcError::ProviderUnreachable(_)), "{err:?}");
    assert!(err.is_provider_down());
    assert!(!client.provider_reachable().await);

    let pending = PendingLogin {
        state: "s".into(),
        nonce: "n".into(),
        pkce_verifier: "v".repeat(43),
        created_at: chrono::Utc::now(),
    };
    let err = client.complete(&pending, "s", "code").await.unwrap_err();
    assert!(err.is_provider_down(), "{err:?}");
}

#[tokio::test]
async fn a_provider_naming_another_issuer_is_misconfigured_not_down() {
    let provider = Provider::start().await;
    // The hub is configured with `localhost` while the provider calls itself 127.0.0.1.
    let port = url::Url::parse(&provider.issuer).unwrap().port().unwrap();
    let client = OidcClient::new(
        &Provider::config(&format!("http://localhost:{port}")),
        SecretString::from(CLIENT_SECRET),
    )
    .unwrap();
    let err = client.begin().await.unwrap_err();
    assert!(matches!(err, OidcError::Discovery(_)), "{err:?}");
    assert!(!err.is_provider_down());
}

#[tokio::test]
async fn a_redirect_from_the_provider_is_not_followed() {
    let provider = Provider::start().await;
    provider.with(|s| s.redirect_discovery = true);
    let err = provider.client().begin().await.unwrap_err();
    assert!(matches!(err, OidcError::Discovery(_)), "{err:?}");
    assert_eq!(provider.with(|s| s.elsewhere_fetches), 0);
}

//! Logging in through the real stand-ins: the Authelia-like provider over HTTPS with its own
//! CA, backed by slapd with LLDAP's layout. The provider's pages are driven by a cookie-keeping
//! client; the hub's cookies are kept by hand so the test sees every Set-Cookie.

use crate::helpers::{metric, problem, TestApp};
use crate::standins::{fixture_user, Client, Standins};
use serde_json::Value;
use std::collections::HashMap;

const SECRET: &str = "state-hub-test-client-secret-0123456789";

struct Stack {
    app: TestApp,
    standins: Standins,
}

async fn stack_with(extra: &str) -> Stack {
    let mut standins: Option<Standins> = None;
    let extra = extra.to_owned();
    let app = TestApp::spawn_bound(|port| {
        let s = Standins::start(&[Client {
            id: "state-hub".into(),
            secret: SECRET.into(),
            redirect: format!("http://127.0.0.1:{port}/auth/callback"),
        }]);
        let secret_file = s.dir.join("state-hub.secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let cfg = format!(
            "[identity.oidc]\nissuer = \"{}\"\nclient_id = \"state-hub\"\nclient_secret_file = \"{}\"\n\
             redirect_url = \"http://127.0.0.1:{port}/auth/callback\"\nca_file = \"{}\"\ntimeout_seconds = 3\n\
             [identity.ldap]\nurl = \"{}\"\nbind_password_file = \"{}\"\ntimeout_seconds = 3\n\
             [identity.break_glass]\ngroup = \"hub_breakglass\"\n{extra}",
            s.issuer(),
            secret_file.display(),
            s.ca_file().display(),
            s.ldap_url(),
            s.ldap_password_file().display()
        );
        standins = Some(s);
        cfg
    })
    .await;
    Stack {
        app,
        standins: standins.unwrap(),
    }
}

async fn stack() -> Stack {
    stack_with("").await
}

/// The hub's side of a browser: cookies kept by hand, redirects not followed.
struct HubBrowser {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    set_cookies: Vec<String>,
}

impl HubBrowser {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn absorb(&mut self, res: &reqwest::Response) {
        for h in res.headers().get_all("set-cookie") {
            let raw = h.to_str().unwrap().to_owned();
            let first = raw.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            let removed = value.is_empty() || raw.contains("Max-Age=0");
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(raw);
        }
    }
    async fn get(&mut self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let res = self
            .http
            .get(url)
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.absorb(&res);
        res
    }
    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(&res);
        res
    }
    fn session(&self) -> Option<&String> {
        self.cookies.get("__Host-state-hub-session")
    }
}

/// Opens the break-glass form at `path` and returns its token (bound to the flow cookie set).
async fn break_glass_form(hub: &mut HubBrowser, path: &str) -> String {
    let form = hub.get(path).await.text().await.unwrap();
    form.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// Starts a login at the hub and signs in at the provider; returns the callback URL the
/// provider sent the browser to (not yet opened).
async fn to_callback(s: &Stack, hub: &mut HubBrowser, uid: &str) -> String {
    let res = hub.get("/auth/oidc/start?next=/account").await;
    assert_eq!(res.status(), 303);
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&s.standins.issuer()), "{authorize}");
    assert!(
        hub.cookies.contains_key("__Host-state-hub-login"),
        "flow cookie set"
    );
    let user = fixture_user(uid);
    let provider = s.standins.provider_browser();
    let callback = s
        .standins
        .sign_in(
            &provider,
            &authorize,
            uid,
            &user.password,
            &format!("{}/auth/callback", s.app.base),
        )
        .await;
    callback.to_string()
}

async fn login(s: &Stack, uid: &str) -> HubBrowser {
    let mut hub = HubBrowser::new(&s.app.base);
    let callback = to_callback(s, &mut hub, uid).await;
    let res = hub.get(&callback).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()["location"], "/account");
    hub
}

async fn user_rows(app: &TestApp) -> Vec<(String, String, String, Vec<String>, Vec<String>)> {
    app.db
        .connect()
        .await
        .query(
            "SELECT issuer, subject, username, groups, roles FROM users ORDER BY username",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test]
async fn a_person_logs_in_through_sso_and_is_created_just_in_time_keyed_on_issuer_and_sub() {
    let s = stack().await;
    let alice = login(&s, "alice").await;
    let cookie = alice
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-state-hub-session="))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let who: Value = alice
        .http
        .get(format!("{}/api/v1/whoami", s.app.base))
        .header("cookie", alice.header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["roles"], serde_json::json!(["admin"]));
    let rows = user_rows(&s.app).await;
    assert_eq!(rows.len(), 1);
    let (issuer, subject, username, groups, roles) = &rows[0];
    assert_eq!(issuer, &s.standins.issuer());
    assert_eq!(
        subject,
        &fixture_user("alice").uuid,
        "keyed on the opaque sub"
    );
    assert_eq!(username, "alice");
    assert_eq!(groups, &vec!["hub_admins".to_owned()]);
    assert_eq!(roles, &vec!["admin".to_owned()]);
    // Only the hash of the session secret is stored.
    let secret = alice.session().unwrap().clone();
    let stored: i64 = s.app.db.connect().await
        .query_one("SELECT count(*) FROM sessions WHERE encode(secret_hash, 'escape') LIKE '%' || $1 || '%'", &[&secret])
        .await.unwrap().get(0);
    assert_eq!(stored, 0);

    // A second login in the same browser rotates the session: the old secret stops working.
    let mut again = HubBrowser::new(&s.app.base);
    again.cookies = alice.cookies.clone();
    let callback = to_callback(&s, &mut again, "alice").await;
    assert_eq!(again.get(&callback).await.status(), 303);
    assert_ne!(again.session(), alice.session(), "a new secret at login");
    let old = alice
        .http
        .get(format!("{}/api/v1/whoami", s.app.base))
        .header("cookie", alice.header())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the replaced session is gone");
    let types: Vec<String> = s
        .app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "user.created").count(), 1);
    assert_eq!(types.iter().filter(|t| *t == "session.login").count(), 2);
    assert_eq!(user_rows(&s.app).await.len(), 1, "still one person");
}

#[tokio::test]
async fn someone_in_no_mapped_group_gets_a_403_page_and_no_account() {
    let s = stack().await;
    let mut dave = HubBrowser::new(&s.app.base);
    let callback = to_callback(&s, &mut dave, "dave").await;
    let res = dave.get(&callback).await;
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("none of the groups"), "{html}");
    assert!(html.contains("hub_admins"), "{html}");
    assert!(dave.session().is_none(), "no session cookie");
    assert!(user_rows(&s.app).await.is_empty(), "no account was created");
    let sessions: i64 = s
        .app
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
    let types: Vec<String> = s
        .app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(types.contains(&"login.denied".to_owned()));
}

#[tokio::test]
async fn replayed_tampered_or_foreign_callbacks_are_refused_and_create_nothing() {
    let s = stack().await;
    let mut bob = HubBrowser::new(&s.app.base);
    let callback = to_callback(&s, &mut bob, "bob").await;
    let flow = bob.cookies.clone();

    // Tampered state: refused, and the flow is spent.
    let tampered = callback.replace("state=", "state=x");
    let res = bob.get(&tampered).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Login failed"));
    // The same callback again (a replay) finds no flow.
    bob.cookies = flow.clone();
    let res = bob.get(&callback).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("already used"));
    // A callback in a browser that did not start the login.
    let mut other = HubBrowser::new(&s.app.base);
    let res = other.get(&callback).await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("not started in this browser"));
    // The provider's own error answer shows only its code.
    let res = other
        .get("/auth/callback?error=access_denied&error_description=%3Cscript%3Eevil")
        .await;
    let html = res.text().await.unwrap();
    assert!(
        html.contains("access_denied") && !html.contains("evil"),
        "{html}"
    );
    assert!(user_rows(&s.app).await.is_empty());
}

#[tokio::test]
async fn provider_down_gives_a_clear_page_and_break_glass_works_only_then() {
    let s = stack().await;
    let mut erin = HubBrowser::new(&s.app.base);
    let erin_pw = fixture_user("erin").password;

    // The form while SSO works: the login is refused.
    let token = break_glass_form(&mut erin, "/auth/break-glass").await;
    let res = erin
        .post_form(
            "/auth/break-glass",
            &[
                ("username", "erin"),
                ("password", &erin_pw),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Single sign-on is working"));

    s.standins.stop_oidc();
    let res = erin.get("/auth/oidc/start").await;
    assert_eq!(res.status(), 503);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("does not answer") && html.contains("/auth/break-glass"),
        "{html}"
    );

    // Without the form's token: refused.
    let _ = erin.get("/auth/break-glass").await;
    let res = erin
        .post_form(
            "/auth/break-glass",
            &[
                ("username", "erin"),
                ("password", &erin_pw),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    // Wrong password.
    let token = break_glass_form(&mut erin, "/auth/break-glass").await;
    let res = erin
        .post_form(
            "/auth/break-glass",
            &[
                ("username", "erin"),
                ("password", "wrong-password"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    // bob is not in the break-glass group.
    let mut bob = HubBrowser::new(&s.app.base);
    let token = break_glass_form(&mut bob, "/auth/break-glass").await;
    let res = bob
        .post_form(
            "/auth/break-glass",
            &[
                ("username", "bob"),
                ("password", &fixture_user("bob").password),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("not in the break-glass group"));
    assert!(bob.session().is_none());

    // erin, correctly: a session, an audit event and an escalated decision for review.
    let token = break_glass_form(&mut erin, "/auth/break-glass?next=/account").await;
    let res = erin
        .post_form(
            "/auth/break-glass",
            &[
                ("username", "erin"),
                ("password", &erin_pw),
                ("csrf_token", &token),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert!(erin.session().is_some());
    let html = erin.get("/account").await.text().await.unwrap();
    assert!(html.contains("break-glass"), "the page marks the session");
    let decisions: Value = s.app.get_json("/api/v1/decisions?status=escalated").await;
    let items = decisions["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{decisions}");
    assert!(items[0]["title"]
        .as_str()
        .unwrap()
        .contains("break-glass login of erin"));
    assert_eq!(
        items[0]["proposed_by"], "erin",
        "so erin cannot approve it herself"
    );
    let events = s.app.all_events().await;
    let bg: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "session.break_glass")
        .collect();
    assert_eq!(bg.len(), 1);
    assert!(bg[0].decision_id.is_some(), "linked to the review decision");
    let rows = user_rows(&s.app).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].0.starts_with("ldap:"),
        "keyed on the directory: {:?}",
        rows[0]
    );
    assert_eq!(rows[0].1, fixture_user("erin").uuid, "entryUUID");
    let text = s.app.metrics_text(&s.app.base).await;
    assert!(
        metric(
            &text,
            r#"hub_rate_limit_decisions_total{limit="login_per_account",outcome="allowed"}"#
        ) >= 3.0
    );
}

#[tokio::test]
async fn break_glass_password_guessing_is_rate_limited_per_account() {
    let s = stack_with("[limits]\nlogin_per_account_per_minute = 2\n").await;
    s.standins.stop_oidc();
    let mut guesser = HubBrowser::new(&s.app.base);
    let mut last = 0;
    for _ in 0..3 {
        let token = break_glass_form(&mut guesser, "/auth/break-glass").await;
        let res = guesser
            .post_form(
                "/auth/break-glass",
                &[
                    ("username", "erin"),
                    ("password", "guess"),
                    ("csrf_token", &token),
                ],
            )
            .await;
        last = res.status().as_u16();
    }
    assert_eq!(last, 429);
    let text = s.app.metrics_text(&s.app.base).await;
    assert_eq!(
        metric(
            &text,
            r#"hub_rate_limit_decisions_total{limit="login_per_account",outcome="limited"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn the_group_sync_revokes_roles_and_sessions_of_people_removed_from_a_group() {
    let s = stack().await;
    let bob = login(&s, "bob").await;
    let alice = login(&s, "alice").await;
    let whoami = |b: &HubBrowser| {
        b.http
            .get(format!("{}/api/v1/whoami", s.app.base))
            .header("cookie", b.header())
            .send()
    };
    assert_eq!(whoami(&bob).await.unwrap().status(), 200);
    s.standins.ldap_modify(
        "dn: cn=hub_members,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,dc=example,dc=com\n",
    );
    let report = hub_core::identity::sync::sync_once(&s.app.identity)
        .await
        .unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.changed, 1);
    assert_eq!(report.sessions_revoked, 1);
    let p = problem(whoami(&bob).await.unwrap(), 401).await;
    assert!(p["detail"].as_str().unwrap().contains("ended"));
    assert_eq!(
        whoami(&alice).await.unwrap().status(),
        200,
        "alice is untouched"
    );
    let rows = user_rows(&s.app).await;
    let bob_row = rows.iter().find(|r| r.2 == "bob").unwrap();
    assert!(bob_row.4.is_empty(), "roles revoked: {bob_row:?}");
    let types: Vec<String> = s
        .app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(types.contains(&"user.roles_changed".to_owned()));
    assert!(types.contains(&"session.revoked_all".to_owned()));

    // LDAP down: the sync fails and changes nothing.
    s.standins.stop_ldap();
    assert!(hub_core::identity::sync::sync_once(&s.app.identity)
        .await
        .is_err());
    assert_eq!(whoami(&alice).await.unwrap().status(), 200);
}

#[tokio::test]
async fn directory_lookups_serve_the_pickers_and_say_when_ldap_is_down() {
    let s = stack().await;
    let found: Value = s.app.get_json("/api/v1/directory/users?prefix=a").await;
    let uids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, vec!["admin", "alice"]);
    let groups: Value = s.app.get_json("/api/v1/directory/groups").await;
    assert!(groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "hub_breakglass" && g["members"] == serde_json::json!(["erin"])));
    s.standins.stop_ldap();
    let res = s.app.get("/api/v1/directory/users?prefix=a").await;
    let p = problem(res, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("directory"), "{p}");
}

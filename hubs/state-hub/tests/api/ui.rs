//! The web UI, as people use it: pages for each role, forms that change what the API shows and
//! write the same events, refusals that explain themselves and change nothing.

use crate::helpers::{event_types, Browser, TestApp};
use serde_json::{json, Value};

/// The `Location` of a redirect.
fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The "Older" link of a paged list, as a browser would follow it.
fn older_link(html: &str) -> String {
    let pager = &html[html.find("class=\"pager\"").expect("a pager")..];
    let href = &pager[pager.find("href=\"").expect("an older link") + 6..];
    href[..href.find('"').unwrap()]
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// Sends a form and expects 303; returns where it points.
async fn submit(b: &Browser, path: &str, fields: &[(&str, &str)]) -> String {
    let res = b.post_form(path, fields).await;
    let status = res.status();
    if status != 303 {
        panic!("POST {path}: {status}: {}", res.text().await.unwrap());
    }
    location(&res)
}

/// Sends a form expecting a refusal; returns the page shown instead.
async fn refused(b: &Browser, path: &str, fields: &[(&str, &str)], status: u16) -> String {
    let res = b.post_form(path, fields).await;
    assert_eq!(res.status(), status, "POST {path}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    res.text().await.unwrap()
}

/// Proposes through the form; returns the new decision's id.
async fn propose(b: &Browser, title: &str) -> String {
    let to = submit(
        b,
        "/decisions",
        &[("title", title), ("context", "why"), ("options", "A\nB")],
    )
    .await;
    to.strip_prefix("/decisions/")
        .unwrap_or_else(|| panic!("redirected to {to}"))
        .to_owned()
}

async fn decision(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/v1/decisions/{id}")).await
}

async fn decision_count(app: &TestApp) -> usize {
    let page: Value = app.get_json("/api/v1/decisions").await;
    page["items"].as_array().unwrap().len()
}

/// A workstream, a workplan and a task made through the API; returns (slug, workplan, task).
async fn plan_with_task(app: &TestApp) -> (String, String, String) {
    let r = app
        .post(
            "/api/v1/workstreams",
            json!({"slug": "platform", "title": "Platform work"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let wp: Value = app
        .post(
            "/api/v1/workstreams/platform/workplans",
            json!({"title": "Q3 hardening"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let wp = wp["id"].as_str().unwrap().to_owned();
    let t: Value = app
        .post(
            &format!("/api/v1/workplans/{wp}/tasks"),
            json!({"title": "Rotate the LDAP bind password", "status": "wait", "blocking_reason": "vendor window"}),
        )
        .await
        .json()
        .await
        .unwrap();
    ("platform".into(), wp, t["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_page_answers_its_role_with_its_key_content() {
    let app = TestApp::spawn().await;
    let (slug, wp, task) = plan_with_task(&app).await;
    let d: Value = app
        .post(
            "/api/v1/decisions",
            json!({"title": "Adopt LLDAP", "context": "one directory for the hubs", "options": ["yes", "no"], "task_ids": [task]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/decisions/{id}/escalate"),
            json!({"reason": "affects every login"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let member = app.browser_as("alice", &["hub_members"]).await;
    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let pages: Vec<(String, Vec<&str>)> = vec![
        (
            "/".into(),
            vec![
                "data-live-events",
                "Adopt LLDAP",
                "Rotate the LDAP bind password",
                "vendor window",
                "decision.escalated",
            ],
        ),
        ("/decisions".into(), vec!["Adopt LLDAP", "escalated"]),
        (
            format!("/decisions/{id}"),
            vec![
                "one directory for the hubs",
                "<li>yes</li>",
                "Rotate the LDAP bind password",
                "decision.proposed",
                "decision.escalated",
            ],
        ),
        (
            "/plans".into(),
            vec!["Platform work", "/workstreams/platform"],
        ),
        (format!("/workstreams/{slug}"), vec!["Q3 hardening"]),
        (
            format!("/workplans/{wp}"),
            vec![
                "id=\"column-wait\"",
                "id=\"column-todo\"",
                "id=\"column-progress\"",
                "id=\"column-done\"",
                "id=\"column-cancel\"",
                "Rotate the LDAP bind password",
                "held by",
            ],
        ),
        (
            "/journal".into(),
            vec![
                "task.created",
                "workstream.created",
                "<pre class=\"detail\">",
            ],
        ),
    ];
    for (path, wanted) in &pages {
        for b in [&member, &viewer] {
            let html = b.page(path).await;
            for w in wanted {
                assert!(html.contains(w), "{path} as {} lacks {w}", b.username);
            }
        }
    }

    // Members get the forms; viewers, who could not use them, do not.
    let forms = [
        (
            "/decisions".to_owned(),
            "method=\"post\" action=\"/decisions\"",
        ),
        (format!("/decisions/{id}"), "/tasks\""),
        ("/plans".to_owned(), "action=\"/workstreams\""),
        (
            format!("/workplans/{wp}"),
            "data-user-picker list=\"users\"",
        ),
    ];
    for (path, form) in &forms {
        assert!(
            member.page(path).await.contains(form),
            "{path} lacks {form}"
        );
        assert!(
            !viewer.page(path).await.contains(form),
            "{path} offers {form} to a viewer"
        );
    }
    let board = member.page(&format!("/workplans/{wp}")).await;
    assert!(
        board.contains("<datalist id=\"users\">") && board.contains("<option value=\"alice\">")
    );

    let admin = app.browser_as("root", &["hub_admins"]).await;
    for (path, wanted) in [
        ("/admin", "API tokens"),
        ("/admin/tokens", "bootstrap"),
        ("/admin/sessions", "victor"),
        ("/admin/users", "hub_admins"),
    ] {
        let html = admin.page(path).await;
        assert!(html.contains(wanted), "{path} lacks {wanted}");
    }
    let users = admin.page("/admin/users").await;
    assert!(users.contains("hub_viewers") && users.contains("victor Example"));
}

#[tokio::test]
async fn pages_send_anonymous_visitors_to_the_login_with_the_way_back() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let id = uuid::Uuid::now_v7();
    for (path, next) in [
        ("/".to_owned(), "%2F".to_owned()),
        ("/decisions".into(), "%2Fdecisions".into()),
        (format!("/decisions/{id}"), format!("%2Fdecisions%2F{id}")),
        ("/plans".into(), "%2Fplans".into()),
        (
            "/workstreams/platform".into(),
            "%2Fworkstreams%2Fplatform".into(),
        ),
        (format!("/workplans/{id}"), format!("%2Fworkplans%2F{id}")),
        (
            "/journal?author=alice".into(),
            "%2Fjournal%3Fauthor%3Dalice".into(),
        ),
        ("/admin".into(), "%2Fadmin".into()),
        ("/admin/tokens".into(), "%2Fadmin%2Ftokens".into()),
        ("/admin/sessions".into(), "%2Fadmin%2Fsessions".into()),
        ("/admin/users".into(), "%2Fadmin%2Fusers".into()),
    ] {
        let res = http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res), format!("/auth/login?next={next}"), "{path}");
    }
}

#[tokio::test]
async fn members_are_refused_the_admin_pages() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    for path in ["/admin", "/admin/tokens", "/admin/sessions", "/admin/users"] {
        let res = alice.get(path).await;
        assert_eq!(res.status(), 403, "{path}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("403") && html.contains("lacks the permission"),
            "{html}"
        );
    }
    let before = app.event_count().await;
    let html = refused(
        &alice,
        "/admin/tokens",
        &[
            ("name", "mine"),
            ("subject", "alice"),
            ("kind", "human"),
            ("role_admin", "on"),
        ],
        403,
    )
    .await;
    assert!(html.contains("tokens.manage"), "{html}");
    assert_eq!(app.event_count().await, before, "no token was created");
}

#[tokio::test]
async fn a_viewer_cannot_propose_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let before = app.event_count().await;
    let html = refused(
        &viewer,
        "/decisions",
        &[("title", "Sneaky"), ("options", "A")],
        403,
    )
    .await;
    assert!(html.contains("decisions.write"), "{html}");
    assert_eq!(decision_count(&app).await, 0);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn the_propose_form_creates_the_decision_and_its_event() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let id = propose(&alice, "Move backups to a second region").await;
    let d = decision(&app, &id).await;
    assert_eq!(d["title"], "Move backups to a second region");
    assert_eq!(d["options"], json!(["A", "B"]));
    assert_eq!(d["proposed_by"], "alice");
    assert_eq!(d["status"], "open");
    let events: Value = app
        .get_json(&format!("/api/v1/events?decision_id={id}"))
        .await;
    assert_eq!(event_types(&events), vec!["decision.proposed"]);
    assert_eq!(events["items"][0]["author"], "alice");
    let html = alice.page(&format!("/decisions/{id}")).await;
    assert!(html.contains("Move backups to a second region"));
    assert!(
        html.contains("id=\"escalate\""),
        "an open decision offers escalation"
    );
}

#[tokio::test]
async fn the_two_person_rule_holds_on_the_pages() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let bob = app.browser_as("bob", &["hub_members"]).await;
    let id = propose(&alice, "Freeze deploys over the holidays").await;
    let page = format!("/decisions/{id}");
    let to = submit(
        &alice,
        &format!("{page}/escalate"),
        &[("version", "1"), ("reason", "affects every team")],
    )
    .await;
    assert_eq!(to, page);
    assert_eq!(decision(&app, &id).await["status"], "escalated");

    let html = alice.page(&page).await;
    assert!(html.contains("another person must approve it"), "{html}");
    assert!(!html.contains(&format!("action=\"/decisions/{id}/resolve\"")));
    let before = app.event_count().await;
    let html = refused(
        &alice,
        &format!("{page}/resolve"),
        &[("version", "2"), ("choice", "A"), ("rationale", "mine")],
        403,
    )
    .await;
    assert!(html.contains("must be approved by someone else"), "{html}");
    assert!(html.contains("another person must approve it"));
    assert_eq!(app.event_count().await, before, "the refusal wrote nothing");
    assert_eq!(decision(&app, &id).await["status"], "escalated");

    assert!(!bob
        .page(&page)
        .await
        .contains("another person must approve it"));
    let to = submit(
        &bob,
        &format!("{page}/resolve"),
        &[
            ("version", "2"),
            ("choice", "B"),
            ("rationale", "agreed with ops"),
        ],
    )
    .await;
    assert_eq!(to, page);
    let d = decision(&app, &id).await;
    assert_eq!(d["status"], "resolved");
    assert_eq!(d["outcome"]["choice"], "B");
    assert_eq!(d["outcome"]["decided_by"], "bob");
    let events: Value = app
        .get_json(&format!("/api/v1/events?decision_id={id}&order=asc"))
        .await;
    assert_eq!(
        event_types(&events),
        vec![
            "decision.proposed",
            "decision.escalated",
            "decision.resolved"
        ]
    );
    assert_eq!(events["items"][2]["detail"]["approval"], true);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let (_, _, task) = plan_with_task(&app).await;
    let before = app.event_count().await;
    for (path, fields) in [
        (
            "/decisions".to_owned(),
            vec![("title", "No token"), ("options", "A")],
        ),
        (
            format!("/tasks/{task}/status"),
            vec![("version", "1"), ("status", "todo")],
        ),
        (
            "/decisions".to_owned(),
            vec![
                ("title", "Wrong token"),
                ("csrf_token", "not-the-sessions-token"),
            ],
        ),
    ] {
        let res = alice.post_form_raw(&path, &fields).await;
        assert_eq!(res.status(), 403, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("security token"), "{html}");
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(decision_count(&app).await, 0);
    let t: Value = app.get_json(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(t["status"], "wait");
}

#[tokio::test]
async fn a_validation_error_keeps_the_input_and_marks_each_field() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let html = refused(
        &alice,
        "/decisions",
        &[
            ("title", "   "),
            ("context", "Costs <b>double</b> in winter"),
            ("options", "Keep\nKeep"),
        ],
        422,
    )
    .await;
    assert!(html.contains("Nothing was saved"), "{html}");
    assert!(html.contains("title must not be empty"), "{html}");
    assert!(html.contains("line 2: duplicate option `Keep`"), "{html}");
    assert!(
        html.contains("Costs &lt;b&gt;double&lt;&#x2F;b&gt; in winter"),
        "the context is kept, escaped: {html}"
    );
    assert!(html.contains("Keep\nKeep"), "the options are kept");
    assert_eq!(decision_count(&app).await, 0);

    // A form whose own fields do not parse reports them with the service's checks.
    let (_, wp, _) = plan_with_task(&app).await;
    let html = refused(
        &alice,
        &format!("/workplans/{wp}/tasks"),
        &[
            ("title", ""),
            ("assignee", "Not A User"),
            ("status", "todo"),
        ],
        422,
    )
    .await;
    assert!(html.contains("subject `Not A User` must be"), "{html}");
    assert!(html.contains("title must not be empty"), "{html}");
    assert!(html.contains("value=\"Not A User\""), "{html}");
}

#[tokio::test]
async fn a_stale_version_is_explained_instead_of_overwriting() {
    let app = TestApp::spawn().await;
    let (_, _, task) = plan_with_task(&app).await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let id = propose(&alice, "Retire the old VPN").await;
    // Someone else changes the decision after alice opened it at version 1.
    let r = app
        .post(
            &format!("/api/v1/decisions/{id}/tasks"),
            json!({"task_id": task}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let before = app.event_count().await;
    let html = refused(
        &alice,
        &format!("/decisions/{id}/escalate"),
        &[("version", "1"), ("reason", "too risky alone")],
        412,
    )
    .await;
    assert!(html.contains("was changed by someone else"), "{html}");
    assert!(html.contains("too risky alone"), "the reason is kept");
    assert!(
        html.contains("name=\"version\" value=\"2\""),
        "the page shows the current version"
    );
    assert_eq!(app.event_count().await, before);
    assert_eq!(decision(&app, &id).await["status"], "open");
    submit(
        &alice,
        &format!("/decisions/{id}/escalate"),
        &[("version", "2"), ("reason", "too risky alone")],
    )
    .await;
    assert_eq!(decision(&app, &id).await["status"], "escalated");
}

#[tokio::test]
async fn plans_built_and_moved_on_the_board_show_in_the_api() {
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let bob = app.browser_as("bob", &["hub_members"]).await;
    let to = submit(
        &alice,
        "/workstreams",
        &[
            ("slug", "network"),
            ("title", "Network"),
            ("description", ""),
        ],
    )
    .await;
    assert_eq!(to, "/workstreams/network");
    let html = refused(
        &alice,
        "/workstreams",
        &[("slug", "network"), ("title", "Again")],
        409,
    )
    .await;
    assert!(html.contains("slug `network` exists"), "{html}");
    let to = submit(
        &alice,
        "/workstreams/network/workplans",
        &[("title", "Split the VLANs")],
    )
    .await;
    let wp = to.strip_prefix("/workplans/").unwrap().to_owned();
    let to = submit(
        &alice,
        &format!("/workplans/{wp}/tasks"),
        &[
            ("title", "Order switches"),
            ("assignee", "bob"),
            ("status", "todo"),
            ("needs_human", "on"),
        ],
    )
    .await;
    assert_eq!(to, format!("/workplans/{wp}"));
    let tasks: Vec<Value> = app
        .get_json(&format!("/api/v1/tasks?workplan_id={wp}"))
        .await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["assignee"], "bob");
    assert_eq!(tasks[0]["needs_human"], true);
    let task = tasks[0]["id"].as_str().unwrap().to_owned();

    // Waiting needs a reason; the card shows the message and keeps the choice.
    let html = refused(
        &alice,
        &format!("/tasks/{task}/status"),
        &[
            ("version", "1"),
            ("status", "wait"),
            ("blocking_reason", ""),
        ],
        422,
    )
    .await;
    assert!(
        html.contains("a waiting task needs a blocking reason"),
        "{html}"
    );
    assert!(html.contains("<option value=\"wait\" selected>"), "{html}");
    let to = submit(
        &alice,
        &format!("/tasks/{task}/status"),
        &[
            ("version", "1"),
            ("status", "wait"),
            ("blocking_reason", "supplier lead time"),
        ],
    )
    .await;
    assert_eq!(to, format!("/workplans/{wp}#task-{task}"));
    let t: Value = app.get_json(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(t["status"], "wait");
    assert_eq!(t["blocking_reason"], "supplier lead time");
    let events: Value = app
        .get_json(&format!("/api/v1/events?task_id={task}&order=asc"))
        .await;
    assert_eq!(event_types(&events), vec!["task.created", "task.updated"]);
    assert_eq!(events["items"][1]["author"], "alice");
    let dashboard = bob.page("/").await;
    assert!(dashboard.contains("Order switches") && dashboard.contains("supplier lead time"));

    // Finish is refused while work is open; done, it finishes; the finisher cannot accept.
    let html = refused(
        &alice,
        &format!("/workplans/{wp}/finish"),
        &[("version", "1")],
        409,
    )
    .await;
    assert!(html.contains("still has 1 task"), "{html}");
    submit(
        &alice,
        &format!("/tasks/{task}/status"),
        &[("version", "2"), ("status", "done")],
    )
    .await;
    submit(
        &alice,
        &format!("/workplans/{wp}/finish"),
        &[("version", "1")],
    )
    .await;
    let board = alice.page(&format!("/workplans/{wp}")).await;
    assert!(board.contains("someone else must review and accept it"));
    let html = refused(
        &alice,
        &format!("/workplans/{wp}/accept"),
        &[("version", "2"), ("comment", "")],
        403,
    )
    .await;
    assert!(
        html.contains("acceptance must be a review by someone else"),
        "{html}"
    );
    submit(
        &bob,
        &format!("/workplans/{wp}/accept"),
        &[("version", "2"), ("comment", "looks right")],
    )
    .await;
    let p: Value = app.get_json(&format!("/api/v1/workplans/{wp}")).await;
    assert_eq!(p["status"], "accepted");
    assert_eq!(p["accepted_by"], "bob");
    assert_eq!(p["review_comment"], "looks right");
}

#[tokio::test]
async fn superseding_and_linking_through_the_decision_page() {
    let app = TestApp::spawn().await;
    let (_, _, task) = plan_with_task(&app).await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    let id = propose(&alice, "Use Caddy").await;
    let html = refused(
        &alice,
        &format!("/decisions/{id}/tasks"),
        &[("task_id", "not-a-task")],
        422,
    )
    .await;
    assert!(html.contains("enter a task id"), "{html}");
    let html = refused(
        &alice,
        &format!("/decisions/{id}/tasks"),
        &[("task_id", &uuid::Uuid::now_v7().to_string())],
        422,
    )
    .await;
    assert!(html.contains("no such task"), "{html}");
    submit(
        &alice,
        &format!("/decisions/{id}/tasks"),
        &[("task_id", &task)],
    )
    .await;
    assert_eq!(decision(&app, &id).await["task_ids"], json!([task]));

    let to = submit(
        &alice,
        &format!("/decisions/{id}/supersede"),
        &[
            ("version", "2"),
            ("reason", "nginx is already there"),
            ("title", "Use nginx"),
            ("context", ""),
            ("options", "yes\nno"),
        ],
    )
    .await;
    let new = to.strip_prefix("/decisions/").unwrap();
    assert_ne!(new, id);
    let old = decision(&app, &id).await;
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], new);
    assert_eq!(decision(&app, new).await["supersedes"], id.as_str());
    let html = alice.page(&format!("/decisions/{id}")).await;
    assert!(html.contains(&format!("/decisions/{new}")));
    assert!(
        !html.contains("id=\"resolve\""),
        "a superseded decision offers no changes"
    );
}

#[tokio::test]
async fn the_token_page_shows_the_secret_once_and_revokes() {
    let app = TestApp::spawn().await;
    let admin = app.browser_as("root", &["hub_admins"]).await;
    let res = admin
        .post_form(
            "/admin/tokens",
            &[
                ("name", "ops relay"),
                ("subject", "hub:ops-hub"),
                ("kind", "service"),
                ("role_member", "on"),
                ("scopes", "ops-hub:freeze.request"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    let start = html.find("id=\"new-token-secret\">").unwrap() + "id=\"new-token-secret\">".len();
    let secret = &html[start..start + html[start..].find("</pre>").unwrap()];
    assert!(secret.len() > 30, "{secret}");
    let who: Value = app
        .get_as(secret, "/api/v1/whoami")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["subject"], "hub:ops-hub");
    assert_eq!(who["roles"], json!(["member"]));

    let list = admin.page("/admin/tokens").await;
    assert!(list.contains("ops relay"));
    assert!(!list.contains(secret), "the list never shows a secret");
    let id = app
        .get_json::<Vec<Value>>("/api/v1/tokens")
        .await
        .into_iter()
        .find(|t| t["name"] == "ops relay")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(list.contains(&format!("action=\"/admin/tokens/{id}/revoke\"")));
    assert!(list.contains("data-confirm"), "revoking asks first");
    let to = submit(&admin, &format!("/admin/tokens/{id}/revoke"), &[]).await;
    assert_eq!(to, "/admin/tokens");
    assert_eq!(app.get_as(secret, "/api/v1/whoami").await.status(), 401);
    let events: Value = app.get_json("/api/v1/events?noun=token").await;
    assert_eq!(
        event_types(&events)[..2],
        ["token.revoked".to_owned(), "token.created".to_owned()]
    );
    assert_eq!(events["items"][0]["author"], "root");

    let html = refused(
        &admin,
        "/admin/tokens",
        &[
            ("name", ""),
            ("subject", "Bad Subject"),
            ("kind", "service"),
            ("expires_in_days", "0"),
        ],
        422,
    )
    .await;
    assert!(html.contains("name must not be empty"), "{html}");
    assert!(html.contains("at least one role"), "{html}");
    assert!(html.contains("must be between 1 and 3650"), "{html}");
    assert!(html.contains("value=\"Bad Subject\""), "{html}");
}

#[tokio::test]
async fn an_admin_ends_someone_elses_session_from_the_page() {
    let app = TestApp::spawn().await;
    let admin = app.browser_as("root", &["hub_admins"]).await;
    let bob = app.browser_as("bob", &["hub_members"]).await;
    assert_eq!(bob.get("/").await.status(), 200);
    let html = admin.page("/admin/sessions").await;
    let form = format!("action=\"/admin/sessions/{}/revoke\"", bob.session_id);
    assert!(html.contains(&form), "{html}");
    let to = submit(
        &admin,
        &format!("/admin/sessions/{}/revoke", bob.session_id),
        &[],
    )
    .await;
    assert_eq!(to, "/admin/sessions");
    let res = bob.get("/").await;
    assert_eq!(
        res.status(),
        303,
        "bob's next request finds the session ended"
    );
    assert!(!admin.page("/admin/sessions").await.contains(&form));
    let events: Value = app
        .get_json("/api/v1/events?event_type=session.revoked")
        .await;
    assert_eq!(events["items"][0]["detail"]["owner"], "bob");
    let html = refused(
        &admin,
        &format!("/admin/sessions/{}/revoke", bob.session_id),
        &[],
        409,
    )
    .await;
    assert!(html.contains("had already ended"), "{html}");
}

#[tokio::test]
async fn the_journal_filters_pages_and_escapes_event_detail() {
    let app = TestApp::spawn().await;
    let viewer = app.browser_as("victor", &["hub_viewers"]).await;
    let r = app
        .post(
            "/api/v1/events",
            json!({"event_type": "probe.sent", "summary": "</pre><script>alert(1)</script>",
                   "detail": {"note": "</pre><script>alert(2)</script>"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    for i in 0..60 {
        let r = app
            .post(
                "/api/v1/events",
                json!({"event_type": "deploy.done", "summary": format!("deploy {i}")}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let html = viewer.page("/journal?event_type=probe.sent").await;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&lt;&#x2F;pre&gt;&lt;script&gt;alert(2)"),
        "{html}"
    );
    assert!(!html.contains("deploy 59"), "the filter holds");
    assert!(
        html.contains("value=\"probe.sent\""),
        "the filter form shows the filter"
    );

    let first = viewer.page("/journal?event_type=deploy.done").await;
    assert!(first.contains("deploy 59") && !first.contains("deploy 5<"));
    let older = older_link(&first);
    assert!(older.contains("after="), "{older}");
    let second = viewer.page(&older).await;
    assert!(second.contains("deploy 5<"), "{second}");
    assert!(!second.contains("deploy 59"));
    assert!(
        !second.contains("probe.sent"),
        "the filter carries over to the next page"
    );

    let res = viewer.get("/journal?decision_id=nope").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("must be an id"));
}

/// What the template rules find wrong in one template.
fn template_problems(name: &str, src: &str) -> Vec<String> {
    let lower = src.to_ascii_lowercase();
    let mut problems = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<script") {
        let start = at + i;
        let tag_end = start + lower[start..].find('>').unwrap_or(lower.len() - start);
        let tag = &lower[start..tag_end];
        let close = tag_end + lower[tag_end..].find("</script>").unwrap_or(0);
        if tag.contains("src=") {
        } else if tag.contains("type=\"application/json\"") {
            let body = src[tag_end + 1..close].trim();
            let inner = body
                .strip_prefix("{{")
                .and_then(|b| b.strip_suffix("}}"))
                .map(str::trim);
            let safe = inner.is_some_and(|e| {
                !e.contains("{{")
                    && (e.ends_with("| json_encode | safe") || e.ends_with("| json_safe | safe"))
            });
            if !safe {
                problems.push(format!(
                    "{name}: JSON block not written with json_encode: {body}"
                ));
            }
        } else {
            problems.push(format!("{name}: inline <script> without src="));
        }
        at = tag_end.max(start + 1);
    }
    if lower.contains("<style") {
        problems.push(format!("{name}: <style> block"));
    }
    for (i, _) in lower.match_indices("style=") {
        if lower[..i].ends_with(|c: char| c.is_whitespace()) {
            problems.push(format!("{name}: style= attribute"));
        }
    }
    let mut at = 0;
    while let Some(i) = lower[at..].find("<form") {
        let start = at + i;
        let tag_end = start + lower[start..].find('>').unwrap_or(lower.len() - start);
        let end = start
            + lower[start..]
                .find("</form>")
                .unwrap_or(lower.len() - start);
        let tag = &lower[start..tag_end];
        let is_post = tag.contains("method=\"post\"") || tag.contains("method='post'");
        let body = &src[start..end];
        let has_token =
            body.contains("m::csrf(token=csrf_token") || body.contains("name=\"csrf_token\"");
        if is_post && !has_token && name != "hub-core/break_glass.html" {
            problems.push(format!("{name}: POST form without the CSRF token"));
        }
        at = tag_end.max(start + 1);
    }
    problems
}

#[test]
fn templates_have_no_inline_script_or_style_and_every_post_form_carries_the_csrf_token() {
    // The rules find what they are meant to find.
    for bad in [
        "<script>alert(1)</script>",
        "<script type=\"application/json\" id=\"d\">{{ v }}</script>",
        "<script type=\"application/json\" id=\"d\">{\"a\": {{ v | json_encode | safe }}}</script>",
        "<p style=\"color: red\">x</p>",
        "<style>p {}</style>",
        "<form method=\"post\" action=\"/x\"><button>Go</button></form>",
        "<FORM METHOD=\"POST\" action=\"/x\"><button>Go</button></FORM>",
    ] {
        assert!(
            !template_problems("sample.html", bad).is_empty(),
            "{bad} passed"
        );
    }
    for good in [
        "<script src=\"/static/hub.js\" defer></script>",
        "<script type=\"application/json\" id=\"d\">{{ v | json_encode | safe }}</script>",
        "<form method=\"post\" action=\"/x\">{{ m::csrf(token=csrf_token) }}</form>",
        "<form method=\"get\" action=\"/x\"></form>",
    ] {
        assert!(
            template_problems("sample.html", good).is_empty(),
            "{good} failed"
        );
    }

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![("hub-core".to_owned(), root.join("hub-core/templates"))];
    for hub in std::fs::read_dir(root.join("hubs")).unwrap() {
        let hub = hub.unwrap().path();
        let name = hub.file_name().unwrap().to_string_lossy().into_owned();
        dirs.push((name, hub.join("templates")));
    }
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for (owner, dir) in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "html") {
                let name = format!("{owner}/{}", path.file_name().unwrap().to_string_lossy());
                let src = std::fs::read_to_string(&path).unwrap();
                problems.extend(template_problems(&name, &src));
                checked.push(name);
            }
        }
    }
    assert!(
        checked.contains(&"hub-core/base.html".to_owned()),
        "{checked:?}"
    );
    assert!(
        checked.contains(&"state-hub/workplan.html".to_owned()),
        "{checked:?}"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn the_dashboard_feed_listens_for_the_event_name_the_stream_sends() {
    use futures_util::StreamExt;
    let app = TestApp::spawn().await;
    let alice = app.browser_as("alice", &["hub_members"]).await;
    // The page's script opens the stream with the session cookie, as a browser would.
    let res = alice.get("/api/v1/events/stream").await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let r = app
        .post(
            "/api/v1/events",
            json!({"event_type": "live.tick", "summary": "tick"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let mut text = String::new();
    let name = loop {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("the event arrives")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("event: ")) {
            break name.to_owned();
        }
    };
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hub-core/static/hub.js"),
    )
    .unwrap();
    assert!(
        script.contains(&format!("addEventListener(\"{name}\"")),
        "hub.js does not listen for `{name}` events"
    );
}

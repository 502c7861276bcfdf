//! Moving a state hub to a new database as the runbook says (docs/operations/migrate-state-hub.md):
//! `state-hub export` from the running hub, `state-hub import` into a new, empty database, start
//! the hub on it, and `hubctl audit verify` proves the journal.

use super::{
    admin_database_url, database_url, items, run, sql, state_hub_binary, str_of, Hub, Run,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `state-hub ARGS` with only its arguments configuring it.
fn state_hub(args: &[&str]) -> Run {
    let mut cmd = Command::new(state_hub_binary());
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("HUB_") || text == "STATE_HUB_CONFIG" || text == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    run(cmd.args(args))
}

/// Exports the hub's database into `name` in its scratch directory.
fn export(hub: &Hub, name: &str) -> PathBuf {
    let file = hub.dir.join(name);
    let out = state_hub(&[
        "--config",
        hub.config.to_str().unwrap(),
        "export",
        "--output",
        file.to_str().unwrap(),
    ])
    .success();
    assert!(out.stdout.starts_with("exported "), "{out:?}");
    file
}

/// A new, empty database (dropped by the hub started on it, or by the caller).
fn empty_database() -> String {
    let db = format!("hubctl_import_{}", uuid::Uuid::new_v4().simple());
    sql(&admin_database_url(), &format!("CREATE DATABASE {db}"));
    db
}

fn drop_database(db: &str) {
    sql(
        &admin_database_url(),
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

fn import(db: &str, file: &Path) -> Run {
    state_hub(&[
        "import",
        "--input",
        file.to_str().unwrap(),
        "--database-url",
        &database_url(db),
    ])
}

fn read_json(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn write_json(file: &Path, v: &Value) {
    std::fs::write(file, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Plans, decisions in every state, task links and events with detail, written with hubctl.
fn plan_and_decide(hub: &Hub) {
    let ws = hub.json("workstreams create --slug platform --title 'Platform foundation'");
    let wp = hub.json(&format!(
        "workplans create --workstream {} --title 'Stand up the management plane'",
        str_of(&ws["id"])
    ));
    let wp = str_of(&wp["id"]);
    let host = hub.json(&format!(
        "tasks create --workplan {wp} --title 'Provision the host' --assignee alice --status progress"
    ));
    let caps = hub.json(&format!(
        "tasks create --workplan {wp} --title 'Register capabilities' --status wait \
         --blocking-reason 'Contracts are not published yet' --needs-human"
    ));
    let sso = hub.json(&format!(
        "decisions propose --title 'Which SSO provider?' --option Authelia --option Keycloak --task {}",
        str_of(&host["id"])
    ));
    hub.json(&format!(
        "decisions resolve {} --choice Authelia --rationale 'Small, reads LLDAP directly'",
        str_of(&sso["id"])
    ));
    let gateway = hub.json(&format!(
        "decisions propose --title 'One capability gateway?' --option yes --option no --task {}",
        str_of(&caps["id"])
    ));
    hub.json(&format!(
        "decisions escalate {} --reason 'Both teams must agree'",
        str_of(&gateway["id"])
    ));
    let old = hub.json("decisions propose --title 'Backups to a bucket'");
    hub.json(&format!(
        "decisions supersede {} --reason 'Retention needs a second site' --title 'Backups to two sites'",
        str_of(&old["id"])
    ));
    hub.json(
        "events post --type deploy.started --summary 'Staging deploy started' \
         --detail '{\"env\":\"staging\",\"ratio\":0.25,\"nested\":{\"b\":[1,2],\"a\":null}}'",
    );
}

/// Everything the API shows of plans and decisions.
fn contents(hub: &Hub) -> Value {
    json!({
        "workstreams": hub.json("workstreams list"),
        "workplans": hub.json("workplans list"),
        "tasks": hub.json("tasks list"),
        "decisions": hub.json("decisions list --all"),
    })
}

#[test]
fn a_state_hub_moves_to_a_new_database_with_its_plans_decisions_and_journal() {
    let source = Hub::start();
    plan_and_decide(&source);
    let before = contents(&source);
    let source_events = items(&source.json("events list --asc --all")).clone();
    let file = export(&source, "export.json");
    let doc = read_json(&file);
    assert_eq!(doc["format"], "hubplane.state-hub.export");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["source"]["chain_head"]["seq"], source_events.len());

    let db = empty_database();
    let out = import(&db, &file).success().stdout;
    assert!(out.contains("imported: 1 workstream(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "source chain: {} events verify",
            source_events.len()
        )),
        "{out}"
    );
    assert!(
        out.contains("the new chain reproduces the source head"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "journal verified: {} events",
            source_events.len() + 1
        )),
        "{out}"
    );

    let target = Hub::start_on(db, "");
    let verified = target.json("audit verify");
    assert_eq!(verified["ok"], true);
    // The source's events, the import's closing event, the new hub's bootstrap event.
    assert_eq!(verified["events_checked"], source_events.len() + 2);
    assert_eq!(contents(&target), before);

    let events = items(&target.json("events list --asc --all")).clone();
    // Same ids, times, authors, contents — and, since nothing changed, the same hashes.
    assert_eq!(events[..source_events.len()], source_events[..]);
    let completed = &events[source_events.len()];
    assert_eq!(completed["event_type"], "import.completed");
    assert_eq!(completed["author"], "state-hub");
    let detail = &completed["detail"];
    assert_eq!(
        detail["source_head"]["hash"],
        source_events.last().unwrap()["hash"]
    );
    assert_eq!(detail["source_chain"]["state"], "verified");
    assert_eq!(detail["imported"]["decisions"], 3 + 1);
    assert_eq!(detail["imported"]["task_links"], 2);
    assert_eq!(str_of(&detail["input_sha256"]).len(), 64);

    // The imported hub keeps working: new writes extend the same chain.
    target.json("events post --type note.added --summary 'Written after the move'");
    assert_eq!(target.json("audit verify")["ok"], true);
}

#[test]
fn a_tampered_export_is_imported_into_a_new_chain_and_the_tampering_is_reported() {
    let source = Hub::start();
    for i in 0..3 {
        source.json(&format!(
            "events post --type note.added --summary 'note {i}'"
        ));
    }
    let file = export(&source, "export.json");
    let mut doc = read_json(&file);
    // Event 3 is edited; its old hash stays in the file.
    assert_eq!(doc["events"][2]["seq"], 3);
    doc["events"][2]["summary"] = json!("note 1, rewritten");
    write_json(&file, &doc);

    let db = empty_database();
    let out = import(&db, &file).success().stdout;
    assert!(
        out.contains("source chain: DOES NOT VERIFY (event 3: content does not match its hash"),
        "{out}"
    );
    assert!(
        out.contains("the new chain differs from the source head"),
        "{out}"
    );

    let target = Hub::start_on(db, "");
    assert_eq!(target.json("audit verify")["ok"], true);
    assert_eq!(target.json("events get 3")["summary"], "note 1, rewritten");
    let completed = target.json("events get 5");
    assert_eq!(completed["event_type"], "import.completed");
    assert_eq!(completed["detail"]["source_chain"]["state"], "broken");
}

#[test]
fn an_invalid_export_imports_nothing_and_names_every_problem() {
    let source = Hub::start();
    plan_and_decide(&source);
    let file = export(&source, "export.json");
    let mut doc = read_json(&file);
    let unknown = "0190a000-0000-7000-8000-00000000dead";
    doc["decisions"][0]["task_links"][0]["task_id"] = json!(unknown);
    let twin = doc["workplans"][0].clone();
    doc["workplans"].as_array_mut().unwrap().push(twin);
    doc["events"][1]["event_type"] = json!("Token Bootstrapped");
    write_json(&file, &doc);

    let db = empty_database();
    let err = import(&db, &file).fails_with(1);
    assert!(
        err.contains("the export has 3 problem(s); nothing was imported"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "decisions[0].task_links[0].task_id: no task {unknown} in this export"
        )),
        "{err}"
    );
    assert!(err.contains("workplans[1].id: duplicate id"), "{err}");
    assert!(
        err.contains("events[1].event_type: event_type `Token Bootstrapped` must be"),
        "{err}"
    );

    // Nothing at all was written: not even the schema.
    sql(
        &database_url(&db),
        "DO $$ BEGIN IF (SELECT count(*) FROM pg_tables WHERE schemaname = 'public') <> 0 \
         THEN RAISE EXCEPTION 'the refused import created tables'; END IF; END $$;",
    );

    // The same problems as JSON, for scripts.
    let json = state_hub(&[
        "import",
        "--json",
        "--dry-run",
        "--input",
        file.to_str().unwrap(),
        "--database-url",
        &database_url(&db),
    ]);
    assert_eq!(json.code, Some(1), "{json:?}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 3);
    drop_database(&db);
}

#[test]
fn import_refuses_a_database_that_already_holds_a_journal() {
    let source = Hub::start();
    source.json("events post --type note.added --summary 'exported'");
    let file = export(&source, "export.json");

    let occupied = Hub::start();
    let err = import(&occupied.db, &file).fails_with(1);
    assert!(
        err.contains("the target database already holds 1 event(s)"),
        "{err}"
    );
    assert!(
        err.contains("import only into a new, empty state hub database"),
        "{err}"
    );
    // The bootstrap event is still the only one, and it still verifies.
    let verified = occupied.json("audit verify");
    assert_eq!(verified["events_checked"], 1);
}

#[test]
fn state_hub_verify_checks_a_database_offline_and_names_a_rewritten_event() {
    let hub = Hub::start();
    for i in 0..3 {
        hub.json(&format!(
            "events post --type note.added --summary 'note {i}'"
        ));
    }
    let url = database_url(&hub.db);
    let ok = state_hub(&["verify", "--database-url", &url])
        .success()
        .stdout;
    assert!(ok.contains("journal  verified: 4 events"), "{ok}");
    assert!(ok.trim_end().ends_with("ok"), "{ok}");
    let report: Value = serde_json::from_str(
        &state_hub(&["verify", "--json", "--database-url", &url])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(report["counts"]["events"], 4);
    assert!(report["schema"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["applied"] == s["expected"]));

    sql(
        &url,
        "ALTER TABLE events DISABLE TRIGGER events_no_update; \
         UPDATE events SET summary = 'rewritten' WHERE seq = 3; \
         ALTER TABLE events ENABLE TRIGGER events_no_update;",
    );
    let failed = state_hub(&["verify", "--database-url", &url]);
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(
        failed
            .stdout
            .contains("DOES NOT VERIFY: broken link at event 3: content does not match its hash"),
        "{failed:?}"
    );

    let empty = empty_database();
    let none = state_hub(&["verify", "--database-url", &database_url(&empty)]);
    assert_eq!(none.code, Some(1), "{none:?}");
    assert!(
        none.stdout.contains("refinery_schema_history: missing"),
        "{none:?}"
    );
    drop_database(&empty);

    let refused = state_hub(&[
        "verify",
        "--database-url",
        "postgres://u:secret@127.0.0.1/x",
    ]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("--database-url: contains a password"),
        "{refused:?}"
    );
    assert!(!refused.stderr.contains("secret"), "{refused:?}");
}

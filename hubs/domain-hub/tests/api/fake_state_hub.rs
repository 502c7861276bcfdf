//! A small fake of the state hub's API, in process, for what the real binary cannot be made to do
//! on cue: lose an acknowledgement, refuse a manifest, hand out a chosen callable list, hold
//! decisions in any state. It can be stopped and started again on the same port.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use hub_core::api::decisions::{Decision, DecisionStatus, DecisionType, Outcome};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Everything the fake saw and holds.
#[derive(Default)]
pub struct FakeState {
    /// The token it accepts.
    pub token: String,
    /// Stored events in arrival order: (idempotency key, body).
    pub events: Vec<(String, Value)>,
    /// The key of every POST /events, duplicates included.
    pub event_requests: Vec<String>,
    /// PUT /hubs/{name} bodies.
    pub registrations: Vec<Value>,
    /// Submitted manifests.
    pub manifests: Vec<Value>,
    /// Heartbeats.
    pub heartbeats: Vec<Value>,
    /// GET /capabilities/callable answers this.
    pub callable: Vec<Value>,
    /// Decisions by id.
    pub decisions: BTreeMap<Uuid, Decision>,
    /// Store the next event, then answer only after the client gave up (a lost acknowledgement).
    pub lose_next_ack: bool,
    /// Answer 422 with these problems to manifest submissions.
    pub manifest_problems: Vec<(String, String)>,
}

/// A running fake.
pub struct FakeStateHub {
    pub port: u16,
    pub state: Arc<Mutex<FakeState>>,
    handle: Mutex<Option<ServerHandle>>,
}

type Shared = web::Data<Arc<Mutex<FakeState>>>;

fn authorized(req: &HttpRequest, state: &Shared) -> bool {
    let want = format!("Bearer {}", state.lock().unwrap().token);
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(want.as_str())
}

fn problem(status: u16, detail: &str, errors: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/problem+json")
        .json(
            json!({"type": "urn:hubplane:problem:x", "title": "x", "status": status,
                     "detail": detail, "errors": errors}),
        )
}

async fn put_hub(req: HttpRequest, state: Shared, body: web::Json<Value>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    state.lock().unwrap().registrations.push(body.into_inner());
    HttpResponse::Ok().json(json!({}))
}

async fn post_manifest(req: HttpRequest, state: Shared, body: web::Json<Value>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    let mut s = state.lock().unwrap();
    s.manifests.push(body.into_inner());
    if !s.manifest_problems.is_empty() {
        let errors: Vec<Value> = s
            .manifest_problems
            .iter()
            .map(|(f, m)| json!({"field": f, "message": m}))
            .collect();
        return problem(422, "validation failed", Value::from(errors));
    }
    HttpResponse::Created().json(json!({}))
}

async fn heartbeat(req: HttpRequest, state: Shared, body: web::Json<Value>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    state.lock().unwrap().heartbeats.push(body.into_inner());
    HttpResponse::Ok().json(json!({}))
}

async fn callable(req: HttpRequest, state: Shared) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    let items = state.lock().unwrap().callable.clone();
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn post_event(req: HttpRequest, state: Shared, body: web::Json<Value>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = body.into_inner();
    let lose = {
        let mut s = state.lock().unwrap();
        s.event_requests.push(key.clone());
        if let Some((_, stored)) = s.events.iter().find(|(k, _)| *k == key) {
            if *stored != body {
                return problem(409, "idempotency key reused with another body", json!([]));
            }
            return HttpResponse::Created()
                .insert_header(("Idempotency-Replayed", "true"))
                .json(stored.clone());
        }
        s.events.push((key, body.clone()));
        std::mem::take(&mut s.lose_next_ack)
    };
    if lose {
        // Stored; the answer comes after the client's time-out, so it never sees it.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    HttpResponse::Created().json(body)
}

fn decision(id: Uuid, title: &str, status: DecisionStatus) -> Decision {
    Decision {
        id,
        title: title.to_owned(),
        context: String::new(),
        options: Vec::new(),
        decision_type: if status == DecisionStatus::Resolved {
            DecisionType::Made
        } else {
            DecisionType::Pending
        },
        status,
        proposed_by: "hub:ops-hub".to_owned(),
        created_at: Utc::now(),
        escalated_by: None,
        escalated_at: None,
        escalation_reason: None,
        outcome: (status == DecisionStatus::Resolved).then(|| Outcome {
            choice: "yes".to_owned(),
            rationale: "approved".to_owned(),
            decided_by: "alice".to_owned(),
            decided_at: Utc::now(),
        }),
        superseded_by: None,
        supersedes: None,
        task_ids: Vec::new(),
        version: 1,
    }
}

async fn create_decision(req: HttpRequest, state: Shared, body: web::Json<Value>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    let id = Uuid::now_v7();
    let d = decision(
        id,
        body["title"].as_str().unwrap_or_default(),
        DecisionStatus::Open,
    );
    state.lock().unwrap().decisions.insert(id, d.clone());
    HttpResponse::Created().json(d)
}

async fn escalate(req: HttpRequest, state: Shared, id: web::Path<Uuid>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    let mut s = state.lock().unwrap();
    match s.decisions.get_mut(&id) {
        Some(d) if d.status == DecisionStatus::Open => {
            d.status = DecisionStatus::Escalated;
            HttpResponse::Ok().json(d.clone())
        }
        Some(_) => problem(409, "not open", json!([])),
        None => problem(404, "no such decision", json!([])),
    }
}

async fn get_decision(req: HttpRequest, state: Shared, id: web::Path<Uuid>) -> HttpResponse {
    if !authorized(&req, &state) {
        return problem(401, "no", json!([]));
    }
    match state.lock().unwrap().decisions.get(&id) {
        Some(d) => HttpResponse::Ok().json(d),
        None => problem(404, "no such decision", json!([])),
    }
}

impl FakeStateHub {
    /// Starts on a free port, accepting `token`.
    pub fn start(token: &str) -> FakeStateHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(FakeState {
            token: token.to_owned(),
            ..FakeState::default()
        }));
        let fake = FakeStateHub {
            port,
            state,
            handle: Mutex::new(None),
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: TcpListener) {
        let data = web::Data::new(self.state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v1/hubs/{name}", web::put().to(put_hub))
                .route(
                    "/api/v1/hubs/{name}/manifests",
                    web::post().to(post_manifest),
                )
                .route("/api/v1/hubs/{name}/heartbeat", web::post().to(heartbeat))
                .route("/api/v1/capabilities/callable", web::get().to(callable))
                .route("/api/v1/events", web::post().to(post_event))
                .route("/api/v1/decisions", web::post().to(create_decision))
                .route("/api/v1/decisions/{id}", web::get().to(get_decision))
                .route("/api/v1/decisions/{id}/escalate", web::post().to(escalate))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        *self.handle.lock().unwrap() = Some(server.handle());
        tokio::spawn(server);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops answering: connections are refused until [`start_again`](Self::start_again).
    pub async fn stop(&self) {
        let handle = self.handle.lock().unwrap().take();
        if let Some(h) = handle {
            h.stop(false).await;
        }
    }

    /// Serves again on the same port, with everything it stored.
    pub fn start_again(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }

    /// Adds a decision in `status`; returns its id.
    pub fn add_decision(&self, status: DecisionStatus) -> Uuid {
        let id = Uuid::now_v7();
        self.state
            .lock()
            .unwrap()
            .decisions
            .insert(id, decision(id, "test decision", status));
        id
    }

    /// The stored events' types and summaries, in arrival order.
    pub fn events(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().events.clone()
    }
}

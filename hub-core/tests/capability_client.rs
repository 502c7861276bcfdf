#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The capability client against a real HTTPS server on loopback, with a CA made per test.
//! Loopback is itself a blocked class, so tests that mean to reach the server allowlist
//! 127.0.0.1/32 — and the tests about the guard prove that without it nothing gets through.

#[path = "capability/server.rs"]
mod server;

use hub_core::capability::{
    BreakerState, CapabilityClient, CapabilityClientConfig, CapabilityError, Registration,
};
use secrecy::SecretString;
use server::{Reply, Server, TestCa};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CREDENTIAL: &str = "cap-credential-7f3a9c21";
const LOOPBACK: &[&str] = &["127.0.0.1/32"];

fn config(ca: Option<&TestCa>, allow: &[&str]) -> CapabilityClientConfig {
    CapabilityClientConfig {
        ca_file: ca.map(|c| c.ca_file().to_path_buf()),
        allow_cidrs: allow.iter().map(|n| n.parse().unwrap()).collect(),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 3_000,
        max_retries: 2,
        breaker_failures: 5,
        breaker_open_seconds: 1,
        max_response_bytes: 16 * 1024,
    }
}

fn client(cfg: &CapabilityClientConfig) -> (CapabilityClient, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    (CapabilityClient::new(cfg, &registry).unwrap(), registry)
}

fn registration(name: &str, base: &str) -> Registration {
    Registration {
        name: name.to_owned(),
        base_url: url::Url::parse(base).unwrap(),
        health_path: "/healthz".to_owned(),
        credential: Some(SecretString::from(CREDENTIAL)),
    }
}

/// The value of a counter or gauge, or the sample count of a histogram, with these labels.
fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in registry.gather() {
        if family.get_name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.get_name() == *k && l.get_value() == *v)
            });
            if matches {
                return match family.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                    prometheus::proto::MetricType::HISTOGRAM => {
                        m.get_histogram().get_sample_count() as f64
                    }
                    other => panic!("unexpected metric type {other:?}"),
                };
            }
        }
    }
    0.0
}

#[tokio::test]
async fn a_registered_capability_is_called_with_its_credential() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| {
        Reply::json(200, serde_json::json!({"deployments": 3}))
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration(
        "deployments",
        &format!("{}/api/v1/", server.origin()),
    )]);

    let before = chrono::Utc::now();
    let response = client.get("deployments", "status?ns=shop").await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.attempts, 1);
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["deployments"], 3);
    assert!(response.fetched_at >= before);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/api/v1/status?ns=shop");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {CREDENTIAL}").as_str())
    );
}

#[tokio::test]
async fn unknown_names_and_other_hosts_are_refused_before_anything_is_sent() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(200)).await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration(
        "deployments",
        &format!("{}/api/", server.origin()),
    )]);

    let err = client.get("secrets", "/").await.unwrap_err();
    assert!(
        matches!(&err, CapabilityError::UnknownCapability(n) if n == "secrets"),
        "{err:?}"
    );

    for (path, host) in [
        ("https://evil.example/x".to_owned(), "evil.example"),
        ("//evil.example/x".to_owned(), "evil.example"),
        // Same address, other host name: still not the registration's host.
        (
            format!("https://localhost:{}/api/x", server.port()),
            "localhost",
        ),
        // Same host, other port.
        ("https://127.0.0.1:1/api/x".to_owned(), "127.0.0.1"),
    ] {
        let err = client.get("deployments", &path).await.unwrap_err();
        assert!(
            matches!(&err, CapabilityError::HostNotRegistered(h) if h == host),
            "{path}: {err:?}"
        );
    }
    let err = client.get("deployments", "../../admin").await.unwrap_err();
    assert!(matches!(err, CapabilityError::InvalidRequest(_)), "{err:?}");
    let err = client
        .post(
            "deployments",
            "https://evil.example/x",
            &serde_json::json!({}),
            Some("k"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CapabilityError::HostNotRegistered(_)),
        "{err:?}"
    );

    // A refreshed registration set replaces the old one.
    client.set_registrations(vec![registration("other", &server.origin())]);
    let err = client.get("deployments", "/").await.unwrap_err();
    assert!(
        matches!(err, CapabilityError::UnknownCapability(_)),
        "{err:?}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn plain_http_is_refused() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(200)).await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    let plain = format!("http://127.0.0.1:{}/", server.port());
    client.set_registrations(vec![
        registration("plain", &plain),
        registration("tls", &server.origin()),
    ]);

    let err = client.get("plain", "/").await.unwrap_err();
    assert!(
        matches!(&err, CapabilityError::NotHttps(o) if o.starts_with("http://127.0.0.1")),
        "{err:?}"
    );
    let err = client.probe("plain").await.unwrap_err();
    assert!(matches!(err, CapabilityError::NotHttps(_)), "{err:?}");
    let err = client.get("tls", &format!("{plain}x")).await.unwrap_err();
    assert!(matches!(err, CapabilityError::NotHttps(_)), "{err:?}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_blocked_and_nothing_is_sent() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(200)).await;
    let (client, registry) = client(&config(Some(&ca), &[]));
    client.set_registrations(vec![registration(
        "local",
        &format!("https://localhost:{}/", server.port()),
    )]);

    let err = client.get("local", "/").await.unwrap_err();
    match &err {
        CapabilityError::Blocked { host, addr, class } => {
            assert_eq!(host, "localhost");
            assert!(addr.is_loopback(), "{addr}");
            assert_eq!(*class, "loopback");
        }
        other => panic!("expected Blocked, got {other:?}"),
    }
    assert!(matches!(
        client.probe("local").await,
        Err(CapabilityError::Blocked {
            class: "loopback",
            ..
        })
    ));
    assert_eq!(server.connections(), 0);
    assert!(
        metric(
            &registry,
            "capability_blocked_total",
            &[("class", "loopback")]
        ) >= 2.0
    );
    assert_eq!(
        metric(
            &registry,
            "capability_requests_total",
            &[("capability", "local"), ("outcome", "blocked")]
        ),
        2.0
    );
    // A blocked address says nothing about the capability's health.
    assert_eq!(client.breaker_state("local"), BreakerState::Closed);
}

#[tokio::test]
async fn a_name_resolving_to_an_allowlisted_address_is_called() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(204)).await;
    // Only 127.0.0.1: if localhost also resolves to ::1, that address is dropped, not tried.
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration(
        "local",
        &format!("https://localhost:{}/", server.port()),
    )]);
    let response = client.get("local", "/ping").await.unwrap();
    assert_eq!(response.status, 204);
    assert_eq!(server.hits("/ping"), 1);
}

#[tokio::test]
async fn ip_literals_in_blocked_ranges_are_refused_without_connecting() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(200)).await;
    let v6_server = Server::start_on("[::1]:0".parse().unwrap(), &ca, |_, _| Reply::status(200))
        .await
        .ok();
    let v6_port = v6_server.as_ref().map_or(443, Server::port);
    let port = server.port();
    // Nothing allowlisted: the loopback servers must see no connection either.
    let (client, registry) = client(&config(Some(&ca), &[]));
    let cases = [
        ("https://10.1.2.3/".to_owned(), "private"),
        ("https://172.16.0.1/".to_owned(), "private"),
        ("https://192.168.1.1/".to_owned(), "private"),
        ("https://100.64.0.1/".to_owned(), "cgnat"),
        ("https://169.254.169.254/".to_owned(), "metadata"),
        ("https://169.254.1.1/".to_owned(), "link-local"),
        ("https://0.0.0.0/".to_owned(), "unspecified"),
        ("https://[fc00::1]/".to_owned(), "unique-local"),
        ("https://[fe80::1]/".to_owned(), "link-local"),
        ("https://[64:ff9b::a9fe:a9fe]/".to_owned(), "metadata"),
        (format!("https://127.0.0.1:{port}/"), "loopback"),
        (format!("https://2130706433:{port}/"), "loopback"),
        (format!("https://[::ffff:127.0.0.1]:{port}/"), "loopback"),
        (format!("https://[::1]:{v6_port}/"), "loopback"),
    ];
    for (base, expected) in &cases {
        client.set_registrations(vec![registration("target", base)]);
        let started = Instant::now();
        let err = client.get("target", "/").await.unwrap_err();
        // A connection attempt to an unrouted private address would take the connect timeout.
        assert!(started.elapsed() < Duration::from_millis(500), "{base}");
        assert!(
            matches!(&err, CapabilityError::Blocked { class, .. } if class == expected),
            "{base}: {err:?}"
        );
        let probed = client.probe("target").await.unwrap_err();
        assert!(
            matches!(probed, CapabilityError::Blocked { .. }),
            "{base}: {probed:?}"
        );
    }
    assert_eq!(server.connections(), 0);
    if let Some(v6) = &v6_server {
        assert_eq!(v6.connections(), 0);
    }
    assert!(
        metric(
            &registry,
            "capability_blocked_total",
            &[("class", "metadata")]
        ) >= 2.0
    );
}

#[tokio::test]
async fn redirects_leaving_the_registrations_are_refused() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, _| {
        let authority = seen.header("host").unwrap_or("").to_owned();
        match seen.path() {
            "/to-metadata" => Reply::redirect("https://169.254.169.254/latest/meta-data/"),
            "/to-http" => Reply::redirect(&format!("http://{authority}/landing")),
            "/to-elsewhere" => Reply::redirect("https://capabilities.example.org/landing"),
            "/to-loopback-literal" => Reply::redirect("https://[::1]/landing"),
            _ => Reply::status(200),
        }
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);

    for path in [
        "/to-metadata",
        "/to-http",
        "/to-elsewhere",
        "/to-loopback-literal",
    ] {
        let started = Instant::now();
        let err = client.get("cluster", path).await.unwrap_err();
        assert!(
            matches!(err, CapabilityError::Redirect(_)),
            "{path}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(900), "{path}");
        // Refused, not retried.
        assert_eq!(server.hits(path), 1, "{path}");
    }
    assert_eq!(server.hits("/landing"), 0);
    let err = client.get("cluster", "/to-metadata").await.unwrap_err();
    assert!(err.to_string().contains("169.254.169.254"), "{err}");
}

#[tokio::test]
async fn a_redirect_on_the_same_host_is_followed() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, _| match seen.path() {
        "/api/old" => Reply::redirect("/api/new?moved=1"),
        "/api/new" => Reply::json(200, serde_json::json!({"here": true})),
        _ => Reply::status(404),
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration(
        "cluster",
        &format!("{}/api", server.origin()),
    )]);

    let response = client.get("cluster", "old").await.unwrap();
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["here"], true);
    assert_eq!(server.hits("/api/old"), 1);
    assert_eq!(server.hits("/api/new"), 1);
    let landed = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/api/new")
        .unwrap();
    assert_eq!(landed.target, "/api/new?moved=1");
    assert_eq!(
        landed.header("authorization"),
        Some(format!("Bearer {CREDENTIAL}").as_str())
    );
}

#[tokio::test]
async fn redirect_chains_stop_after_three_hops() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, _| {
        let n: u32 = seen
            .path()
            .trim_start_matches("/loop/")
            .parse()
            .unwrap_or(0);
        Reply::redirect(&format!("/loop/{}", n + 1))
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);
    let err = client.get("cluster", "/loop/0").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Redirect(_)), "{err:?}");
    // The original request and three followed hops; the fourth redirect is refused.
    let paths: Vec<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(paths, ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]);
}

#[tokio::test]
async fn a_redirect_to_another_registration_is_followed_without_the_credential() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, _| {
        let port = seen
            .header("host")
            .and_then(|h| h.rsplit(':').next())
            .unwrap_or("")
            .to_owned();
        match seen.path() {
            "/hop" => Reply::redirect(&format!("https://localhost:{port}/landing")),
            _ => Reply::status(200),
        }
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);
    let err = client.get("cluster", "/hop").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Redirect(_)), "{err:?}");
    assert_eq!(server.hits("/landing"), 0);

    let mut other = registration("other", &format!("https://localhost:{}/", server.port()));
    other.credential = Some(SecretString::from("the-other-credential"));
    client.set_registrations(vec![registration("cluster", &server.origin()), other]);
    let response = client.get("cluster", "/hop").await.unwrap();
    assert_eq!(response.status, 200);
    let landed = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/landing")
        .unwrap();
    assert_eq!(
        landed.header("host"),
        Some(format!("localhost:{}", server.port()).as_str())
    );
    // The credential is for the first host only; the redirect carries none.
    assert_eq!(landed.header("authorization"), None);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_the_handshake() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(200)).await;
    let (client, registry) = client(&config(None, LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);
    let err = client.get("cluster", "/").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Tls(_)), "{err:?}");
    assert!(!err.to_string().contains(CREDENTIAL));
    // The handshake happened (and failed); no request was read, nothing retried.
    assert_eq!(server.connections(), 1);
    assert!(server.requests().is_empty());
    assert_eq!(
        metric(
            &registry,
            "capability_requests_total",
            &[("capability", "cluster"), ("outcome", "tls")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_slow_capability_times_out_within_the_bound() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| {
        Reply::status(200).delayed(Duration::from_secs(5))
    })
    .await;
    let mut cfg = config(Some(&ca), LOOPBACK);
    cfg.connect_timeout_ms = 200;
    cfg.request_timeout_ms = 300;
    cfg.max_retries = 0;
    let (client, _) = client(&cfg);
    client.set_registrations(vec![registration("slow", &server.origin())]);
    let started = Instant::now();
    let err = client.get("slow", "/once").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Timeout), "{err:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(1_500), "{took:?}");

    // With one retry: two attempts of 300 ms plus at most 100 ms of back-off.
    cfg.max_retries = 1;
    let (client, _) = self::client(&cfg);
    client.set_registrations(vec![registration("slow", &server.origin())]);
    let started = Instant::now();
    let err = client.get("slow", "/twice").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(2_000));
    assert_eq!(server.hits("/twice"), 2);
}

#[tokio::test]
async fn get_is_retried_on_503_and_the_retries_are_bounded() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, earlier| match seen.path() {
        "/flaky" if earlier < 2 => Reply::status(503),
        "/flaky" => Reply::json(200, serde_json::json!({"ok": true})),
        "/down" => Reply::status(503),
        "/broken" => Reply::status(500),
        _ => Reply::status(404),
    })
    .await;
    let (client, registry) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);

    let response = client.get("cluster", "/flaky").await.unwrap();
    assert_eq!(response.attempts, 3);
    assert_eq!(server.hits("/flaky"), 3);

    let err = client.get("cluster", "/down").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Status(503)), "{err:?}");
    assert_eq!(
        server.hits("/down"),
        3,
        "max_retries = 2 means three attempts"
    );

    // 500 is not one of the transient statuses.
    let err = client.get("cluster", "/broken").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Status(500)), "{err:?}");
    assert_eq!(server.hits("/broken"), 1);
    // 404 neither.
    let err = client.get("cluster", "/missing").await.unwrap_err();
    assert!(matches!(err, CapabilityError::Status(404)), "{err:?}");
    assert_eq!(server.hits("/missing"), 1);

    assert_eq!(
        metric(
            &registry,
            "capability_retries_total",
            &[("capability", "cluster")]
        ),
        4.0
    );
}

#[tokio::test]
async fn post_is_retried_only_with_an_idempotency_key() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, earlier| match seen.path() {
        "/actions/no-key" => Reply::status(503),
        "/actions/keyed" if earlier == 0 => Reply::status(503),
        "/actions/keyed" => Reply::json(201, serde_json::json!({"accepted": true})),
        _ => Reply::status(404),
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);
    let body = serde_json::json!({"replicas": 3});

    let err = client
        .post("cluster", "/actions/no-key", &body, None)
        .await
        .unwrap_err();
    assert!(matches!(err, CapabilityError::Status(503)), "{err:?}");
    assert_eq!(server.hits("/actions/no-key"), 1);

    let response = client
        .post("cluster", "/actions/keyed", &body, Some("scale-shop-42"))
        .await
        .unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.attempts, 2);
    let sent: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/actions/keyed")
        .collect();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("idempotency-key"), Some("scale-shop-42"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let received: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(received, body);
    }
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_a_success() {
    let ca = TestCa::new();
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let server = Server::start(&ca, move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    })
    .await;
    let mut cfg = config(Some(&ca), LOOPBACK);
    cfg.breaker_failures = 3;
    cfg.breaker_open_seconds = 1;
    let (client, registry) = client(&cfg);
    client.set_registrations(vec![registration("cluster", &server.origin())]);
    let gauge = |r: &prometheus::Registry| {
        metric(r, "capability_breaker_open", &[("capability", "cluster")])
    };

    for _ in 0..3 {
        let err = client.get("cluster", "/work").await.unwrap_err();
        assert!(matches!(err, CapabilityError::Status(500)), "{err:?}");
    }
    assert_eq!(server.hits("/work"), 3);
    let until = match client.breaker_state("cluster") {
        BreakerState::Open { until } => until,
        other => panic!("expected Open, got {other:?}"),
    };
    assert!(until > chrono::Utc::now());
    assert_eq!(gauge(&registry), 1.0);

    let started = Instant::now();
    let err = client.get("cluster", "/work").await.unwrap_err();
    assert!(
        matches!(err, CapabilityError::BreakerOpen { until: u } if u == until),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(200));
    let err = client
        .post("cluster", "/work", &serde_json::json!({}), Some("k-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CapabilityError::BreakerOpen { .. }),
        "{err:?}"
    );
    assert_eq!(server.hits("/work"), 3, "an open breaker sends nothing");
    assert_eq!(
        metric(
            &registry,
            "capability_requests_total",
            &[("capability", "cluster"), ("outcome", "breaker_open")]
        ),
        2.0
    );
    // Probes bypass the breaker, so they keep reporting what the capability really says.
    let probe = client.probe("cluster").await.unwrap();
    assert_eq!(probe.status, 500);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(client.breaker_state("cluster"), BreakerState::HalfOpen);
    healthy.store(true, Ordering::SeqCst);
    let response = client.get("cluster", "/work").await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(client.breaker_state("cluster"), BreakerState::Closed);
    assert_eq!(gauge(&registry), 0.0);
    assert_eq!(server.hits("/work"), 4);
}

#[tokio::test]
async fn a_failed_trial_call_reopens_the_breaker() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |_, _| Reply::status(502)).await;
    let mut cfg = config(Some(&ca), LOOPBACK);
    cfg.breaker_failures = 2;
    cfg.breaker_open_seconds = 1;
    cfg.max_retries = 0;
    let (client, registry) = client(&cfg);
    client.set_registrations(vec![registration("cluster", &server.origin())]);

    for _ in 0..2 {
        assert!(matches!(
            client.get("cluster", "/x").await,
            Err(CapabilityError::Status(502))
        ));
    }
    assert!(matches!(
        client.breaker_state("cluster"),
        BreakerState::Open { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The trial goes out, fails, and the breaker is open again at once.
    assert!(matches!(
        client.get("cluster", "/x").await,
        Err(CapabilityError::Status(502))
    ));
    assert_eq!(server.hits("/x"), 3);
    assert!(matches!(
        client.breaker_state("cluster"),
        BreakerState::Open { .. }
    ));
    assert!(matches!(
        client.get("cluster", "/x").await,
        Err(CapabilityError::BreakerOpen { .. })
    ));
    assert_eq!(server.hits("/x"), 3);
    assert_eq!(
        metric(
            &registry,
            "capability_breaker_open",
            &[("capability", "cluster")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_response_larger_than_the_cap_is_refused() {
    let ca = TestCa::new();
    let limit = 16 * 1024;
    let server = Server::start(&ca, move |seen, _| match seen.path() {
        "/declared" => Reply::bytes(4 * limit, true),
        "/streamed" => Reply::bytes(4 * limit, false),
        "/fits" => Reply::bytes(limit, false),
        _ => Reply::status(404),
    })
    .await;
    let (client, registry) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![registration("cluster", &server.origin())]);

    for path in ["/declared", "/streamed"] {
        let err = client.get("cluster", path).await.unwrap_err();
        assert!(
            matches!(err, CapabilityError::TooLarge { limit: l } if l == limit),
            "{path}: {err:?}"
        );
        assert_eq!(server.hits(path), 1, "{path} is not retried");
    }
    let response = client.get("cluster", "/fits").await.unwrap();
    assert_eq!(response.body.len(), limit);
    assert_eq!(
        metric(
            &registry,
            "capability_requests_total",
            &[("capability", "cluster"), ("outcome", "too_large")]
        ),
        2.0
    );
}

#[tokio::test]
async fn a_probe_reports_status_and_latency_in_one_try() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, earlier| match seen.path() {
        "/healthz" if earlier == 0 => Reply::status(503),
        "/healthz" => Reply::status(200).delayed(Duration::from_millis(60)),
        _ => Reply::status(404),
    })
    .await;
    let (client, _) = client(&config(Some(&ca), LOOPBACK));
    let mut reg = registration("cluster", &server.origin());
    reg.health_path = "healthz".to_owned();
    client.set_registrations(vec![reg]);

    let first = client.probe("cluster").await.unwrap();
    assert_eq!(first.status, 503);
    assert_eq!(server.hits("/healthz"), 1, "probes are not retried");
    let second = client.probe("cluster").await.unwrap();
    assert_eq!(second.status, 200);
    assert!(
        second.latency >= Duration::from_millis(60),
        "{:?}",
        second.latency
    );
    assert!(second.latency < Duration::from_secs(3));
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {CREDENTIAL}").as_str())
    );
    assert!(matches!(
        client.probe("nope").await,
        Err(CapabilityError::UnknownCapability(_))
    ));
}

#[tokio::test]
async fn metrics_count_every_outcome_per_capability() {
    let ca = TestCa::new();
    let server = Server::start(&ca, |seen, _| match seen.path() {
        "/ok" => Reply::status(200),
        _ => Reply::status(500),
    })
    .await;
    let (client, registry) = client(&config(Some(&ca), LOOPBACK));
    client.set_registrations(vec![
        registration("cluster", &server.origin()),
        registration("private", "https://10.9.8.7/"),
    ]);
    client.get("cluster", "/ok").await.unwrap();
    client.get("cluster", "/ok").await.unwrap();
    client.get("cluster", "/fail").await.unwrap_err();
    client.get("private", "/").await.unwrap_err();
    client.get("unregistered", "/").await.unwrap_err();

    let count = |capability: &str, outcome: &str| {
        metric(
            &registry,
            "capability_requests_total",
            &[("capability", capability), ("outcome", outcome)],
        )
    };
    assert_eq!(count("cluster", "ok"), 2.0);
    assert_eq!(count("cluster", "server_error"), 1.0);
    assert_eq!(count("private", "blocked"), 1.0);
    assert_eq!(
        count("unregistered", "refused"),
        0.0,
        "unknown names make no series"
    );
    assert_eq!(
        metric(
            &registry,
            "capability_request_duration_seconds",
            &[("capability", "cluster")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &registry,
            "capability_blocked_total",
            &[("class", "private")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &registry,
            "capability_breaker_open",
            &[("capability", "cluster")]
        ),
        0.0
    );

    let mut text = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("capability_requests_total{capability=\"cluster\",outcome=\"ok\"} 2"),
        "{text}"
    );
    assert!(!text.contains(CREDENTIAL));
    assert!(!format!("{client:?}").contains(CREDENTIAL));
}

//! A scriptable HTTPS server on loopback with its own CA, made fresh for each test: it records
//! every connection and request and answers what the test's handler says.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A throwaway CA and a server certificate it signed for 127.0.0.1, ::1 and localhost.
pub struct TestCa {
    ca_file: PathBuf,
    tls: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hubplane capability test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "cluster.test");
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec()), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();

        let ca_file = std::env::temp_dir().join(format!(
            "hubplane-capability-ca-{}-{}.pem",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            ca_file,
            tls: Arc::new(tls),
        }
    }

    /// The CA certificate as a PEM file, for `ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waited before the answer is written.
    pub delay: Duration,
    /// When false, no Content-Length: the body runs until the connection closes.
    pub declare_length: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            declare_length: true,
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        let mut reply = Self::status(status);
        reply.body = body.to_string().into_bytes();
        reply
            .headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        reply
    }
    pub fn redirect(location: &str) -> Self {
        let mut reply = Self::status(302);
        reply
            .headers
            .push(("location".to_owned(), location.to_owned()));
        reply
    }
    pub fn bytes(len: usize, declare_length: bool) -> Self {
        let mut reply = Self::status(200);
        reply.body = vec![b'x'; len];
        reply.declare_length = declare_length;
        reply
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
    handler: Box<Handler>,
}

/// The running server; it stops with the test's runtime.
pub struct Server {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    /// Serves on 127.0.0.1 on a free port. The handler gets the request and how many earlier
    /// requests had the same path.
    pub async fn start(
        ca: &TestCa,
        handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), ca, handler)
            .await
            .unwrap()
    }

    /// Serves on `addr`; an error when it cannot be bound (no IPv6 on this machine, say).
    pub async fn start_on(
        addr: SocketAddr,
        ca: &TestCa,
        handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let acceptor = TlsAcceptor::from(Arc::clone(&ca.tls));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, &state).await;
                    }
                });
            }
        });
        Ok(Self { addr, state })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `https://127.0.0.1:<port>` (or the bound address).
    pub fn origin(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("https://{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("https://[{}]:{}", a.ip(), a.port()),
        }
    }
    /// TCP connections accepted, whether or not a request followed.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }
    /// Requests whose path (without query) is `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path() == path).count()
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S, state: &State) {
    let Some(seen) = read_request(&mut io).await else {
        return;
    };
    let earlier = {
        let mut requests = state.requests.lock().unwrap();
        let earlier = requests.iter().filter(|r| r.path() == seen.path()).count();
        requests.push(seen.clone());
        earlier
    };
    let reply = (state.handler)(&seen, earlier);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut head = format!("HTTP/1.1 {} Test\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.declare_length {
        head.push_str(&format!("content-length: {}\r\n", reply.body.len()));
    }
    head.push_str("\r\n");
    if io.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    // The client may hang up once it has seen enough; that is what some tests check.
    let _ = io.write_all(&reply.body).await;
    let _ = io.shutdown().await;
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(io: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

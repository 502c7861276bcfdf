//! The real `state-hub` binary on a loopback port, and the databases it runs on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

const BIN: &str = env!("CARGO_BIN_EXE_state-hub");

/// The superuser URL of the shared test server; these tests do not guess one.
pub fn admin_url() -> String {
    std::env::var("HUB_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "HUB_TEST_DATABASE_URL is not set: these fault tests need a PostgreSQL superuser URL \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres; ./scripts/test.sh sets it)"
        )
    })
}

/// `admin` (a postgres:// URL) with its database replaced by `db`.
pub fn with_database(admin: &str, db: &str) -> String {
    let mut url = url::Url::parse(admin).expect("a postgres:// URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

/// A superuser connection, driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A fresh database on the server at `admin`, dropped with the value.
pub struct Database {
    admin: String,
    name: String,
    /// URL of the database itself.
    pub url: String,
}

impl Database {
    pub async fn create(admin: &str) -> Database {
        let name = format!("state_hub_faults_{}", uuid::Uuid::new_v4().simple());
        connect(admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Database {
            admin: admin.to_owned(),
            url: with_database(admin, &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// `hubctl`, built next to this crate's binary (or in `HUB_BIN_DIR`).
fn hubctl_binary() -> PathBuf {
    let dirs: Vec<PathBuf> = match std::env::var_os("HUB_BIN_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => Path::new(BIN)
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
    };
    dirs.iter()
        .map(|d| d.join("hubctl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "hubctl is not built (looked in {dirs:?}); run `cargo build -p hubctl` first, \
                 or point HUB_BIN_DIR at the directory holding it"
            )
        })
}

/// One state hub process with its config, token and log under `.tmp/state-hub-faults/`.
pub struct Hub {
    child: Option<Child>,
    /// Port it listens on (kept across restarts).
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The bootstrap admin token.
    pub token: String,
    token_file: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Hub {
    /// Starts a hub on `database_url` and waits until `/readyz` answers 200.
    pub async fn start(database_url: &str, grace_seconds: u64) -> Hub {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.tmp/state-hub-faults")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let token =
            secrecy::ExposeSecret::expose_secret(&hub_core::auth::tokens::generate()).to_owned();
        let token_file = dir.join("admin.token");
        std::fs::write(&token_file, &token).unwrap();
        let mut hub = Hub {
            child: None,
            port: 0,
            url: String::new(),
            token,
            token_file,
            config: dir.join("state-hub.toml"),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        };
        // Another process may take the probed port before the hub binds it: try a few.
        for attempt in 1.. {
            hub.port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            hub.url = format!("http://127.0.0.1:{}", hub.port);
            hub.write_config(database_url, grace_seconds);
            match hub.spawn().await {
                Ok(()) => break,
                Err(why) if attempt < 3 && why.contains("listen") => continue,
                Err(why) => panic!("the state hub did not become ready: {why}"),
            }
        }
        hub
    }

    fn write_config(&self, database_url: &str, grace_seconds: u64) {
        // The per-token request limit is off: the tests measure faults, not the limiter.
        let text = format!(
            "dev_mode = true\n\n[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             workers = 2\nshutdown_grace_seconds = {grace_seconds}\n\n\
             [database]\nurl = \"{database_url}\"\npool_size = 8\nhealth_pool_size = 1\nconnect_timeout_seconds = 2\n\n\
             [auth]\nbootstrap_admin_token_file = \"{token}\"\n\n[limits]\napi_per_token_per_second = 0\n\n\
             [log]\nformat = \"json\"\nfilter = \"info\"\n",
            port = self.port,
            token = self.token_file.display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("state-hub.log")
    }

    /// Everything the hub processes wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process (again) with the same config and waits for readiness.
    pub async fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the hub is still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&self.config).arg("serve");
        // Only the config file configures this hub.
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("HUB_")
                || text == "CREDENTIALS_DIRECTORY"
                || text == "STATE_HUB_CONFIG"
                || text == "NOTIFY_SOCKET"
                || text == "RUST_LOG"
            {
                cmd.env_remove(&name);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}")),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.try_exit() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if self.ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 20 s:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn ready(&self) -> bool {
        matches!(
            self.http.get(format!("{}/readyz", self.url)).send().await,
            Ok(r) if r.status() == 200
        )
    }

    /// The process id of the running hub.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the hub runs").id()
    }

    /// The exit status, once the process has exited (and is reaped).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// SIGKILL to the hub's pid (through its `Child` handle), and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the hub runs");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed by SIGKILL"
        );
    }

    /// Sends SIGTERM to the hub's pid with kill(1) (the workspace forbids `unsafe`).
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `hubctl audit verify` against this hub: exit code and output.
    pub fn audit_verify(&self) -> (Option<i32>, String) {
        let out = Command::new(hubctl_binary())
            .env_remove("HUBCTL_TOKEN")
            .env("HUBCTL_URL", &self.url)
            .env("HUBCTL_TOKEN_FILE", &self.token_file)
            .args(["audit", "verify"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("state hub log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

//! A throwaway PostgreSQL cluster for tests that stop, restart or crash the database server:
//! `initdb` + `pg_ctl` from Debian's /usr/lib/postgresql/<major>/bin into its own directory,
//! listening on a free loopback port, stopped and deleted on drop. The shared server of
//! `HUB_TEST_DATABASE_URL` is never touched.
//!
//! The same recipe as `scripts/lib/postgres.sh` (`_hp_pg_start_throwaway`): trust auth, superuser
//! `postgres`, and, because initdb refuses to run as root, the cluster belongs to the `postgres`
//! user (commands run through `runuser -u postgres --`) when the test runs as root. When the
//! server binaries are missing they are installed through scripts/lib/deps.sh
//! (`ensure_debian_packages postgresql`), as the project's scripts do on a fresh machine.
//! Included with `#[path]` by the test crates that need it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How `pg_ctl` stops the server (`-m`).
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// Disconnects clients, checkpoints, then exits: an orderly restart.
    Fast,
    /// Aborts every backend without a checkpoint: recovery replays the WAL, as after a crash.
    Immediate,
}

impl StopMode {
    fn flag(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A running throwaway cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_owner: bool,
}

fn repo() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("scripts/lib/deps.sh").is_file() {
        assert!(
            dir.pop(),
            "scripts/lib not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// Newest installed major version first, then whatever is on PATH.
fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    let found = dirs
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
    found.or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let dir = path.parent()?.to_path_buf();
        (out.status.success() && dir.join("pg_ctl").is_file()).then_some(dir)
    })
}

fn ensure_bin() -> PathBuf {
    if let Some(bin) = find_bin() {
        return bin;
    }
    let out = Command::new("bash")
        .current_dir(repo())
        .args([
            "-c",
            "set -euo pipefail; source scripts/lib/deps.sh; ensure_debian_packages postgresql",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "initdb/pg_ctl are missing and installing Debian's postgresql failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    find_bin().expect(
        "initdb/pg_ctl not found even after installing postgresql \
         (source scripts/lib/deps.sh && ensure_debian_packages postgresql)",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "running as root needs a `postgres` user to own the throwaway cluster (initdb refuses root); \
         Debian's postgresql package creates it"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

impl PgCluster {
    /// Runs initdb and starts the server; panics with the server's log when it cannot.
    pub fn start() -> PgCluster {
        let bin = ensure_bin();
        let as_owner = running_as_root();
        // Short, so the Unix socket path (data dir) stays under its 107-byte limit.
        let dir = std::env::temp_dir().join(format!(
            "hp-pgc-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if as_owner {
            std::os::unix::fs::chown(&dir, Some(id_of("-u")), Some(id_of("-g"))).unwrap();
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            as_owner,
        };
        let data = cluster.data();
        let init = cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            init.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("include 'hubplane.conf'\n");
        cluster.write_as_owner(&conf, &text);
        // Another process may take the probed port first: try a few.
        for attempt in 1.. {
            cluster.port = free_port();
            cluster.write_as_owner(
                &data.join("hubplane.conf"),
                &format!(
                    "# a throwaway cluster for one test (tests/support/pgcluster.rs)\n\
                     listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
                     max_connections = 100\n",
                    cluster.port,
                    data.display()
                ),
            );
            if cluster
                .pg_ctl(&["-w", "-t", "60", "start"])
                .status
                .success()
            {
                break;
            }
            let log = cluster.log();
            assert!(
                attempt < 5 && log.contains("could not bind"),
                "pg_ctl start failed:\n{log}"
            );
        }
        cluster
    }

    /// Superuser URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// `pg_ctl restart -m <mode>`: stops the server (dropping every connection) and starts it
    /// again on the same port and data; returns once it accepts connections.
    pub fn restart(&self, mode: StopMode) {
        let out = self.pg_ctl(&["-m", mode.flag(), "-w", "-t", "60", "restart"]);
        assert!(
            out.status.success(),
            "pg_ctl restart -m {} failed:\n{}\n{}",
            mode.flag(),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let log = self.dir.join("postgres.log");
        let mut all = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs a server program as the cluster's owner. Its output is read from files, never
    /// from pipes: the postmaster `pg_ctl` starts would hold a pipe open for its whole life.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_owner {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let err_path = self
            .dir
            .join(format!("{program}.{}.err", uuid::Uuid::new_v4().simple()));
        let err = std::fs::File::create(&err_path).unwrap();
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        let _ = std::fs::remove_file(&err_path);
        Output {
            status: out,
            stdout: Vec::new(),
            stderr,
        }
    }

    fn write_as_owner(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        if self.as_owner {
            std::os::unix::fs::chown(path, Some(id_of("-u")), Some(id_of("-g"))).unwrap();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").is_file() {
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "-t", "30", "stop"]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.data().join("postmaster.pid").is_file() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

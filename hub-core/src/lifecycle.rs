//! Process lifecycle: sd_notify READY/WATCHDOG/STOPPING, signals, and the shutdown registry that
//! stops a hub in a bounded order (stop accepting, drain requests, stop background jobs, flush,
//! close pools). Every step runs once, however often shutdown is requested, and is time-boxed.

use futures_util::future::BoxFuture;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

type StepFn = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

struct Step {
    name: &'static str,
    limit: Duration,
    run: StepFn,
}

/// Ordered, idempotent shutdown steps plus a "stopping" signal background tasks can watch.
pub struct Shutdown {
    steps: Mutex<Option<Vec<Step>>>,
    stopping_tx: watch::Sender<bool>,
    done_tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            steps: Mutex::new(Some(Vec::new())),
            stopping_tx: watch::channel(false).0,
            done_tx: watch::channel(false).0,
        }
    }

    /// Adds a step; steps run in registration order, each limited to `limit`.
    pub fn register<F, Fut>(&self, name: &'static str, limit: Duration, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Ok(mut guard) = self.steps.lock() {
            if let Some(steps) = guard.as_mut() {
                steps.push(Step {
                    name,
                    limit,
                    run: Box::new(move || Box::pin(f())),
                });
            }
        }
    }

    /// A receiver that turns `true` when shutdown begins.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping_tx.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stopping_tx.borrow()
    }

    /// Runs the steps once; concurrent and later callers wait for the first run to finish.
    pub async fn run(&self) {
        let steps = self.steps.lock().ok().and_then(|mut g| g.take());
        let Some(steps) = steps else {
            let mut done = self.done_tx.subscribe();
            let _ = done.wait_for(|d| *d).await;
            return;
        };
        self.stopping_tx.send_replace(true);
        notify_stopping();
        for step in steps {
            tracing::info!(step = step.name, "shutdown step");
            if tokio::time::timeout(step.limit, (step.run)())
                .await
                .is_err()
            {
                tracing::warn!(
                    step = step.name,
                    limit_ms = step.limit.as_millis() as u64,
                    "shutdown step timed out"
                );
            }
        }
        self.done_tx.send_replace(true);
        tracing::info!("shutdown complete");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn terminate_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Tells systemd the service is ready (no-op outside systemd).
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify READY not delivered");
    }
}

fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Pings the systemd watchdog at half its interval while `alive` answers true; a wedged runtime
/// stops pinging and systemd restarts the unit.
pub fn spawn_watchdog<F, Fut>(alive: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if alive().await {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::warn!("watchdog check failed; not pinging systemd");
            }
        }
    });
}

/// The `healthcheck` subcommand every hub has: asks the hub listening on `listen` for `/readyz`
/// (loopback when it binds every address) and prints `ready`, or fails with the last line of the
/// answer. Plain TCP on purpose: it must work where no HTTP client is configured.
pub async fn healthcheck(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(addr),
    )
    .await??;
    s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf);
    if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") {
        println!("ready");
        Ok(())
    } else {
        anyhow::bail!("not ready: {}", text.lines().last().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn steps_run_once_in_order_and_are_time_boxed() {
        let s = Arc::new(Shutdown::new());
        let log = Arc::new(Mutex::new(Vec::new()));
        let runs = Arc::new(AtomicUsize::new(0));
        for (name, sleep) in [("first", 0u64), ("slow", 10_000), ("last", 0)] {
            let log = log.clone();
            let runs = runs.clone();
            s.register(name, Duration::from_millis(50), move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(sleep)).await;
                log.lock().unwrap().push(name);
            });
        }
        let mut stopping = s.stopping();
        let (a, b) = tokio::join!(s.run(), s.run());
        let _ = (a, b);
        s.run().await;
        assert!(*stopping.borrow_and_update());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(*log.lock().unwrap(), vec!["first", "last"]);
    }
}

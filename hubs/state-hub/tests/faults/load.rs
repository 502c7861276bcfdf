//! Concurrent clients appending events, each with its own Idempotency-Key, and what they saw.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a client does when a write was not acknowledged.
#[derive(Clone, Copy)]
pub enum Retry {
    /// Retries connection errors, 5xx and 429 with the same key and body until the deadline.
    Until(Instant),
    /// One attempt per event; the outcome is recorded.
    Never,
}

/// The answer one attempt got.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx with the event's sequence number; `replayed` when the hub answered from its key.
    Acked { seq: i64, replayed: bool },
    /// A status that is not 2xx.
    Status(u16, String),
    /// The connection was refused: nobody listened.
    Refused,
    /// Any other transport failure (reset, closed mid-request, time-out).
    Broken(String),
}

/// The key, summary and body of event `i` of the run tagged `tag`.
pub fn key(tag: &str, i: usize) -> String {
    format!("fault-{tag}-{i}")
}

fn body(tag: &str, i: usize) -> Value {
    json!({"event_type": "fault.tick", "summary": key(tag, i), "detail": {"i": i}})
}

/// Live counters the test reads while the load runs.
#[derive(Default)]
pub struct Live {
    /// Events acknowledged so far.
    pub acked: AtomicUsize,
    /// Requests sent and not answered yet.
    pub in_flight: AtomicUsize,
}

/// What every client saw, per event (in order of attempts).
pub struct Outcome {
    /// `attempts[i]`: the answers event `i` got.
    pub attempts: Vec<Vec<Answer>>,
}

impl Outcome {
    /// The final acknowledgement of each acknowledged event: (index, seq).
    pub fn acked(&self) -> Vec<(usize, i64)> {
        self.attempts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a.last() {
                Some(Answer::Acked { seq, .. }) => Some((i, *seq)),
                _ => None,
            })
            .collect()
    }

    /// Requests sent again after a failed attempt.
    pub fn retries(&self) -> usize {
        self.attempts
            .iter()
            .map(|a| a.len().saturating_sub(1))
            .sum()
    }

    /// Events that needed more than one attempt.
    pub fn retried_events(&self) -> usize {
        self.attempts.iter().filter(|a| a.len() > 1).count()
    }

    /// Acknowledgements the hub answered from a stored key (the first attempt had committed).
    pub fn replayed(&self) -> usize {
        self.attempts
            .iter()
            .flatten()
            .filter(|a| matches!(a, Answer::Acked { replayed: true, .. }))
            .count()
    }

    /// Answers that are neither an acknowledgement nor something a client retries.
    pub fn rejected(&self) -> Vec<(usize, &Answer)> {
        self.attempts
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.iter().map(move |x| (i, x)))
            .filter(|(_, a)| matches!(a, Answer::Status(s, _) if *s < 500 && *s != 429))
            .collect()
    }
}

/// Whether any error in the chain is a refused connection.
fn refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// Posts event `i` once.
pub async fn post(http: &reqwest::Client, base: &str, token: &str, tag: &str, i: usize) -> Answer {
    let sent = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(token)
        .header("Idempotency-Key", key(tag, i))
        .json(&body(tag, i))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            let replayed = r.headers().contains_key("idempotency-replayed");
            match r.json::<Value>().await {
                Ok(v) => match v["seq"].as_i64() {
                    Some(seq) => Answer::Acked { seq, replayed },
                    None => Answer::Broken(format!("2xx without a seq: {v}")),
                },
                Err(e) => Answer::Broken(format!("2xx body unreadable: {e}")),
            }
        }
        Ok(r) => {
            let status = r.status().as_u16();
            Answer::Status(status, r.text().await.unwrap_or_default())
        }
        Err(e) if refused(&e) => Answer::Refused,
        Err(e) => Answer::Broken(format!("{e:?}")),
    }
}

/// Starts `clients` concurrent clients appending events `0..total` between them.
pub fn start(
    base: &str,
    token: &str,
    tag: &str,
    total: usize,
    clients: usize,
    retry: Retry,
) -> (Arc<Live>, tokio::task::JoinHandle<Outcome>) {
    let live = Arc::new(Live::default());
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, tag) = (
                http.clone(),
                base.to_owned(),
                token.to_owned(),
                tag.to_owned(),
            );
            let (live, next) = (live.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen: Vec<(usize, Vec<Answer>)> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let mut answers = Vec::new();
                    let mut pause = Duration::from_millis(20);
                    loop {
                        live.in_flight.fetch_add(1, Ordering::SeqCst);
                        let answer = post(&http, &base, &token, &tag, i).await;
                        live.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let done = match (&answer, retry) {
                            (Answer::Acked { .. }, _) => {
                                live.acked.fetch_add(1, Ordering::SeqCst);
                                true
                            }
                            (_, Retry::Never) => true,
                            (Answer::Status(s, _), _) if *s < 500 && *s != 429 => true,
                            (_, Retry::Until(deadline)) => Instant::now() > deadline,
                        };
                        answers.push(answer);
                        if done {
                            break;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(250));
                    }
                    seen.push((i, answers));
                }
                seen
            })
        })
        .collect();
    let outcome = tokio::spawn(async move {
        let mut attempts = vec![Vec::new(); total];
        for w in workers {
            for (i, answers) in w.await.unwrap() {
                attempts[i] = answers;
            }
        }
        Outcome { attempts }
    });
    (live, outcome)
}

/// Waits until at least `n` events are acknowledged (or panics after `limit`).
pub async fn wait_acked(live: &Live, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while live.acked.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events acknowledged after {limit:?}",
            live.acked.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

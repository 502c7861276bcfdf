//! Synthetic journal for `bench/journal-scale.sh`: writes `COPY events FROM STDIN` text (the
//! state hub's `events` columns, in table order) for a gapless, correctly hash-chained journal,
//! sealed with the hub's own `hub_core::journal::link`, so `state-hub verify` accepts it.
//!
//! ```text
//! journal_gen --count N --end-epoch SECS [--span-days 365] [--seed 1]
//!             [--tasks FILE] [--decisions FILE] > events.copy
//! ```
//!
//! `--tasks` lists `task_id workplan_id workstream_id` per line, `--decisions` one decision id
//! per line (rows that exist in the target database: the events link to them). Event types come
//! from a set of 30 with a skewed (Zipf-like) mix, authors from 200 principals, `created_at`
//! rises with `seq` over the span, and `detail` is a 300–600 byte JSON object. The last line on
//! stderr is `head <seq> <hash hex>`.

use chrono::{DateTime, Utc};
use hub_core::journal::{link, to_hex, Sealed, GENESIS};
use serde_json::{json, Value};
use std::io::{BufRead, BufWriter, Write};
use uuid::Uuid;

const TYPES: [&str; 30] = [
    "task.updated",
    "agent.heartbeat",
    "build.finished",
    "build.started",
    "test.passed",
    "task.created",
    "commit.pushed",
    "capability.called",
    "task.started",
    "task.done",
    "review.requested",
    "review.done",
    "note.added",
    "deploy.started",
    "deploy.finished",
    "test.failed",
    "plan.created",
    "decision.proposed",
    "alert.fired",
    "capability.probed",
    "agent.started",
    "agent.stopped",
    "task.blocked",
    "decision.resolved",
    "plan.finished",
    "incident.opened",
    "incident.closed",
    "release.tagged",
    "plan.accepted",
    "decision.escalated",
];

const WORDS: [&str; 24] = [
    "build", "agent", "queue", "retry", "cache", "node", "plan", "merge", "deploy", "check",
    "index", "shard", "token", "probe", "stream", "batch", "limit", "graph", "lease", "audit",
    "hub", "state", "domain", "report",
];

/// splitmix64: deterministic, fast, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Cumulative Zipf-like weights `1/(i+1)^s`, scaled to u64.
fn zipf_table(n: usize, s: f64) -> Vec<u64> {
    let w: Vec<f64> = (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x / total;
            (acc * u64::MAX as f64) as u64
        })
        .collect()
}

fn pick(table: &[u64], r: u64) -> usize {
    table.partition_point(|&c| c < r).min(table.len() - 1)
}

/// COPY text escaping for a non-null field.
fn copy_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn copy_uuid(out: &mut String, v: Option<Uuid>) {
    match v {
        Some(u) => out.push_str(&u.hyphenated().to_string()),
        None => out.push_str("\\N"),
    }
}

fn read_lines(path: &str) -> Vec<Vec<Uuid>> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    std::io::BufReader::new(f)
        .lines()
        .map(|l| {
            let l = l.unwrap_or_else(|e| fail(&format!("{path}: {e}")));
            l.split_whitespace()
                .map(|w| Uuid::parse_str(w).unwrap_or_else(|e| fail(&format!("{path}: {w}: {e}"))))
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn fail(msg: &str) -> ! {
    eprintln!("journal_gen: {msg}");
    std::process::exit(2)
}

fn main() {
    let mut count: i64 = 1_000_000;
    let mut end_epoch: i64 = Utc::now().timestamp();
    let mut span_days: i64 = 365;
    let mut seed: u64 = 1;
    let mut tasks: Vec<Vec<Uuid>> = Vec::new();
    let mut decisions: Vec<Vec<Uuid>> = Vec::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| fail(&format!("{} needs a value", args[i])));
        let num = |v: &str| -> i64 {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("bad number {v}")))
        };
        match args[i].as_str() {
            "--count" => count = num(&val),
            "--end-epoch" => end_epoch = num(&val),
            "--span-days" => span_days = num(&val),
            "--seed" => seed = num(&val) as u64,
            "--tasks" => tasks = read_lines(&val),
            "--decisions" => decisions = read_lines(&val),
            other => fail(&format!("unknown argument {other}")),
        }
        i += 2;
    }
    if count < 1 || span_days < 1 {
        fail("--count and --span-days must be positive");
    }
    if tasks.iter().any(|t| t.len() != 3) {
        fail("--tasks lines need: task_id workplan_id workstream_id");
    }

    let authors: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("svc:hub-{i:03}"),
            1 => format!("agent:worker-{i:03}"),
            2 => format!("user:person{i:03}"),
            _ => format!("svc:ci-runner-{i:03}"),
        })
        .collect();
    let type_table = zipf_table(TYPES.len(), 1.1);
    let author_table = zipf_table(authors.len(), 1.0);
    let span_us = span_days * 86_400 * 1_000_000;
    let start_us = end_epoch * 1_000_000 - span_us;
    let step_us = (span_us / count).max(1);

    let mut rng = Rng(seed);
    let mut prev = GENESIS;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut line = String::with_capacity(2048);
    for seq in 1..=count {
        let ty = TYPES[pick(&type_table, rng.next())];
        let author = &authors[pick(&author_table, rng.next())];
        let noun = ty.split('.').next().unwrap_or("task");
        let (mut ws, mut wp, mut task, mut dec) = (None, None, None, None);
        match noun {
            "task" if !tasks.is_empty() => {
                let t = &tasks[rng.below(tasks.len() as u64) as usize];
                (task, wp, ws) = (Some(t[0]), Some(t[1]), Some(t[2]));
            }
            "plan" if !tasks.is_empty() => {
                let t = &tasks[rng.below(tasks.len() as u64) as usize];
                (wp, ws) = (Some(t[1]), Some(t[2]));
            }
            "decision" if !decisions.is_empty() => {
                dec = Some(decisions[rng.below(decisions.len() as u64) as usize][0]);
            }
            _ if !tasks.is_empty() && rng.below(5) == 0 => {
                ws = Some(tasks[rng.below(tasks.len() as u64) as usize][2]);
            }
            _ => {}
        }
        let mut id_bytes = [0u8; 16];
        id_bytes[..8].copy_from_slice(&rng.next().to_le_bytes());
        id_bytes[8..].copy_from_slice(&rng.next().to_le_bytes());
        let id = uuid::Builder::from_random_bytes(id_bytes).into_uuid();
        let t_us = start_us + (seq - 1) * step_us + rng.below(step_us as u64) as i64;
        let created_at: DateTime<Utc> =
            DateTime::from_timestamp_micros(t_us).unwrap_or_else(|| fail("timestamp out of range"));

        // detail: 300-600 bytes of compact JSON
        let target = 300 + rng.below(301) as usize;
        let mut message = String::with_capacity(target);
        let base = 210; // the other fields, roughly
        while message.len() + base < target {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        let env = ["prod", "staging", "dev"][rng.below(3) as usize];
        let region = ["eu-west", "us-east", "ap-south"][rng.below(3) as usize];
        let status = ["ok", "ok", "ok", "failed", "skipped"][rng.below(5) as usize];
        let detail: Value = json!({
            "attempt": rng.below(5) + 1,
            "duration_ms": rng.below(600_000),
            "host": format!("node-{:02}", rng.below(40)),
            "labels": {
                "env": env,
                "region": region,
            },
            "message": message,
            "ref": format!("{:016x}{:016x}", rng.next(), rng.next()),
            "status": status,
        });
        let summary = format!(
            "{} {} #{} by {}",
            ty.replace('.', " "),
            WORDS[rng.below(WORDS.len() as u64) as usize],
            rng.below(100_000),
            author
        );
        let sealed = Sealed {
            seq,
            id,
            created_at,
            event_type: ty,
            summary: &summary,
            author,
            workstream_id: ws,
            workplan_id: wp,
            task_id: task,
            decision_id: dec,
            detail: &detail,
        };
        let hash = link(&prev, &sealed);

        line.clear();
        line.push_str(&seq.to_string());
        line.push('\t');
        line.push_str(&id.hyphenated().to_string());
        line.push('\t');
        line.push_str(&created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        line.push('\t');
        line.push_str(ty);
        line.push('\t');
        copy_escape(&mut line, &summary);
        line.push('\t');
        copy_escape(&mut line, author);
        for v in [ws, wp, task, dec] {
            line.push('\t');
            copy_uuid(&mut line, v);
        }
        line.push('\t');
        copy_escape(&mut line, &detail.to_string());
        line.push_str("\t\\\\x");
        line.push_str(&to_hex(&prev));
        line.push_str("\t\\\\x");
        line.push_str(&to_hex(&hash));
        line.push('\n');
        if let Err(e) = out.write_all(line.as_bytes()) {
            fail(&format!("write: {e}"));
        }
        prev = hash;
    }
    if let Err(e) = out.flush() {
        fail(&format!("write: {e}"));
    }
    eprintln!("head {count} {}", to_hex(&prev));
}

//! `hubctl capabilities`: request capability registrations, move them through their lifecycle,
//! set their credentials (read from a file or stdin, never from the command line), and read
//! their probes and what a hub may call.

use super::{page_json, pages, Ctx};
use crate::cli::IfMatch;
use crate::client::with_if_match;
use crate::output::{self, list, note, opt, opt_time, record, time};
use anyhow::{bail, Context};
use clap::Subcommand;
use hub_core::api::capabilities::{
    CallableList, Capability, CapabilityStatus, CapabilityTransition, NewCapability, Probe,
    ProbeHealth,
};
use reqwest::Method;
use secrecy::zeroize::Zeroizing;
use serde_json::Value;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// `hubctl capabilities …`.
#[derive(Subcommand, Debug)]
pub enum CapabilitiesCommand {
    /// List registrations by name (credentials are never shown, only their key ids).
    List {
        /// Only this status.
        #[arg(long, value_parser = status)]
        status: Option<CapabilityStatus>,
        /// Page size (1–500).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: Option<i64>,
        /// Cursor from a previous page.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Follow `next` cursors to the end.
        #[arg(long)]
        all: bool,
    },
    /// Show one registration.
    Show {
        /// Capability name.
        name: String,
    },
    /// Print the registered contract (the canonical JSON its sha256 is computed over).
    Contract {
        /// Capability name.
        name: String,
    },
    /// Request a registration; it starts as `requested`.
    // `--version` is the interface's version here, not hubctl's.
    #[command(disable_version_flag = true)]
    Request {
        /// Unique name, e.g. `deployments`.
        #[arg(long)]
        name: String,
        /// The cluster-side service that provides it.
        #[arg(long)]
        owning_service: String,
        /// `https://` base URL.
        #[arg(long)]
        base_url: String,
        /// Health path under the base URL, e.g. `/healthz`.
        #[arg(long)]
        health_path: String,
        /// Path of the live contract under the base URL, e.g. `/contract`.
        #[arg(long)]
        contract_path: String,
        /// The contract document (OpenAPI or JSON Schema, JSON), or `-` for stdin.
        #[arg(long, value_name = "FILE|-")]
        contract: PathBuf,
        /// Interface version.
        #[arg(long)]
        version: String,
    },
    /// Move a registration on: accepted, in_progress, ready_for_review, completed, rejected or
    /// withdrawn (accept, reject and complete need an admin; completing is someone else's review).
    Transition {
        /// Capability name.
        name: String,
        /// Target status.
        #[arg(value_parser = status)]
        to: CapabilityStatus,
        /// Why (kept in the journal).
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Set the credential: a bearer token or an age file sealed to the hub's recipient
    /// (`hubctl secret recipient --hub`), read from --file or stdin. The hub stores it sealed.
    SetCredential {
        /// Capability name.
        name: String,
        /// Read the credential from this file, or `-` for stdin.
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// The probe history, newest first.
    Probes {
        /// Capability name.
        name: String,
        /// Most probes shown (1–500).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: Option<i64>,
    },
    /// What the caller may call: a hub token gets its manifest's capabilities with credentials
    /// (masked in the table; `--output json` prints them), an admin every completed one without.
    Callable,
}

fn status(s: &str) -> Result<CapabilityStatus, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
        format!(
            "`{s}` is not a capability status (requested, accepted, in_progress, \
             ready_for_review, completed, rejected, withdrawn)"
        )
    })
}

fn status_name(s: CapabilityStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn health_name(h: ProbeHealth) -> String {
    serde_json::to_value(h)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Runs a `capabilities` subcommand.
pub async fn run(ctx: &Ctx, cmd: CapabilitiesCommand) -> anyhow::Result<()> {
    let c = &ctx.client;
    let reply = match cmd {
        CapabilitiesCommand::List {
            status,
            limit,
            after,
            all,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(s) = status {
                query.push(("status", status_name(s)));
            }
            if let Some(n) = limit.or(all.then_some(hub_core::api::page::MAX_LIMIT)) {
                query.push(("limit", n.to_string()));
            }
            let (items, next) = pages(ctx, &["capabilities"], &query, after, all).await?;
            if ctx.out.is_json() {
                return output::print_json(&page_json(items, next));
            }
            let caps: Vec<Capability> = serde_json::from_value(Value::Array(items))
                .context("the hub's capabilities do not have the expected shape")?;
            output::print_line(&capability_table(&caps).to_string())?;
            if let Some(next) = next {
                note(&format!("more capabilities: --after {next} (or --all)"));
            }
            return Ok(());
        }
        CapabilitiesCommand::Show { name } => c.send(c.get(&["capabilities", &name])).await?,
        CapabilitiesCommand::Contract { name } => {
            let reply = c.send(c.get(&["capabilities", &name, "contract"])).await?;
            return output::print_json(&reply.body);
        }
        CapabilitiesCommand::Request {
            name,
            owning_service,
            base_url,
            health_path,
            contract_path,
            contract,
            version,
        } => {
            let body = NewCapability {
                name,
                owning_service,
                base_url,
                health_path,
                contract_path,
                contract: read_contract(&contract)?,
                version,
            };
            c.send(c.post(&["capabilities"], &body)).await?
        }
        CapabilitiesCommand::Transition {
            name,
            to,
            note,
            if_match,
        } => {
            let req = c.post(
                &["capabilities", &name, "transition"],
                &CapabilityTransition { to, note },
            );
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        CapabilitiesCommand::SetCredential {
            name,
            file,
            if_match,
        } => {
            let credential = read_credential(&file)?;
            // Serialized straight from the wiped buffer, not through a `serde_json::Value` copy.
            #[derive(serde::Serialize)]
            struct Body<'a> {
                credential: &'a str,
            }
            let body = Zeroizing::new(serde_json::to_vec(&Body {
                credential: credential.as_str(),
            })?);
            let req = c
                .request(Method::PUT, &["capabilities", &name, "credential"])
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            c.send(with_if_match(req, if_match.if_match.as_deref()))
                .await?
        }
        CapabilitiesCommand::Probes { name, limit } => {
            let mut req = c.get(&["capabilities", &name, "probes"]);
            if let Some(n) = limit {
                req = req.query(&[("limit", n)]);
            }
            let reply = c.send(req).await?;
            if ctx.out.is_json() {
                return output::print_json(&reply.body);
            }
            let probes: Vec<Probe> = serde_json::from_value(reply.body)
                .context("the hub's probes do not have the expected shape")?;
            return output::print_line(&probe_table(&probes).to_string());
        }
        CapabilitiesCommand::Callable => {
            let reply = c.send(c.get(&["capabilities", "callable"])).await?;
            if ctx.out.is_json() {
                return output::print_json(&reply.body);
            }
            let callable: CallableList = serde_json::from_value(reply.body)
                .context("the hub's callable list does not have the expected shape")?;
            let table = list(
                [
                    "name",
                    "base url",
                    "health path",
                    "credential",
                    "contract sha256",
                ],
                callable.items.iter().map(|c| {
                    [
                        c.name.clone(),
                        c.base_url.clone(),
                        c.health_path.clone(),
                        // A table is for people reading a terminal: the value stays off screen.
                        c.credential.as_ref().map_or("-".to_owned(), |_| {
                            "(set; --output json shows it)".to_owned()
                        }),
                        c.contract_sha256.clone(),
                    ]
                }),
            );
            return output::print_line(&table.to_string());
        }
    };
    ctx.out.show(reply.body, capability_record)
}

/// Reads the contract document from a file or stdin.
fn read_contract(input: &Path) -> anyhow::Result<Value> {
    let text = if input == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut s)
            .context("cannot read the contract from stdin")?;
        s
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read the contract {}", input.display()))?
    };
    serde_json::from_str(&text)
        .with_context(|| format!("the contract {} is not JSON", input.display()))
}

/// Reads a credential from a file or stdin into memory that is wiped when dropped.
fn read_credential(input: &Path) -> anyhow::Result<Zeroizing<String>> {
    let stdin = input == Path::new("-");
    if stdin && std::io::stdin().is_terminal() {
        note("Reading the credential from the terminal; finish with Ctrl-D.");
    }
    let mut bytes = Zeroizing::new(Vec::new());
    let read = if stdin {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(input).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.with_context(|| {
        if stdin {
            "cannot read the credential from stdin".to_owned()
        } else {
            format!("cannot read the credential from {}", input.display())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("the credential is empty: give it on stdin or with --file FILE");
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            bail!("the credential is not UTF-8 text (a binary age file? use `age -a` for armor)")
        }
    }
}

fn capability_table(caps: &[Capability]) -> comfy_table::Table {
    list(
        [
            "name",
            "status",
            "health",
            "owning service",
            "version",
            "last probe",
        ],
        caps.iter().map(|c| {
            [
                c.name.clone(),
                status_name(c.status),
                health_name(c.health),
                c.owning_service.clone(),
                c.version.clone(),
                opt_time(c.last_probe_at.as_ref()),
            ]
        }),
    )
}

fn capability_record(c: &Capability) -> comfy_table::Table {
    record([
        ("name", c.name.clone()),
        ("status", status_name(c.status)),
        ("health", health_name(c.health)),
        ("owning service", c.owning_service.clone()),
        ("base url", c.base_url.clone()),
        ("health path", c.health_path.clone()),
        ("contract path", c.contract_path.clone()),
        ("contract sha256", c.contract_sha256.clone()),
        ("version", c.version.clone()),
        (
            "requested by",
            format!("{} at {}", c.requested_by, time(&c.created_at)),
        ),
        (
            "credential",
            c.credential_key_id
                .as_ref()
                .map_or("-".to_owned(), |k| format!("sealed to key {k}")),
        ),
        ("last probe", opt_time(c.last_probe_at.as_ref())),
        ("last error", opt(c.last_error.as_ref())),
        ("etag", hub_core::http::etag::etag(c.revision)),
    ])
}

fn probe_table(probes: &[Probe]) -> comfy_table::Table {
    list(
        [
            "at",
            "health",
            "http",
            "latency ms",
            "contract sha256",
            "error",
        ],
        probes.iter().map(|p| {
            [
                time(&p.at),
                health_name(p.health),
                opt(p.status),
                opt(p.latency_ms),
                opt(p.contract_sha256.as_ref()),
                opt(p.error.as_ref()),
            ]
        }),
    )
}

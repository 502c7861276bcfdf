//! Command-line arguments. The API token is deliberately not an argument: it would end up in
//! shell history and `ps` output. It comes from `--token-file` or the `HUBCTL_TOKEN` variable.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use hub_core::api::decisions::DecisionStatus;
use hub_core::api::events::EventType;
use hub_core::api::plans::{TaskStatus, WorkplanStatus};
use hub_core::auth::{PrincipalKind, Role, Scope, Subject};
use std::path::PathBuf;
use uuid::Uuid;

const GLOBAL: &str = "Global options";

/// Operator and automation CLI for the Hubplane state hub.
#[derive(Parser, Debug)]
#[command(
    name = "hubctl",
    version,
    about,
    propagate_version = true,
    after_help = "The API token is read from --token-file (or HUBCTL_TOKEN_FILE), else from the \
                  HUBCTL_TOKEN variable; it is never a command-line argument.\n\
                  Exit codes: 0 success, 1 failed (the hub's problem is printed), 2 usage error, \
                  3 `audit verify` found a broken hash chain."
)]
pub struct Cli {
    /// Base URL of the state hub.
    #[arg(
        long,
        env = "HUBCTL_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = GLOBAL
    )]
    pub url: reqwest::Url,
    /// File holding the API token (wins over the HUBCTL_TOKEN variable).
    #[arg(long, env = "HUBCTL_TOKEN_FILE", value_name = "PATH", global = true, help_heading = GLOBAL)]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table, global = true, help_heading = GLOBAL)]
    pub output: OutputFormat,
    /// Extra root CA certificate (PEM) trusted for https.
    #[arg(long, value_name = "PEM", global = true, help_heading = GLOBAL)]
    pub ca_file: Option<PathBuf>,
    /// Request time-out in seconds (a followed stream only times out when it falls silent).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true, help_heading = GLOBAL)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// The API's JSON, pretty-printed (one object per line for `events tail`).
    Json,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The progress journal.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Decisions: propose, escalate, resolve, supersede.
    #[command(subcommand)]
    Decisions(DecisionsCommand),
    /// Workstreams.
    #[command(subcommand)]
    Workstreams(WorkstreamsCommand),
    /// Workplans within workstreams.
    #[command(subcommand)]
    Workplans(WorkplansCommand),
    /// Tasks within workplans.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// API tokens on the hub.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Offline token helpers.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show who the hub thinks you are.
    Whoami,
    /// Audit the journal.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Registered hubs and hub kinds.
    #[command(subcommand)]
    Hubs(HubsCommand),
    /// Hub manifests: submit, validate (offline), show, activate, retire.
    #[command(subcommand)]
    Manifests(ManifestsCommand),
    /// The capability registry: request, review, credentials, probes, what a hub may call.
    #[command(subcommand)]
    Capabilities(crate::commands::capabilities::CapabilitiesCommand),
    /// Age-encrypted credentials: keygen, encrypt, decrypt, rotate (offline, or `--hub`).
    #[command(subcommand)]
    Secret(crate::commands::secret::SecretCommand),
    /// Print shell completions.
    Completions {
        /// Shell to generate completions for.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// Shells `completions` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

fn event_type(s: &str) -> Result<EventType, String> {
    EventType::parse(s)
}

fn subject(s: &str) -> Result<Subject, String> {
    Subject::parse(s)
}

fn scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s)
}

fn role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("`{s}` is not a role (admin, member, viewer)"))
}

fn principal_kind(s: &str) -> Result<PrincipalKind, String> {
    PrincipalKind::parse(s).ok_or_else(|| format!("`{s}` is not a kind (human, service)"))
}

fn task_status(s: &str) -> Result<TaskStatus, String> {
    TaskStatus::parse(s).ok_or_else(|| {
        format!("`{s}` is not a task status (wait|blocked, todo, progress|in_progress, done, cancel|cancelled)")
    })
}

fn workplan_status(s: &str) -> Result<WorkplanStatus, String> {
    WorkplanStatus::parse(s)
        .ok_or_else(|| format!("`{s}` is not a workplan status (active, finished, accepted)"))
}

fn decision_status(s: &str) -> Result<DecisionStatus, String> {
    DecisionStatus::parse(s).ok_or_else(|| {
        format!("`{s}` is not a decision status (open, escalated, resolved, superseded)")
    })
}

fn page_limit(s: &str) -> Result<i64, String> {
    let max = hub_core::api::page::MAX_LIMIT;
    s.parse::<i64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("must be a number from 1 to {max}"))
}

/// An event named by sequence number or id.
#[derive(Debug, Clone)]
pub enum EventKey {
    /// Position in the journal.
    Seq(i64),
    /// Event id.
    Id(Uuid),
}

impl std::fmt::Display for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventKey::Seq(n) => write!(f, "{n}"),
            EventKey::Id(id) => write!(f, "{id}"),
        }
    }
}

fn event_key(s: &str) -> Result<EventKey, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(EventKey::Seq(n));
    }
    Uuid::parse_str(s)
        .map(EventKey::Id)
        .map_err(|_| format!("`{s}` is neither a sequence number nor an event id"))
}

/// `If-Match` for mutations: optimistic concurrency, only when asked for.
#[derive(Args, Debug, Clone, Default)]
pub struct IfMatch {
    /// Only apply if the resource still has this ETag (e.g. `"3"` or just 3).
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
}

/// Links of an event to plans and decisions.
#[derive(Args, Debug, Clone, Default)]
pub struct EventLinks {
    /// Related workstream id.
    #[arg(long, value_name = "ID")]
    pub workstream: Option<Uuid>,
    /// Related workplan id.
    #[arg(long, value_name = "ID")]
    pub workplan: Option<Uuid>,
    /// Related task id.
    #[arg(long, value_name = "ID")]
    pub task: Option<Uuid>,
    /// Related decision id.
    #[arg(long, value_name = "ID")]
    pub decision: Option<Uuid>,
}

/// `hubctl events …`.
#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Append one event.
    Post {
        /// Event type, `<noun>.<verb>`.
        #[arg(long = "type", value_name = "TYPE", value_parser = event_type)]
        event_type: EventType,
        /// One-line summary.
        #[arg(long)]
        summary: String,
        /// Detail as a JSON object, or `@file.json` to read it from a file.
        #[arg(long, value_name = "JSON|@FILE")]
        detail: Option<String>,
        #[command(flatten)]
        links: EventLinks,
        /// Retry key: the same key and body return the original event.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Append events from a file, all or nothing.
    Batch {
        /// JSON file: `{"events": [...]}` or a bare array of events.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Retry key for the whole batch.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// List events, newest first unless --asc.
    List {
        /// Exact event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Events whose type starts with `<noun>.`.
        #[arg(long)]
        noun: Option<String>,
        /// Author.
        #[arg(long)]
        author: Option<String>,
        #[command(flatten)]
        links: EventLinks,
        /// Created at or after (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        since: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Created before (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        until: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Page size (1–500).
        #[arg(long, value_parser = page_limit)]
        limit: Option<i64>,
        /// Cursor from a previous page.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Oldest first.
        #[arg(long)]
        asc: bool,
        /// Follow `next` cursors to the end.
        #[arg(long)]
        all: bool,
    },
    /// Show one event.
    Get {
        /// Sequence number or event id.
        #[arg(value_name = "SEQ_OR_ID", value_parser = event_key)]
        key: EventKey,
    },
    /// Follow new events live (Server-Sent Events, or NATS JetStream with --from-nats),
    /// reconnecting after a dropped connection.
    Tail {
        /// Start after this sequence number (default: only new events).
        #[arg(long, value_name = "N")]
        from_seq: Option<i64>,
        /// Only this event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only events of this noun.
        #[arg(long)]
        noun: Option<String>,
        #[command(flatten)]
        nats: NatsTail,
    },
}

/// `events tail --from-nats`: follow the journal's JetStream fan-out instead of the hub.
#[derive(Args, Debug)]
pub struct NatsTail {
    /// Read from NATS JetStream at this URL (nats:// or tls://) with an ephemeral ordered
    /// consumer, instead of the hub's event stream; needs no hub token.
    #[arg(long, value_name = "URL")]
    pub from_nats: Option<String>,
    /// With --from-nats: the subjects to follow.
    #[arg(long, value_name = "SUBJECT", default_value = "org.statehub.>")]
    pub subject: String,
    /// With --from-nats: the stream (default: the one that captures --subject).
    #[arg(long, value_name = "NAME", requires = "from_nats")]
    pub stream: Option<String>,
    /// With --from-nats: a NATS .creds file (user JWT and NKey seed). A tls:// server with a
    /// private CA is trusted through the global --ca-file.
    #[arg(long, value_name = "FILE", requires = "from_nats")]
    pub creds: Option<PathBuf>,
}

/// `hubctl decisions …`.
#[derive(Subcommand, Debug)]
pub enum DecisionsCommand {
    /// List decisions, newest first.
    List {
        /// Only this status.
        #[arg(long, value_parser = decision_status)]
        status: Option<DecisionStatus>,
        /// Page size (1–500).
        #[arg(long, value_parser = page_limit)]
        limit: Option<i64>,
        /// Cursor from a previous page.
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Follow `next` cursors to the end.
        #[arg(long)]
        all: bool,
    },
    /// Show one decision.
    Show {
        /// Decision id.
        id: Uuid,
    },
    /// Propose a decision, or record one already made with --made.
    Propose {
        #[command(flatten)]
        proposal: Proposal,
        /// Record the decision as already made (needs --choice and --rationale).
        #[arg(long, requires_all = ["choice", "rationale"])]
        made: bool,
        /// The option chosen.
        #[arg(long, requires = "made")]
        choice: Option<String>,
        /// Why.
        #[arg(long, requires = "made")]
        rationale: Option<String>,
    },
    /// Escalate: the decision then needs a person other than its proposer to resolve it.
    Escalate {
        /// Decision id.
        id: Uuid,
        /// Why it needs approval.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Record the outcome (for an escalated decision: the approval).
    Resolve {
        /// Decision id.
        id: Uuid,
        /// The option chosen.
        #[arg(long)]
        choice: String,
        /// Why.
        #[arg(long)]
        rationale: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Replace a decision with a new proposal.
    Supersede {
        /// Decision id.
        id: Uuid,
        /// Why the old decision no longer holds.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        proposal: Proposal,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Link a task to a decision.
    Link {
        /// Decision id.
        id: Uuid,
        /// Task id.
        #[arg(long, value_name = "TASK_ID")]
        task: Uuid,
    },
    /// Propose the decisions of a seed file (docs/decisions/open-decisions.json) the hub does not
    /// have yet: one titled `<id>: …` counts as had, so running it again proposes nothing twice.
    Import {
        /// The seed file (JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Only show what would be proposed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The fields of a new decision.
#[derive(Args, Debug, Clone)]
pub struct Proposal {
    /// One-line title.
    #[arg(long)]
    pub title: String,
    /// Background.
    #[arg(long, default_value = "")]
    pub context: String,
    /// An option considered (repeat for several).
    #[arg(long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    /// A task this decision concerns (repeat for several).
    #[arg(long = "task", value_name = "TASK_ID")]
    pub tasks: Vec<Uuid>,
}

/// `hubctl workstreams …`.
#[derive(Subcommand, Debug)]
pub enum WorkstreamsCommand {
    /// List workstreams.
    List,
    /// Show one workstream.
    Show {
        /// Id or slug.
        key: String,
    },
    /// Create a workstream.
    Create {
        /// Short unique name (lowercase letters, digits, `-`).
        #[arg(long)]
        slug: String,
        /// One-line title.
        #[arg(long)]
        title: String,
        /// Longer text.
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// `hubctl workplans …`.
#[derive(Subcommand, Debug)]
pub enum WorkplansCommand {
    /// List workplans, newest first.
    List {
        /// Only this workstream (id or slug).
        #[arg(long, value_name = "ID_OR_SLUG")]
        workstream: Option<String>,
        /// Only this status.
        #[arg(long, value_parser = workplan_status)]
        status: Option<WorkplanStatus>,
    },
    /// Show one workplan.
    Show {
        /// Workplan id.
        id: Uuid,
    },
    /// Create a workplan in a workstream.
    Create {
        /// Workstream id or slug.
        #[arg(long, value_name = "ID_OR_SLUG")]
        workstream: String,
        /// One-line title.
        #[arg(long)]
        title: String,
        /// Longer text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Mark a workplan finished (all its tasks done or cancelled).
    Finish {
        /// Workplan id.
        id: Uuid,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Accept a finished workplan (a review by someone else).
    Accept {
        /// Workplan id.
        id: Uuid,
        /// Review comment.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Send a finished workplan back to work.
    Reopen {
        /// Workplan id.
        id: Uuid,
        /// What is missing.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
}

/// `hubctl tasks …`.
#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// List tasks.
    List {
        /// Only this workplan.
        #[arg(long, value_name = "ID")]
        workplan: Option<Uuid>,
        /// Only this status (aliases accepted).
        #[arg(long, value_parser = task_status)]
        status: Option<TaskStatus>,
        /// Only this assignee.
        #[arg(long)]
        assignee: Option<String>,
        /// Only tasks that need a person.
        #[arg(long)]
        needs_human: bool,
        /// Only tasks blocked by escalated decisions.
        #[arg(long)]
        blocked: bool,
    },
    /// Show one task.
    Show {
        /// Task id.
        id: Uuid,
    },
    /// Create a task in an active workplan.
    Create {
        /// Workplan id.
        #[arg(long, value_name = "ID")]
        workplan: Uuid,
        /// One-line title.
        #[arg(long)]
        title: String,
        /// Longer text.
        #[arg(long, default_value = "")]
        description: String,
        /// Directory user responsible.
        #[arg(long, value_parser = subject)]
        assignee: Option<Subject>,
        /// Initial status (default todo; aliases accepted).
        #[arg(long, value_parser = task_status)]
        status: Option<TaskStatus>,
        /// Why it waits (required with status wait).
        #[arg(long)]
        blocking_reason: Option<String>,
        /// A person must act.
        #[arg(long)]
        needs_human: bool,
    },
    /// Change a task.
    #[command(group(
        ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args(["title", "description", "status", "assignee", "unassign", "needs_human", "blocking_reason", "clear_blocking_reason"])
    ))]
    Update {
        /// Task id.
        id: Uuid,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New status (aliases accepted: in_progress, blocked, cancelled).
        #[arg(long, value_parser = task_status)]
        status: Option<TaskStatus>,
        /// New assignee.
        #[arg(long, value_parser = subject, conflicts_with = "unassign")]
        assignee: Option<Subject>,
        /// Remove the assignee.
        #[arg(long)]
        unassign: bool,
        /// Whether a person must act.
        #[arg(long, value_name = "true|false")]
        needs_human: Option<bool>,
        /// New blocking reason.
        #[arg(long, conflicts_with = "clear_blocking_reason")]
        blocking_reason: Option<String>,
        /// Remove the blocking reason.
        #[arg(long)]
        clear_blocking_reason: bool,
        #[command(flatten)]
        if_match: IfMatch,
    },
}

/// `hubctl tokens …`.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List tokens (never their secrets).
    List {
        /// Include revoked tokens.
        #[arg(long)]
        include_revoked: bool,
    },
    /// Create a token; its secret is printed once.
    Create {
        /// Label, e.g. `dev-hub relay`.
        #[arg(long)]
        name: String,
        /// Principal the token authenticates as.
        #[arg(long, value_parser = subject)]
        subject: Subject,
        /// Person or machine.
        #[arg(long, value_parser = principal_kind, default_value = "service")]
        kind: PrincipalKind,
        /// Role (repeat for several): admin, member, viewer.
        #[arg(long = "role", value_name = "ROLE", value_parser = role, required = true)]
        roles: Vec<Role>,
        /// Manifest scope `<hub>:<action>` (repeat for several).
        #[arg(long = "scope", value_name = "SCOPE", value_parser = scope)]
        scopes: Vec<Scope>,
        /// Lifetime in days (1–3650); no expiry when absent.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token; it fails from its next request on.
    Revoke {
        /// Token id.
        id: Uuid,
    },
}

/// `hubctl token …` (offline).
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a fresh random token (`hpt_…`) for a bootstrap file.
    Generate,
}

/// `hubctl hubs …`.
#[derive(Subcommand, Debug)]
pub enum HubsCommand {
    /// List hubs with their health (judged from heartbeats) and active manifest.
    List,
    /// Show one hub.
    Show {
        /// Hub instance name, e.g. `ops-hub`.
        name: String,
    },
    /// Hub kinds: a hub registers only with a kind an admin added.
    #[command(subcommand)]
    Kinds(KindsCommand),
}

/// `hubctl hubs kinds …`.
#[derive(Subcommand, Debug)]
pub enum KindsCommand {
    /// List hub kinds.
    List,
    /// Add a hub kind (admins).
    Add {
        /// Kind name, lowercase, e.g. `ops`.
        name: String,
        /// What hubs of this kind do.
        #[arg(long, default_value = "")]
        description: String,
    },
}

/// `hubctl manifests …`.
#[derive(Subcommand, Debug)]
pub enum ManifestsCommand {
    /// List a hub's manifests, newest first.
    List {
        /// Hub instance name.
        hub: String,
    },
    /// Show one manifest: what it declares and uses.
    Show {
        /// Manifest id.
        id: Uuid,
    },
    /// Submit a manifest file (JSON) as a draft for the hub it names.
    Submit {
        /// The manifest, JSON.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check a manifest file (JSON) offline with the hub's validator; exit 1 listing every problem.
    Validate {
        /// The manifest, JSON.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Activate a draft (admins): it replaces the hub's active manifest.
    Activate {
        /// Manifest id.
        id: Uuid,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Retire a draft or the active manifest (admins).
    Retire {
        /// Manifest id.
        id: Uuid,
        #[command(flatten)]
        if_match: IfMatch,
    },
}

/// `hubctl audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the whole journal and check its hash chain against the hub's head.
    Verify,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn task_update_needs_a_change_and_accepts_aliases() {
        let id = Uuid::nil().to_string();
        assert!(Cli::try_parse_from(["hubctl", "tasks", "update", &id]).is_err());
        let cli =
            Cli::try_parse_from(["hubctl", "tasks", "update", &id, "--status", "in_progress"])
                .map_err(|e| e.to_string());
        match cli.map(|c| c.command) {
            Ok(Command::Tasks(TasksCommand::Update { status, .. })) => {
                assert_eq!(status, Some(TaskStatus::Progress))
            }
            other => unreachable!("unexpected parse: {other:?}"),
        }
        assert!(Cli::try_parse_from([
            "hubctl",
            "tasks",
            "update",
            &id,
            "--assignee",
            "bob",
            "--unassign"
        ])
        .is_err());
    }

    #[test]
    fn made_decisions_need_choice_and_rationale() {
        assert!(
            Cli::try_parse_from(["hubctl", "decisions", "propose", "--title", "t", "--made"])
                .is_err()
        );
        assert!(Cli::try_parse_from([
            "hubctl",
            "decisions",
            "propose",
            "--title",
            "t",
            "--choice",
            "a"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "hubctl",
            "decisions",
            "propose",
            "--title",
            "t",
            "--made",
            "--choice",
            "a",
            "--rationale",
            "r"
        ])
        .is_ok());
    }

    #[test]
    fn event_keys_are_seqs_or_ids() {
        assert!(matches!(event_key("42"), Ok(EventKey::Seq(42))));
        assert!(matches!(
            event_key(&Uuid::nil().to_string()),
            Ok(EventKey::Id(_))
        ));
        assert!(event_key("../tokens").is_err());
    }
}

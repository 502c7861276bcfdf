//! The journal: an append-only, hash-chained log of progress events.
//!
//! All writes go through one writer task per process ([`writer`]). It takes whatever requests are
//! waiting, commits them in one transaction under the journal's advisory lock, and acknowledges
//! each only after that commit, so the chain orders every writer without capping throughput at
//! one commit per disk flush. Domain changes (decisions, plans, tokens) run inside the same
//! transaction as the events they write, each in its own savepoint.

pub mod draft;
pub mod listener;
pub mod recent;
pub mod store;
pub mod writer;

pub use draft::Draft;
pub use writer::{AppendRequest, Appended, Ctx, Idempotency, Journal, JournalHandle};

/// Advisory lock key of the journal writer ("hubjrnl" as bytes).
pub const WRITER_LOCK: i64 = 0x0068_7562_6a72_6e6c;
/// Advisory lock key of migrations.
pub const MIGRATION_LOCK: i64 = 0x0068_7562_6d69_6772;
/// NOTIFY channel carrying the newest committed sequence number.
pub const NOTIFY_CHANNEL: &str = "hubplane_journal";

//! The state hub's embedded SQL migrations (`migrations/state-hub/`).

mod embedded {
    refinery::embed_migrations!("../../migrations/state-hub");
}

/// A runner over every embedded migration.
pub fn runner() -> refinery::Runner {
    embedded::migrations::runner()
}

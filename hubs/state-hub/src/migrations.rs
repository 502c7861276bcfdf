//! The state hub's embedded SQL migrations (`migrations/state-hub/`).

mod embedded {
    refinery::embed_migrations!("../../migrations/state-hub");
}

/// A runner over every embedded migration.
pub fn runner() -> refinery::Runner {
    embedded::migrations::runner()
}

/// Every migration set the state hub applies, hub-core's first.
pub fn sets() -> Vec<hub_core::db::MigrationSet> {
    vec![
        hub_core::db::core_migrations(),
        hub_core::db::MigrationSet {
            table: "refinery_schema_history",
            runner: runner(),
        },
    ]
}

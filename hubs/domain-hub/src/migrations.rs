//! The domain hub's embedded SQL migrations (`migrations/domain-hub/`).

mod embedded {
    refinery::embed_migrations!("../../migrations/domain-hub");
}

/// Advisory lock key held while migrating, so replicas starting together migrate once.
pub const MIGRATION_LOCK: i64 = 0x646f_6d61_696e_0001;

/// A runner over every embedded migration.
pub fn runner() -> refinery::Runner {
    embedded::migrations::runner()
}

/// Every migration set the domain hub applies, hub-core's first.
pub fn sets() -> Vec<hub_core::db::MigrationSet> {
    vec![
        hub_core::db::core_migrations(),
        hub_core::db::MigrationSet {
            table: "refinery_schema_history",
            runner: runner(),
        },
    ]
}

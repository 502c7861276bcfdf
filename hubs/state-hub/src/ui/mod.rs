//! The state hub's web UI: server-rendered pages over the same stores the API uses.

mod dashboard;

pub use dashboard::dashboard;

use hub_core::web::{NavItem, Pages};

/// The state hub's templates, embedded so a deployed binary needs no files beside it.
const TEMPLATES: &[(&str, &str)] = &[(
    "dashboard.html",
    include_str!("../../templates/dashboard.html"),
)];

/// The page environment: hub-core's layout plus the state hub's templates.
pub fn pages() -> anyhow::Result<Pages> {
    let nav = vec![
        NavItem {
            label: "Dashboard",
            href: "/",
        },
        NavItem {
            label: "Decisions",
            href: "/decisions",
        },
        NavItem {
            label: "Plans",
            href: "/plans",
        },
        NavItem {
            label: "Journal",
            href: "/journal",
        },
        NavItem {
            label: "Admin",
            href: "/admin",
        },
    ];
    Pages::new("State hub", nav, TEMPLATES)
        .map_err(|e| anyhow::anyhow!("loading the state hub's templates: {e:?}"))
}

//! Who the people are: the OIDC relying party (Authelia), the LDAP directory (LLDAP), users
//! created just in time, group → role mapping, server-side sessions, CSRF and break-glass login.

pub mod admin;
pub mod authenticator;
pub mod config;
pub mod csrf;
pub mod directory;
pub mod flows;
pub mod ledger;
pub mod login;
pub mod oidc;
pub mod roles;
mod routes;
pub mod service;
pub mod sessions;
pub mod sync;
pub mod users;

pub use config::IdentityConfig;
pub use routes::{routes, PUBLIC_MUTATIONS};
pub use service::IdentityService;

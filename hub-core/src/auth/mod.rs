//! Who is calling and what they may do: permissions, roles, principals, API tokens, and the
//! middleware that enforces a route's [`Access`].

mod authorize;
mod permission;
mod principal;
pub mod tokens;

pub use authorize::{Authenticator, Authorize, DynAuthenticator, Surface};
pub use permission::{Access, Permission, Role, Scope};
pub use principal::{Principal, PrincipalKind, Subject};

//! Who the people are: the OIDC relying party (Authelia), the LDAP directory (LLDAP), users
//! created just in time, group → role mapping, server-side sessions, CSRF and break-glass login.

pub mod directory;
pub mod oidc;

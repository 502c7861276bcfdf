//! The identity rows every hub adds to its route table.

use super::{admin, login};
use crate::auth::{Access, Permission};
use crate::http::routes::Route;
use crate::{page, route};

/// Login pages, account page, the identity API and the static assets.
pub fn routes() -> Vec<Route> {
    use Permission::{DirectoryRead, SessionsManage};
    vec![
        page!(GET "/static/{name}", Access::Public, crate::web::static_asset),
        page!(GET "/auth/login", Access::Public, login::login),
        page!(GET "/auth/oidc/start", Access::Public, login::start),
        page!(GET "/auth/callback", Access::Public, login::callback),
        page!(GET "/auth/break-glass", Access::Public, login::break_glass_form),
        // Public but not unprotected: the form token is bound to the flow cookie it set.
        page!(POST "/auth/break-glass", Access::Public, login::break_glass),
        page!(POST "/auth/logout", Access::Authenticated, login::logout),
        page!(POST "/auth/logout-everywhere", Access::Authenticated, login::logout_everywhere),
        page!(GET "/account", Access::Authenticated, login::account),
        route!(GET "/api/v1/sessions", Access::Permission(SessionsManage), admin::list_sessions),
        route!(DELETE "/api/v1/sessions/{id}", Access::Permission(SessionsManage), admin::revoke_session),
        route!(GET "/api/v1/users", Access::Permission(SessionsManage), admin::list_users),
        route!(GET "/api/v1/role-mapping", Access::Permission(SessionsManage), admin::role_mapping),
        route!(GET "/api/v1/directory/users", Access::Permission(DirectoryRead), admin::search_users),
        route!(GET "/api/v1/directory/groups", Access::Permission(DirectoryRead), admin::list_groups),
    ]
}

/// Public routes that change state, each with its own protection (named in a comment above).
/// The route-table test refuses any other public mutation.
pub const PUBLIC_MUTATIONS: &[&str] = &["/auth/break-glass"];

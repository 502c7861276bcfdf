//! The identity API: sessions and users for admins, directory look-ups for pickers, the role
//! mapping in force.

use super::ledger::{record, AuditEvent};
use super::service::IdentityService;
use super::sessions::{self, SessionInfo};
use super::users::{self, UserRecord};
use crate::auth::Principal;
use crate::http::problem::ApiError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// Active sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub items: Vec<SessionInfo>,
}

/// People who have logged in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// By user name.
    pub items: Vec<UserRecord>,
}

/// Directory users matching a prefix.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryUserList {
    /// By user name.
    pub items: Vec<DirectoryUserView>,
}

/// Directory groups.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryGroupList {
    /// By name.
    pub items: Vec<DirectoryGroupView>,
}

/// The role mapping in force.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleMappingDoc {
    /// One row per role.
    pub items: Vec<RoleMappingRow>,
    /// The break-glass group, when break-glass login is on.
    pub break_glass_group: Option<String>,
}

/// The identity API's part of a hub's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_sessions, revoke_session, list_users, role_mapping, search_users, list_groups),
    components(schemas(
        SessionList, SessionInfo, super::sessions::LoginMethod, UserList, UserRecord,
        DirectoryUserList, DirectoryUserView, DirectoryGroupList, DirectoryGroupView,
        RoleMappingDoc, RoleMappingRow
    )),
    tags((name = "identity", description = "Sessions, users, the directory and the role mapping"))
)]
pub struct IdentityApiDoc;

/// Active sessions of everyone (admin).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "identity",
    responses((status = 200, body = SessionList)), security(("bearer" = [])))]
pub async fn list_sessions(id: web::Data<IdentityService>) -> Result<HttpResponse, ApiError> {
    let client = id.pool.get().await?;
    let items: Vec<SessionInfo> = sessions::list_active(&**client, None, 1000).await?;
    Ok(HttpResponse::Ok().json(SessionList { items }))
}

/// End someone's session (admin); it takes effect on their next request.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "identity",
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = crate::http::problem::Problem),
              (status = 409, body = crate::http::problem::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_session(
    id: web::Data<IdentityService>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path.into_inner();
    let actor = principal.subject.to_string();
    let revoked = record(&*id.ledger, &actor.clone(), move |client| {
        Box::pin(async move {
            let owner = client
                .query_opt(
                    "SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id
                      WHERE s.id = $1",
                    &[&session_id],
                )
                .await?
                .map(|r| r.get::<_, String>(0))
                .ok_or_else(|| ApiError::NotFound(format!("no session {session_id}")))?;
            if !sessions::revoke(client, session_id, &format!("revoked by {actor}")).await? {
                return Ok((false, Vec::new()));
            }
            Ok((
                true,
                vec![AuditEvent::new(
                    "session.revoked",
                    format!("{actor} ended a session of {owner}"),
                    json!({"session_id": session_id, "owner": owner}),
                )],
            ))
        })
    })
    .await?;
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::Conflict(format!(
            "session {session_id} had already ended"
        )))
    }
}

/// Everyone who has logged in (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "identity",
    responses((status = 200, body = UserList)), security(("bearer" = [])))]
pub async fn list_users(id: web::Data<IdentityService>) -> Result<HttpResponse, ApiError> {
    let client = id.pool.get().await?;
    let items: Vec<UserRecord> = users::list(&**client, 5000).await?;
    Ok(HttpResponse::Ok().json(UserList { items }))
}

/// One role mapping row.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleMappingRow {
    /// Role.
    pub role: String,
    /// Groups granting it.
    pub groups: Vec<String>,
}

/// Which groups grant which role (from the config file).
#[utoipa::path(get, path = "/api/v1/role-mapping", tag = "identity",
    responses((status = 200, body = RoleMappingDoc)), security(("bearer" = [])))]
pub async fn role_mapping(id: web::Data<IdentityService>) -> HttpResponse {
    let items: Vec<RoleMappingRow> = id
        .cfg
        .roles
        .rows()
        .iter()
        .map(|(r, g)| RoleMappingRow {
            role: r.as_str().to_owned(),
            groups: g.to_vec(),
        })
        .collect();
    HttpResponse::Ok().json(RoleMappingDoc {
        items,
        break_glass_group: id.cfg.break_glass.group.clone(),
    })
}

/// `?prefix=&limit=` for user look-ups.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Start of a user name, display name or email.
    #[serde(default)]
    pub prefix: String,
    /// At most this many (default 20, max 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A directory user as the pickers see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryUserView {
    /// User name.
    pub uid: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

fn directory(id: &IdentityService) -> Result<&super::directory::Directory, ApiError> {
    id.directory.as_deref().ok_or_else(|| {
        ApiError::Unavailable("no directory is configured on this hub ([identity.ldap])".into())
    })
}

fn unavailable(e: super::directory::DirectoryError) -> ApiError {
    tracing::warn!(error = %e, "directory look-up failed");
    ApiError::Unavailable(format!("the directory cannot answer: {e}"))
}

/// Directory users by prefix (assignee and approver pickers).
#[utoipa::path(get, path = "/api/v1/directory/users", tag = "identity", params(UserSearch),
    responses((status = 200, body = DirectoryUserList), (status = 503, body = crate::http::problem::Problem)),
    security(("bearer" = [])))]
pub async fn search_users(
    id: web::Data<IdentityService>,
    q: web::Query<UserSearch>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    if q.prefix.chars().count() > 64 {
        return Err(ApiError::field("prefix", "at most 64 characters"));
    }
    let found = directory(&id)?
        .search_users(q.prefix.trim(), limit)
        .await
        .map_err(unavailable)?;
    let items: Vec<DirectoryUserView> = found
        .into_iter()
        .map(|u| DirectoryUserView {
            uid: u.uid,
            display_name: u.display_name,
            email: u.email,
            groups: u.groups,
        })
        .collect();
    Ok(HttpResponse::Ok().json(DirectoryUserList { items }))
}

/// A directory group.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryGroupView {
    /// Group name.
    pub name: String,
    /// Member user names.
    pub members: Vec<String>,
}

/// Directory groups and their members.
#[utoipa::path(get, path = "/api/v1/directory/groups", tag = "identity",
    responses((status = 200, body = DirectoryGroupList), (status = 503, body = crate::http::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list_groups(id: web::Data<IdentityService>) -> Result<HttpResponse, ApiError> {
    let groups = directory(&id)?.list_groups().await.map_err(unavailable)?;
    let items: Vec<DirectoryGroupView> = groups
        .into_iter()
        .map(|g| DirectoryGroupView {
            name: g.name,
            members: g.members,
        })
        .collect();
    Ok(HttpResponse::Ok().json(DirectoryGroupList { items }))
}

//! People, created just in time at their first login and keyed on the identity provider's
//! (issuer, subject). Name, email and groups are refreshed at every login and by the sync.

use crate::auth::{Role, Scope, Subject};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Who logged in, as the provider (or the directory, for break-glass) vouched for them.
#[derive(Debug, Clone)]
pub struct LoginIdentity {
    /// OIDC issuer, or `ldap:<base dn>` for break-glass accounts.
    pub issuer: String,
    /// The provider's stable subject (an opaque UUID at Authelia; entryUUID in LDAP).
    pub subject: String,
    /// The user name the hub shows and records as author.
    pub username: Subject,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Directory groups.
    pub groups: Vec<String>,
}

/// A stored person.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserRecord {
    /// Row id.
    pub id: Uuid,
    /// Identity provider.
    pub issuer: String,
    /// Subject at that provider.
    pub subject: String,
    /// User name.
    pub username: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Groups at the last login or sync.
    pub groups: Vec<String>,
    /// Roles those groups grant.
    #[schema(value_type = Vec<String>)]
    pub roles: BTreeSet<Role>,
    /// Policy scopes those groups grant.
    #[schema(value_type = Vec<String>)]
    pub scopes: BTreeSet<Scope>,
    /// First login.
    pub created_at: DateTime<Utc>,
    /// Latest login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Latest directory sync.
    pub groups_synced_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, issuer, subject, username, display_name, email, groups, roles, \
                       created_at, last_login_at, groups_synced_at, scopes";

fn from_row(r: &tokio_postgres::Row) -> UserRecord {
    let roles: Vec<String> = r.get(7);
    UserRecord {
        id: r.get(0),
        issuer: r.get(1),
        subject: r.get(2),
        username: r.get(3),
        display_name: r.get(4),
        email: r.get(5),
        groups: r.get(6),
        roles: roles.iter().filter_map(|s| Role::parse(s)).collect(),
        created_at: r.get(8),
        last_login_at: r.get(9),
        groups_synced_at: r.get(10),
        scopes: r
            .get::<_, Vec<String>>(11)
            .iter()
            .filter_map(|s| Scope::parse(s).ok())
            .collect(),
    }
}

fn role_names(roles: &BTreeSet<Role>) -> Vec<&'static str> {
    roles.iter().map(|r| r.as_str()).collect()
}

fn scope_names(scopes: &BTreeSet<Scope>) -> Vec<&str> {
    scopes.iter().map(|s| s.as_str()).collect()
}

/// Trims a provider-supplied text to what the schema allows; providers are not trusted to.
fn clip(s: &Option<String>, max: usize) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim().chars().take(max).collect::<String>())
        .filter(|v| !v.is_empty())
}

/// The outcome of recording a login.
pub struct LoginRecorded {
    /// The user as stored now.
    pub user: UserRecord,
    /// First login.
    pub created: bool,
    /// Roles before this login (empty when created).
    pub previous_roles: BTreeSet<Role>,
}

/// Creates the user at first login, or refreshes name, email, groups and roles.
pub async fn record_login(
    client: &impl GenericClient,
    who: &LoginIdentity,
    roles: &BTreeSet<Role>,
    scopes: &BTreeSet<Scope>,
) -> Result<LoginRecorded, tokio_postgres::Error> {
    let before = client
        .query_opt(
            "SELECT roles FROM users WHERE issuer = $1 AND subject = $2 FOR UPDATE",
            &[&who.issuer, &who.subject],
        )
        .await?;
    let previous_roles: BTreeSet<Role> = before
        .as_ref()
        .map(|r| {
            r.get::<_, Vec<String>>(0)
                .iter()
                .filter_map(|s| Role::parse(s))
                .collect()
        })
        .unwrap_or_default();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO users (id, issuer, subject, username, display_name, email, groups,
                                    roles, scopes, last_login_at, groups_synced_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now())
                 ON CONFLICT (issuer, subject) DO UPDATE
                    SET username = EXCLUDED.username, display_name = EXCLUDED.display_name,
                        email = EXCLUDED.email, groups = EXCLUDED.groups, roles = EXCLUDED.roles,
                        scopes = EXCLUDED.scopes, last_login_at = now(), groups_synced_at = now()
                 RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &who.issuer,
                &who.subject,
                &who.username.as_str(),
                &clip(&who.display_name, 200),
                &clip(&who.email, 320),
                &who.groups,
                &role_names(roles),
                &scope_names(scopes),
            ],
        )
        .await?;
    Ok(LoginRecorded {
        user: from_row(&row),
        created: before.is_none(),
        previous_roles,
    })
}

/// One user by id.
pub async fn get(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Every user, by name.
pub async fn list(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<UserRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM users ORDER BY username, created_at LIMIT $1"),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Records groups and roles found by the directory sync.
pub async fn set_groups(
    client: &impl GenericClient,
    id: Uuid,
    groups: &[String],
    roles: &BTreeSet<Role>,
    scopes: &BTreeSet<Scope>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE users SET groups = $2, roles = $3, scopes = $4, groups_synced_at = now()
              WHERE id = $1",
            &[&id, &groups, &role_names(roles), &scope_names(scopes)],
        )
        .await?;
    Ok(())
}

/// Users with an active session: the ones the directory sync must re-check.
pub async fn with_active_sessions(
    client: &impl GenericClient,
) -> Result<Vec<UserRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM users u WHERE EXISTS (
                    SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                       AND s.absolute_expires_at > now() AND s.idle_expires_at > now())
                 ORDER BY username"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

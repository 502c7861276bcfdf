//! The directory group sync: every few minutes, re-reads the groups of everyone with an active
//! session. Someone who lost a role (removed from a group, or from the directory) loses it now
//! and their sessions end, so a removal in LLDAP is not waiting for a session time-out.
//!
//! Replicas share the work through an advisory lock: one sync runs at a time across them.

use super::ledger::{record, AuditEvent};
use super::login::roles_changed;
use super::service::IdentityService;
use super::{sessions, users};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Advisory lock key of the sync (distinct from the migration lock).
const SYNC_LOCK: i64 = 0x4855_4253_594e_4331; // "HUBSYNC1"

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// People checked.
    pub checked: usize,
    /// People whose roles changed.
    pub changed: usize,
    /// Sessions ended because roles were lost.
    pub sessions_revoked: u64,
    /// Skipped because another replica held the lock.
    pub skipped: bool,
}

/// Runs the sync every `group_sync_minutes` until `stop` turns true.
pub async fn run(id: Arc<IdentityService>, mut stop: watch::Receiver<bool>) {
    if id.directory.is_none() {
        return;
    }
    let every = Duration::from_secs(u64::from(id.cfg.group_sync_minutes) * 60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match sync_once(&id).await {
            Ok(r) if r.changed > 0 => tracing::info!(?r, "directory sync changed roles"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "directory sync failed; will retry"),
        }
    }
}

/// One pass. The directory being down changes nothing: roles stay until it answers again.
pub async fn sync_once(id: &IdentityService) -> anyhow::Result<SyncReport> {
    let Some(directory) = id.directory.clone() else {
        return Ok(SyncReport::default());
    };
    let lock = id.pool.get().await?;
    let got: bool = lock
        .query_one("SELECT pg_try_advisory_lock($1)", &[&SYNC_LOCK])
        .await?
        .get(0);
    if !got {
        return Ok(SyncReport {
            skipped: true,
            ..SyncReport::default()
        });
    }
    let result = sync_locked(id, &directory).await;
    let _ = lock
        .execute("SELECT pg_advisory_unlock($1)", &[&SYNC_LOCK])
        .await;
    result
}

async fn sync_locked(
    id: &IdentityService,
    directory: &super::directory::Directory,
) -> anyhow::Result<SyncReport> {
    // A misconfigured users_ou makes LLDAP answer every search with an empty success, which
    // would read as "everyone left"; ping fails on a missing OU, so check it first.
    directory
        .ping()
        .await
        .map_err(|e| anyhow::anyhow!("directory unavailable: {e}"))?;
    let people = {
        let client = id.pool.get().await?;
        users::with_active_sessions(&**client).await?
    };
    let mut found = Vec::with_capacity(people.len());
    for user in &people {
        match directory.find_user(&user.username).await {
            Ok(u) => found.push(u.map(|u| u.groups)),
            Err(e) => anyhow::bail!("directory unavailable: {e}"),
        }
    }
    if people.len() > 1 && found.iter().all(Option::is_none) {
        anyhow::bail!(
            "the directory knows none of the {} people with sessions; refusing to revoke              everyone (check identity.ldap.base_dn and users_ou)",
            people.len()
        );
    }
    let mut report = SyncReport::default();
    for (user, groups) in people.into_iter().zip(found) {
        report.checked += 1;
        // Gone from the directory: no groups, no roles.
        let groups = groups.unwrap_or_default();
        let roles = id.cfg.roles.roles_for(&groups);
        let scopes = id.cfg.scopes_for(&groups);
        let lost = user.roles.iter().any(|r| !roles.contains(r))
            || user.scopes.iter().any(|s| !scopes.contains(s));
        if roles == user.roles && groups == user.groups && scopes == user.scopes {
            continue;
        }
        let (user_id, username, before) = (user.id, user.username.clone(), user.roles.clone());
        let after = roles.clone();
        let n = record(&*id.ledger, "hub:directory-sync", move |client| {
            Box::pin(async move {
                users::set_groups(client, user_id, &groups, &after, &scopes).await?;
                let mut events = Vec::new();
                let mut n = 0;
                if before != after {
                    events.push(roles_changed(user_id, &username, &before, &after));
                }
                if lost {
                    n = sessions::revoke_all_for_user(
                        client,
                        user_id,
                        "roles lost in the directory",
                    )
                    .await?;
                    events.push(AuditEvent::new(
                        "session.revoked_all",
                        format!(
                            "sessions of {username} ended: a role was removed in the directory"
                        ),
                        json!({"user_id": user_id, "sessions": n, "groups": groups}),
                    ));
                }
                Ok((n, events))
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("recording the sync of {}: {e}", user.username))?;
        if user.roles != roles {
            report.changed += 1;
        }
        report.sessions_revoked += n;
    }
    Ok(report)
}

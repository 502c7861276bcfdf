//! Directory groups → hub roles, as configured. Nothing in a token or a claim grants a role
//! by itself: only membership of a group this table names.

use crate::auth::Role;
use crate::config::Problems;
use serde::Deserialize;
use std::collections::BTreeSet;

/// `[identity.roles]`: the groups that grant each role.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// Groups whose members are admins.
    #[serde(default = "default_admin")]
    pub admin: Vec<String>,
    /// Groups whose members are members (propose, plan, write events).
    #[serde(default = "default_member")]
    pub member: Vec<String>,
    /// Groups whose members may only read.
    #[serde(default = "default_viewer")]
    pub viewer: Vec<String>,
}

fn default_admin() -> Vec<String> {
    vec!["hub_admins".to_owned()]
}
fn default_member() -> Vec<String> {
    vec!["hub_members".to_owned()]
}
fn default_viewer() -> Vec<String> {
    vec!["hub_viewers".to_owned()]
}

impl Default for RoleMapping {
    fn default() -> Self {
        Self {
            admin: default_admin(),
            member: default_member(),
            viewer: default_viewer(),
        }
    }
}

impl RoleMapping {
    /// The roles `groups` grant; empty when the person is in no mapped group.
    pub fn roles_for<S: AsRef<str>>(&self, groups: &[S]) -> BTreeSet<Role> {
        let mut roles = BTreeSet::new();
        for (role, mapped) in self.rows() {
            if groups
                .iter()
                .any(|g| mapped.iter().any(|m| m == g.as_ref()))
            {
                roles.insert(role);
            }
        }
        roles
    }

    /// Each role with the groups that grant it, for the admin page and error messages.
    pub fn rows(&self) -> [(Role, &[String]); 3] {
        [
            (Role::Admin, &self.admin),
            (Role::Member, &self.member),
            (Role::Viewer, &self.viewer),
        ]
    }

    /// Every mapped group name, for the "you are in none of …" page.
    pub fn all_groups(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .rows()
            .iter()
            .flat_map(|(_, gs)| gs.iter().map(String::as_str))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// One line per problem: empty group names, or no group granting admin.
    pub fn validate(&self, p: &mut Problems) {
        for (role, groups) in self.rows() {
            for g in groups {
                if g.trim().is_empty() || g.len() > 128 {
                    p.push(format!(
                        "identity.roles.{}: group names must be 1-128 characters",
                        role.as_str()
                    ));
                }
            }
        }
        if self.admin.is_empty() {
            p.push(
                "identity.roles.admin: name at least one group, or nobody can administer the hub",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_only_from_mapped_groups() {
        let m = RoleMapping::default();
        assert_eq!(
            m.roles_for(&["hub_admins", "other"]),
            BTreeSet::from([Role::Admin])
        );
        assert_eq!(
            m.roles_for(&["hub_members", "hub_viewers"]),
            BTreeSet::from([Role::Member, Role::Viewer])
        );
        assert!(m.roles_for(&["lldap_admin", "HUB_ADMINS"]).is_empty());
        assert!(m.roles_for::<&str>(&[]).is_empty());
    }

    #[test]
    fn admin_group_is_required() {
        let m = RoleMapping {
            admin: vec![],
            ..RoleMapping::default()
        };
        let mut p = Problems::default();
        m.validate(&mut p);
        assert_eq!(p.lines().len(), 1, "{:?}", p.lines());
    }
}

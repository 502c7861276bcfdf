//! The LDAP directory (LLDAP layout): user and group look-ups, group sync and break-glass binds.

-- Policy scopes people hold through their directory groups ([identity.scopes]), such as
-- `ops-hub:freeze.request`; refreshed with the roles at every login and directory sync.
ALTER TABLE users ADD COLUMN scopes text[] NOT NULL DEFAULT '{}';

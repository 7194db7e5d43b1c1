-- Admin console sessions (issue 17): an `admin` credential, checked once at sign-in, is
-- exchanged for a random session id kept in an HttpOnly cookie. Only the SHA-256 of that id is
-- stored, so reading this table does not let anyone act as a session. Every request re-checks
-- the credential the session came from (`credential_kind`: token, client or jwt), so revoking
-- it ends its sessions too. `expires` is the absolute end; `last_seen` drives the idle
-- timeout. Timestamps are microseconds since the Unix epoch. Shared by every instance on the
-- database, so any instance accepts any session and a sign-out counts everywhere.
CREATE TABLE admin_sessions (
    id_hash         TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    credential_kind TEXT NOT NULL,
    credential_id   TEXT NOT NULL,
    csrf_token      TEXT NOT NULL,
    created         BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    expires         BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires);
CREATE INDEX admin_sessions_last_seen ON admin_sessions (last_seen);
CREATE INDEX admin_sessions_tenant ON admin_sessions (tenant_id);

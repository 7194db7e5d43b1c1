-- Tenancy: OAuth 2.0 clients, the keys that sign the server's own access tokens, and each
-- tenant's trusted external JWT issuer. Every credential row belongs to one tenant and goes
-- with it. Timestamps are microseconds since the Unix epoch.

-- OAuth 2.0 clients (RFC 6749 §4.4 client credentials). Only the SHA-256 of the secret.
CREATE TABLE oauth_clients (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    label       TEXT,
    scope       TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created     BIGINT NOT NULL,
    last_used   BIGINT,
    revoked     BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id);

-- Keys that sign the access tokens POST /oauth/token issues (HS256, 256-bit random). The
-- current key is the newest one not retired; a retired key still verifies until every token
-- it signed has expired. Read from the database on every use, so instances sharing it agree.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY NOT NULL,
    alg        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created    BIGINT NOT NULL,
    retired_at BIGINT
);

-- A tenant's external JWT issuer: a token is routed to the tenant whose (issuer, audience)
-- it names, and verified only with that tenant's keys.
CREATE TABLE jwt_issuers (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    issuer    TEXT NOT NULL,
    audience  TEXT NOT NULL,
    scope     TEXT NOT NULL,
    created   BIGINT NOT NULL
);
CREATE UNIQUE INDEX jwt_issuers_iss_aud ON jwt_issuers (issuer, audience);

-- Verification keys of an issuer, each pinned to one algorithm. `format` is 'pem' (a public
-- key) or 'jwk' (one JSON Web Key from a JWKS file).
CREATE TABLE jwt_keys (
    tenant_id TEXT NOT NULL REFERENCES jwt_issuers(tenant_id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    kid       TEXT,
    alg       TEXT NOT NULL,
    format    TEXT NOT NULL,
    material  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- The default tenant exists from the start, so admin commands can give it tokens before the
-- first `serve` (which also ensures it, as the bootstrap token's tenant).
INSERT INTO tenants (id, name, created)
VALUES ('default', 'default', CAST(strftime('%s', 'now') AS INTEGER) * 1000000)
ON CONFLICT DO NOTHING;

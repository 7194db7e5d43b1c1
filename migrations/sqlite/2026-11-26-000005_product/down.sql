DROP TABLE deliveries;
DROP TABLE webhooks;
DROP TABLE account_roles;
DROP TABLE accounts;
DROP TABLE rules;
DROP TABLE roles;
DROP TABLE policies;
DROP TABLE feed;
DROP TABLE feed_heads;
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    credential_id TEXT
);
CREATE INDEX events_tenant ON events (tenant_id, seq);

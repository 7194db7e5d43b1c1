-- Scimitar schema (SQLite). Timestamps are microseconds since the Unix epoch (BIGINT),
-- so both backends compare and sort them the same way.
CREATE TABLE tenants (
    id       TEXT PRIMARY KEY NOT NULL,
    name     TEXT NOT NULL UNIQUE,
    created  BIGINT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    label       TEXT,
    scope       TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created     BIGINT NOT NULL,
    last_used   BIGINT,
    expires     BIGINT,
    revoked     BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);

-- One row per SCIM resource: the JSON document plus the columns that queries need.
CREATE TABLE resources (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    rtype         TEXT NOT NULL,
    user_name     TEXT,
    user_name_ci  TEXT,
    display_name  TEXT,
    display_ci    TEXT,
    external_id   TEXT,
    active        BOOLEAN,
    doc           TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created       BIGINT NOT NULL,
    modified      BIGINT NOT NULL
);
CREATE UNIQUE INDEX resources_id ON resources (tenant_id, id);
CREATE UNIQUE INDEX resources_user_name ON resources (tenant_id, rtype, user_name_ci);
CREATE INDEX resources_list ON resources (tenant_id, rtype, pk);
CREATE INDEX resources_external_id ON resources (tenant_id, rtype, external_id);
CREATE INDEX resources_display ON resources (tenant_id, rtype, display_ci);

-- Filterable attribute values other than the columns above: one row per (sub-)value.
-- `elem` numbers the values of a multi-valued attribute so that a value-path filter
-- (emails[type eq "work" and value co "x"]) compares sub-attributes of the same element.
CREATE TABLE attr_values (
    -- An explicit rowid, so VACUUM never renumbers rows (the trigram index refers to it).
    id        INTEGER PRIMARY KEY,
    res_pk    BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    path      TEXT NOT NULL,
    elem      INTEGER NOT NULL,
    val       TEXT,
    num       DOUBLE PRECISION
);
CREATE INDEX attr_values_val ON attr_values (tenant_id, path, val);
-- Most values are strings: index only the numeric ones (dateTime, integer, decimal).
CREATE INDEX attr_values_num ON attr_values (tenant_id, path, num) WHERE num IS NOT NULL;
CREATE INDEX attr_values_res ON attr_values (res_pk, path, elem);

-- Group membership: its own table, indexed both ways.
CREATE TABLE members (
    tenant_id TEXT NOT NULL,
    group_pk  BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
    member_pk BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
    -- The `display` a client sent with the membership (RFC 7643 §4.2), if any.
    display   TEXT,
    display_ci TEXT,
    PRIMARY KEY (group_pk, member_pk)
);
CREATE INDEX members_member ON members (member_pk);

-- Provisioning events, written in the same transaction as the change.
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

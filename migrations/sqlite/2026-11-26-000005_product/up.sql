-- From SCIM to the product: accounts, roles and the rules that grant them, per-tenant
-- policies, the change feed (replacing `events`) and webhook deliveries. Timestamps are
-- microseconds since the Unix epoch.

DROP TABLE events;

-- The change feed: per tenant, gap-free, increasing `seq`. `feed_heads` holds each tenant's
-- last number; a writer takes it (a row lock until commit), so numbers are handed out in
-- commit order and a reader that saw seq N never later finds a new event below N.
CREATE TABLE feed_heads (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    last_seq  BIGINT NOT NULL
);
CREATE TABLE feed (
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    id            TEXT NOT NULL,
    type          TEXT NOT NULL,
    account_id    TEXT,
    resource_type TEXT,
    resource_id   TEXT,
    at            BIGINT NOT NULL,
    credential_id TEXT,
    data          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX feed_account ON feed (tenant_id, account_id, seq) WHERE account_id IS NOT NULL;

CREATE TABLE policies (
    tenant_id      TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provisioning   TEXT NOT NULL,
    deprovisioning TEXT NOT NULL
);

CREATE TABLE roles (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    entitlements TEXT NOT NULL,
    created      BIGINT NOT NULL,
    modified     BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (tenant_id, name);

-- A rule grants its role to the users its filter matches, or to the members of a group.
CREATE TABLE rules (
    id        TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    role_id   TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    filter    TEXT,
    group_id  TEXT,
    created   BIGINT NOT NULL,
    modified  BIGINT NOT NULL
);
CREATE INDEX rules_tenant ON rules (tenant_id, id);
CREATE INDEX rules_group ON rules (tenant_id, group_id) WHERE group_id IS NOT NULL;

-- One account per SCIM user; it outlives the user (state `removed`) for the audit trail.
-- `roles`/`entitlements` are the effective ones (JSON), stored so a read is one lookup.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    scim_id        TEXT NOT NULL,
    user_pk        BIGINT,
    user_name      TEXT NOT NULL,
    state          TEXT NOT NULL,
    roles          TEXT NOT NULL,
    entitlements   TEXT NOT NULL,
    removal_since  BIGINT,
    removal_reason TEXT,
    created        BIGINT NOT NULL,
    modified       BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_scim ON accounts (tenant_id, scim_id);
CREATE INDEX accounts_state ON accounts (tenant_id, state, id);
CREATE INDEX accounts_list ON accounts (tenant_id, id);
CREATE INDEX accounts_user ON accounts (user_pk);
CREATE INDEX accounts_removal ON accounts (tenant_id, removal_since) WHERE removal_since IS NOT NULL;

CREATE TABLE account_roles (
    tenant_id  TEXT NOT NULL,
    role_id    TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, account_id)
);
CREATE INDEX account_roles_account ON account_roles (account_id);

CREATE TABLE webhooks (
    id        TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url       TEXT NOT NULL,
    events    TEXT NOT NULL,
    secret    TEXT NOT NULL,
    created   BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- One row per (subscription, feed event). The body is the feed row, read at send time.
-- `order_key` (the account, or the group) orders deliveries: one waits while an earlier
-- one of the same key and subscription is still pending.
CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    order_key    TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    last_error   TEXT,
    last_attempt BIGINT,
    created      BIGINT NOT NULL
);
CREATE UNIQUE INDEX deliveries_event ON deliveries (webhook_id, seq);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (webhook_id, order_key, seq) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON deliveries (webhook_id, seq) WHERE status = 'dead';

-- The version of a tenant's policy, roles and rules, so that a write can tell in one read
-- whether what it cached of them is current (provisioning::accounts::Service::accounts_ctx):
-- every write of a policy, role or rule sets a new random version (storage::roles::bump).
-- A tenant without a row has never set any (the default policy, no roles, no rules).
CREATE TABLE product_versions (
    tenant_id TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    version   BIGINT NOT NULL
);
INSERT INTO product_versions (tenant_id, version)
SELECT t.id, 1 FROM tenants t
WHERE EXISTS (SELECT 1 FROM policies p WHERE p.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM roles r WHERE r.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM rules u WHERE u.tenant_id = t.id);

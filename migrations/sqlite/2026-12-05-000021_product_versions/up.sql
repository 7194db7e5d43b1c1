-- What a tenant's writes decide accounts by (its policy, roles and rules) is read once per
-- change of them and kept (provisioning::accounts::Products). A change is a row here, added
-- by the triggers below on every insert, update and delete of a policy, role or rule, so
-- every writer counts (an older binary during a rolling upgrade, a manual fix in SQL), and
-- rows are only ever added: no write waits for another on a version row. A write reads the
-- number of its tenant's changes, the highest id and its nonce (storage::roles::product_version): any
-- change committed since it last read makes the count grow, and a tenant deleted and made
-- again under the same id has higher ids. No row: the tenant never set a policy, a role or
-- a rule.
CREATE TABLE product_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- Random: a change rolled back may have handed its id to the next one (AUTOINCREMENT
    -- only counts committed ids), and a version read inside it must not match that one.
    nonce     BIGINT NOT NULL DEFAULT (random())
);
CREATE INDEX product_changes_tenant ON product_changes (tenant_id, id);
-- A tenant that already set any has one change to start from.
INSERT INTO product_changes (tenant_id)
SELECT t.id FROM tenants t
WHERE EXISTS (SELECT 1 FROM policies p WHERE p.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM roles r WHERE r.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM rules u WHERE u.tenant_id = t.id);
CREATE TRIGGER policies_changed_insert AFTER INSERT ON policies BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER policies_changed_update AFTER UPDATE ON policies BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER policies_changed_delete AFTER DELETE ON policies BEGIN
    INSERT INTO product_changes (tenant_id) SELECT old.tenant_id
        WHERE EXISTS (SELECT 1 FROM tenants WHERE id = old.tenant_id);
END;
CREATE TRIGGER roles_changed_insert AFTER INSERT ON roles BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER roles_changed_update AFTER UPDATE ON roles BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER roles_changed_delete AFTER DELETE ON roles BEGIN
    INSERT INTO product_changes (tenant_id) SELECT old.tenant_id
        WHERE EXISTS (SELECT 1 FROM tenants WHERE id = old.tenant_id);
END;
CREATE TRIGGER rules_changed_insert AFTER INSERT ON rules BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER rules_changed_update AFTER UPDATE ON rules BEGIN
    INSERT INTO product_changes (tenant_id) VALUES (new.tenant_id);
END;
CREATE TRIGGER rules_changed_delete AFTER DELETE ON rules BEGIN
    INSERT INTO product_changes (tenant_id) SELECT old.tenant_id
        WHERE EXISTS (SELECT 1 FROM tenants WHERE id = old.tenant_id);
END;

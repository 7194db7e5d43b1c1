-- What a tenant's writes decide accounts by (its policy, roles and rules) is read once per
-- change of them and kept (provisioning::accounts::Products). A change is a row here, added
-- by the trigger below on every insert, update and delete of a policy, role or rule, so
-- every writer counts (an older binary during a rolling upgrade, a manual fix in SQL), and
-- rows are only ever added: no write waits for another on a version row. A write reads the
-- number of its tenant's changes, the highest id and its nonce (storage::roles::product_version): any
-- change committed since it last read makes the count grow (ids from the sequence may
-- commit out of order, the count may not be missed), and a tenant deleted and made again
-- under the same id has higher ids. No row: the tenant never set a policy, a role or a rule.
CREATE TABLE product_changes (
    id        BIGSERIAL PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- Random, as on SQLite (where a rolled-back change may hand its id to the next one).
    nonce     BIGINT NOT NULL DEFAULT floor(random() * 9.2e18)::BIGINT
);
CREATE INDEX product_changes_tenant ON product_changes (tenant_id, id);
-- A tenant that already set any has one change to start from.
INSERT INTO product_changes (tenant_id)
SELECT t.id FROM tenants t
WHERE EXISTS (SELECT 1 FROM policies p WHERE p.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM roles r WHERE r.tenant_id = t.id)
   OR EXISTS (SELECT 1 FROM rules u WHERE u.tenant_id = t.id);
CREATE FUNCTION product_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        t := OLD.tenant_id;
        -- A tenant being deleted (its row cascading) needs no change noted.
        IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = t) THEN
            RETURN NULL;
        END IF;
    ELSE
        t := NEW.tenant_id;
    END IF;
    INSERT INTO product_changes (tenant_id) VALUES (t);
    RETURN NULL;
END;
$$;
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION product_changed();
CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION product_changed();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE ON rules
    FOR EACH ROW EXECUTE FUNCTION product_changed();

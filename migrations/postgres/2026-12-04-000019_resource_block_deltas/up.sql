-- The block counts of 000018 become append-only deltas: the triggers only INSERT (one row per
-- tenant, type and block a statement touched, negative for deletes) and never UPDATE a
-- shared row, so no write waits on another transaction's counter row. Under 000018 every
-- insert upserted the newest block's row and held its lock until COMMIT: a tenant's write
-- transactions queued from their first insert, and two inserting Users and Groups in
-- opposite orders could deadlock. A block's count is now the SUM of its rows (readers group
-- by block, `search::deep_page`); the statistics thread folds each block's rows into one
-- (`search::blocks::compact_resource_blocks`). 000018's functions stay for down.sql.
ALTER TABLE resource_blocks DROP CONSTRAINT resource_blocks_pkey;
CREATE INDEX resource_blocks_key ON resource_blocks (tenant_id, rtype, block);
-- 000018 kept one row per key already (its primary key); blocks emptied by deletes are dropped.
DELETE FROM resource_blocks WHERE n = 0;

CREATE FUNCTION resource_block_deltas_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_blocks (tenant_id, rtype, block, n)
        SELECT tenant_id, rtype, pk >> 12, COUNT(*) FROM inserted_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

-- Resources deleted with their tenant (ON DELETE CASCADE) need no delta: the tenant's counts
-- go with it, and a delta naming the deleted tenant would fail its foreign key.
CREATE FUNCTION resource_block_deltas_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_blocks (tenant_id, rtype, block, n)
        SELECT d.tenant_id, d.rtype, d.pk >> 12, -COUNT(*) FROM deleted_rows d
            WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id)
            GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

DROP TRIGGER resources_blocks_insert ON resources;
CREATE TRIGGER resources_blocks_insert AFTER INSERT ON resources REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_block_deltas_insert();
DROP TRIGGER resources_blocks_delete ON resources;
CREATE TRIGGER resources_blocks_delete AFTER DELETE ON resources REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_block_deltas_delete();

-- Back to 000018: one row per key (the deltas folded), its primary key, and its upserting
-- trigger functions (kept by up.sql).
WITH d AS (DELETE FROM resource_blocks RETURNING tenant_id, rtype, block, n)
INSERT INTO resource_blocks (tenant_id, rtype, block, n)
    SELECT tenant_id, rtype, block, SUM(n) FROM d GROUP BY 1, 2, 3 HAVING SUM(n) <> 0;
DROP INDEX resource_blocks_key;
ALTER TABLE resource_blocks ADD PRIMARY KEY (tenant_id, rtype, block);

DROP TRIGGER resources_blocks_insert ON resources;
DROP TRIGGER resources_blocks_delete ON resources;
DROP FUNCTION resource_block_deltas_delete();
DROP FUNCTION resource_block_deltas_insert();
CREATE TRIGGER resources_blocks_insert AFTER INSERT ON resources REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_blocks_insert();
CREATE TRIGGER resources_blocks_delete AFTER DELETE ON resources REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_blocks_delete();

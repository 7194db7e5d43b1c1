-- Back to 000018: one row per key (the deltas folded), its primary key and upserting triggers.
WITH d AS (DELETE FROM resource_blocks RETURNING tenant_id, rtype, block, n)
INSERT INTO resource_blocks (tenant_id, rtype, block, n)
    SELECT tenant_id, rtype, block, SUM(n) FROM d GROUP BY 1, 2, 3 HAVING SUM(n) <> 0;
DROP INDEX resource_blocks_key;
ALTER TABLE resource_blocks ADD PRIMARY KEY (tenant_id, rtype, block);

CREATE OR REPLACE FUNCTION resource_blocks_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_blocks (tenant_id, rtype, block, n)
        SELECT tenant_id, rtype, pk >> 12, COUNT(*) FROM inserted_rows GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, rtype, block) DO UPDATE SET n = resource_blocks.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION resource_blocks_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE resource_blocks b SET n = b.n - d.n
        FROM (SELECT tenant_id, rtype, pk >> 12 AS block, COUNT(*) AS n FROM deleted_rows
              GROUP BY 1, 2, 3) d
        WHERE b.tenant_id = d.tenant_id AND b.rtype = d.rtype AND b.block = d.block;
    RETURN NULL;
END $$;

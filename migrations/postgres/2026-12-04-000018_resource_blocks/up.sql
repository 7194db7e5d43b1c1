-- How many resources of each tenant and type fall in each block of 4,096 primary keys
-- (pk >> 12), kept by triggers in the statements that insert and delete resources (in their
-- transaction, so every snapshot sees counts that agree with the rows). A deep index page
-- (startIndex 500,001 of an unfiltered list) skips whole blocks by their counts, then walks
-- at most one block, instead of reading every index entry before it (issue 18). A resource's
-- tenant, type and pk never change, so updates need nothing.
CREATE TABLE resource_blocks (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    rtype     TEXT NOT NULL,
    block     BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rtype, block)
);

CREATE FUNCTION resource_blocks_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_blocks (tenant_id, rtype, block, n)
        SELECT tenant_id, rtype, pk >> 12, COUNT(*) FROM inserted_rows GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, rtype, block) DO UPDATE SET n = resource_blocks.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE FUNCTION resource_blocks_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE resource_blocks b SET n = b.n - d.n
        FROM (SELECT tenant_id, rtype, pk >> 12 AS block, COUNT(*) AS n FROM deleted_rows
              GROUP BY 1, 2, 3) d
        WHERE b.tenant_id = d.tenant_id AND b.rtype = d.rtype AND b.block = d.block;
    RETURN NULL;
END $$;

CREATE TRIGGER resources_blocks_insert AFTER INSERT ON resources
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_blocks_insert();
CREATE TRIGGER resources_blocks_delete AFTER DELETE ON resources
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_blocks_delete();

INSERT INTO resource_blocks (tenant_id, rtype, block, n)
    SELECT tenant_id, rtype, pk >> 12, COUNT(*) FROM resources GROUP BY 1, 2, 3;

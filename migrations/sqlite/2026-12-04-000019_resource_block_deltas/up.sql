-- How many resources of each tenant and type fall in each block of 4,096 primary keys
-- (pk >> 12), as on Postgres (000018, 000019), so a deep index page (startIndex 500,001 of an
-- unfiltered list) skips whole blocks by their counts, then walks at most one block, instead
-- of reading every index entry before it (issue 18; `search::deep_page`). A resource's
-- tenant, type and pk never change, so updates need nothing.
--
-- Unlike Postgres (append-only deltas, so concurrent writers never wait on a counter row),
-- SQLite has one writer: no transaction can wait on another's counter row, so each key keeps
-- one row, upserted by row-level triggers (SQLite has no statement-level ones). That is the
-- cheapest write: one lookup in a small table whose pages stay cached and an in-place update,
-- where a delta per inserted row would add a row and an index entry per resource, a table as
-- big as `resources` between compactions for readers to sum, and a compactor to run.
CREATE TABLE resource_blocks (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    rtype     TEXT NOT NULL,
    block     BIGINT NOT NULL, -- pk >> 12
    n         BIGINT NOT NULL, -- resources of the tenant and type in the block (0 once emptied)
    PRIMARY KEY (tenant_id, rtype, block)
) WITHOUT ROWID;

CREATE TRIGGER resources_blocks_insert AFTER INSERT ON resources BEGIN
    INSERT INTO resource_blocks (tenant_id, rtype, block, n)
        VALUES (new.tenant_id, new.rtype, new.pk >> 12, 1)
        ON CONFLICT (tenant_id, rtype, block) DO UPDATE SET n = n + 1;
END;
-- A resource deleted with its tenant finds no row left to update (or one about to go).
CREATE TRIGGER resources_blocks_delete AFTER DELETE ON resources BEGIN
    UPDATE resource_blocks SET n = n - 1
        WHERE tenant_id = old.tenant_id AND rtype = old.rtype AND block = old.pk >> 12;
END;

INSERT INTO resource_blocks (tenant_id, rtype, block, n)
    SELECT tenant_id, rtype, pk >> 12, COUNT(*) FROM resources GROUP BY 1, 2, 3;

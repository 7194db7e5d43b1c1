-- How many resources of each type a tenant holds, kept by every create and delete (in the
-- same transaction, next to the feed), so an unfiltered list's totalResults is one row read
-- instead of a count of every resource.
CREATE TABLE resource_counts (
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    rtype     TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rtype)
);
INSERT INTO resource_counts (tenant_id, rtype, n)
    SELECT tenant_id, rtype, COUNT(*) FROM resources GROUP BY tenant_id, rtype;

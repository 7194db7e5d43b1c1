-- How many Users and Groups a tenant holds, on its feed head row: every create and delete
-- adds to them in the same statement that numbers its feed events (at the end of the
-- transaction), so an unfiltered list's totalResults is one row read instead of a count of
-- every resource, at no extra lock.
ALTER TABLE feed_heads ADD COLUMN user_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE feed_heads ADD COLUMN group_count BIGINT NOT NULL DEFAULT 0;
INSERT INTO feed_heads (tenant_id, last_seq)
    SELECT t.id, 0 FROM tenants t WHERE NOT EXISTS (SELECT 1 FROM feed_heads h WHERE h.tenant_id = t.id);
UPDATE feed_heads SET
    user_count = (SELECT COUNT(*) FROM resources r WHERE r.tenant_id = feed_heads.tenant_id AND r.rtype = 'User'),
    group_count = (SELECT COUNT(*) FROM resources r WHERE r.tenant_id = feed_heads.tenant_id AND r.rtype = 'Group');

-- The value index carries the resource's key (issue 18): a filter's matching keys
-- (`emails.value eq`, `name.familyName sw`, the driver of a value path) are read from the
-- index alone, not from one random table page per match (an index-only scan once the
-- visibility map is set, which the statistics thread's VACUUM (ANALYZE) does). The same name
-- and leading columns, so every plan that chose it still does.
--
-- A value stored before values were also checked in their lower-cased form (2,048 bytes,
-- the index's form) may be too long for an entry 8 bytes wider: then the index stays as it
-- was (the DROP is undone with the failed CREATE) and the server starts without the gain.
DO $$
BEGIN
    DROP INDEX attr_values_val;
    CREATE INDEX attr_values_val ON attr_values (tenant_id, path, val, res_pk);
EXCEPTION WHEN program_limit_exceeded THEN
    RAISE WARNING 'attr_values_val kept without res_pk: a stored value is too long for it';
END $$;

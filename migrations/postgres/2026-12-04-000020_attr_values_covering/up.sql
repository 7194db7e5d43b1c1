-- The value index carries the resource's key (issue 18): a filter's matching keys
-- (`emails.value eq`, `name.familyName sw`, the driver of a value path) are read from the
-- index alone, not from one random table page per match (Postgres: an index-only scan once
-- the visibility map is set, which the statistics thread's VACUUM (ANALYZE) does; SQLite: a
-- covering index). The same name and leading columns, so every plan that chose it still does.
DROP INDEX attr_values_val;
CREATE INDEX attr_values_val ON attr_values (tenant_id, path, val, res_pk);

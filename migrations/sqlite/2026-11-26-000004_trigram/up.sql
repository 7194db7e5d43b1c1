-- Substring search (co/ew, and sw beyond the b-tree) over attribute values: an FTS5 trigram
-- index kept in step with attr_values by triggers. Case-sensitive: case-insensitive
-- attributes are stored lower-cased already. detail=none keeps it small; every candidate is
-- re-checked with LIKE, so it only has to over-approximate.
CREATE VIRTUAL TABLE attr_values_trgm USING fts5(
    val, content='attr_values', content_rowid='id', tokenize='trigram case_sensitive 1', detail='none'
);
CREATE TRIGGER attr_values_trgm_insert AFTER INSERT ON attr_values WHEN new.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm (rowid, val) VALUES (new.id, new.val);
END;
CREATE TRIGGER attr_values_trgm_delete AFTER DELETE ON attr_values WHEN old.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm (attr_values_trgm, rowid, val) VALUES ('delete', old.id, old.val);
END;
INSERT INTO attr_values_trgm (attr_values_trgm) VALUES ('rebuild');

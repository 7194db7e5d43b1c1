-- Pending notes first (none are left by a committed transaction of this version).
INSERT INTO attr_values_trgm (attr_values_trgm, rowid, val)
    SELECT cmd, id, val FROM (
        SELECT 'delete' AS cmd, id, val, 0 AS k FROM attr_values_trgm_removed
        UNION ALL
        SELECT NULL, a.id, v.val, 1
        FROM attr_values_trgm_added a CROSS JOIN attr_values v ON v.id = a.id
        ORDER BY 2, 4
    );
DROP TRIGGER attr_values_trgm_delete;
DROP TRIGGER attr_values_trgm_insert;
DROP TABLE attr_values_trgm_removed;
DROP TABLE attr_values_trgm_added;
CREATE TRIGGER attr_values_trgm_insert AFTER INSERT ON attr_values WHEN new.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm (rowid, val) VALUES (new.id, new.val);
END;
CREATE TRIGGER attr_values_trgm_delete AFTER DELETE ON attr_values WHEN old.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm (attr_values_trgm, rowid, val) VALUES ('delete', old.id, old.val);
END;

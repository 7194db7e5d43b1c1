-- The trigram index (000004) is written once per transaction instead of once per change.
-- FTS5 writes its pending terms out as a new segment (with incremental merge work) whenever a
-- savepoint opens, is released or a statement starts after it was written: with its triggers
-- running inside each write's savepoint, a batch of writes (`provisioning::writer`) made one
-- segment per write. Now the triggers only note which rows changed, in two plain tables,
-- and the transaction's closing statements (`dialect::Backend::settle_trigrams`, run by
-- `storage::conn` before every COMMIT and before a substring search) move them into the
-- index in one statement, emptying both: committed, both tables are always empty.
-- A savepoint that rolls back takes its notes with it. Rows are never UPDATEd.
DROP TRIGGER attr_values_trgm_insert;
DROP TRIGGER attr_values_trgm_delete;
-- Rows inserted since the index was last written (their values are read from attr_values).
CREATE TABLE attr_values_trgm_added (id INTEGER PRIMARY KEY);
-- Rows deleted that the index holds, with the value it holds them under (a 'delete' of an
-- external-content FTS5 table needs it).
CREATE TABLE attr_values_trgm_removed (id INTEGER PRIMARY KEY, val TEXT NOT NULL);
CREATE TRIGGER attr_values_trgm_insert AFTER INSERT ON attr_values WHEN new.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm_added (id) VALUES (new.id);
END;
-- A row added since the index was written is not in it: its note is dropped. Otherwise the
-- index holds it (an id freed and taken again in one transaction was noted as removed
-- when freed, and the settle applies removals before additions).
CREATE TRIGGER attr_values_trgm_delete AFTER DELETE ON attr_values WHEN old.val IS NOT NULL BEGIN
    INSERT INTO attr_values_trgm_removed (id, val) SELECT old.id, old.val
        WHERE NOT EXISTS (SELECT 1 FROM attr_values_trgm_added WHERE id = old.id);
    DELETE FROM attr_values_trgm_added WHERE id = old.id;
END;

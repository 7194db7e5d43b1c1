DROP TRIGGER attr_values_trgm_delete;
DROP TRIGGER attr_values_trgm_insert;
DROP TABLE attr_values_trgm;

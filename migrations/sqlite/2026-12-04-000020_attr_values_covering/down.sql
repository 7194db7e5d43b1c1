DROP INDEX attr_values_val;
CREATE INDEX attr_values_val ON attr_values (tenant_id, path, val);

-- Substring search (co/ew) through pg_trgm GIN indexes. The extension lives in `public`
-- (one per database) and the operator class is named with its schema, so a deployment that
-- uses its own search_path (or several schemas) still finds it.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE INDEX attr_values_trgm ON attr_values USING gin (val public.gin_trgm_ops);
CREATE INDEX resources_user_name_trgm ON resources USING gin (user_name_ci public.gin_trgm_ops);
CREATE INDEX resources_display_trgm ON resources USING gin (display_ci public.gin_trgm_ops);

DROP INDEX resources_display_trgm;
DROP INDEX resources_user_name_trgm;
DROP INDEX attr_values_trgm;

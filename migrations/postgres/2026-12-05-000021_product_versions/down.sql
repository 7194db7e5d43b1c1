DROP TRIGGER policies_changed ON policies;
DROP TRIGGER roles_changed ON roles;
DROP TRIGGER rules_changed ON rules;
DROP FUNCTION product_changed();
DROP TABLE product_changes;

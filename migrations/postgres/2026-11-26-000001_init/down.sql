DROP TABLE events;
DROP TABLE members;
DROP TABLE attr_values;
DROP TABLE resources;
DROP TABLE tokens;
DROP TABLE tenants;

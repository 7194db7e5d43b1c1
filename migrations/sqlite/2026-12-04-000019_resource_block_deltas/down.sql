DROP TRIGGER resources_blocks_delete;
DROP TRIGGER resources_blocks_insert;
DROP TABLE resource_blocks;

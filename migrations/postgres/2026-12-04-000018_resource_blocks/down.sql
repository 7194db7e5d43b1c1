DROP TRIGGER resources_blocks_delete ON resources;
DROP TRIGGER resources_blocks_insert ON resources;
DROP FUNCTION resource_blocks_delete();
DROP FUNCTION resource_blocks_insert();
DROP TABLE resource_blocks;

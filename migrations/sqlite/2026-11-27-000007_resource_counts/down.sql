ALTER TABLE feed_heads DROP COLUMN group_count;
ALTER TABLE feed_heads DROP COLUMN user_count;

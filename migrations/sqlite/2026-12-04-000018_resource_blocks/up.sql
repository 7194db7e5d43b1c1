-- Postgres only (counts of resources per block of primary keys, for deep index pages); the
-- trees keep the same migration names.
SELECT 1;

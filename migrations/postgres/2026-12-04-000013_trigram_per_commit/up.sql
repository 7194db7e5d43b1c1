-- SQLite only (its FTS5 trigram index written once per transaction); Postgres keeps its
-- pg_trgm GIN index itself. The trees keep the same migration names.
SELECT 1;

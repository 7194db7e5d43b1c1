-- SQLite only (an FTS5 vocabulary table for its trigram index); pg_trgm needs nothing. The
-- trees keep the same migration names.
SELECT 1;

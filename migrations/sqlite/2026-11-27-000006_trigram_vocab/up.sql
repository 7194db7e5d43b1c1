-- The trigram index's vocabulary: how many values hold each trigram. A substring search
-- asks FTS5 for its two rarest trigrams only (FTS5 reads the whole row list of every
-- trigram in a query, and `com` or `@ex` are in nearly every value).
CREATE VIRTUAL TABLE attr_values_trgm_vocab USING fts5vocab(attr_values_trgm, 'row');

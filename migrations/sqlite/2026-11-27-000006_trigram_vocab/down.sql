DROP TABLE attr_values_trgm_vocab;

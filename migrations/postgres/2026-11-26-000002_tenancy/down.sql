DROP TABLE jwt_keys;
DROP TABLE jwt_issuers;
DROP TABLE signing_keys;
DROP TABLE oauth_clients;

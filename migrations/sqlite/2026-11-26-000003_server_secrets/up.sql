-- Secrets the server generates once and every instance sharing the database uses
-- (e.g. the key that makes list cursors tamper-evident).
CREATE TABLE server_secrets (
    name    TEXT PRIMARY KEY NOT NULL,
    value   TEXT NOT NULL,
    created BIGINT NOT NULL
);

//! HTTP integration tests: the real app wiring, on SQLite by default and on Postgres when
//! SCIMITAR_TEST_POSTGRES_URL is set (each test in its own schema). One test binary; the
//! cases live in tests/integration/.

mod common;

#[path = "integration/discovery.rs"]
mod discovery;
#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/groups.rs"]
mod groups;
#[path = "integration/query.rs"]
mod query;
#[path = "integration/users.rs"]
mod users;

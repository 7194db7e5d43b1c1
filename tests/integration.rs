//! HTTP integration tests: the real app wiring, on SQLite by default and on Postgres when
//! SCIMITAR_TEST_POSTGRES_URL is set (each test in its own schema). One test binary; the
//! cases live in tests/integration/.

mod common;

#[path = "integration/account_deliveries.rs"]
mod account_deliveries;
#[path = "integration/account_feed.rs"]
mod account_feed;
#[path = "integration/account_input.rs"]
mod account_input;
#[path = "integration/account_lifecycle.rs"]
mod account_lifecycle;
#[path = "integration/account_policies.rs"]
mod account_policies;
#[path = "integration/blocks.rs"]
mod blocks;
#[path = "integration/bulk.rs"]
mod bulk;

#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/console_api.rs"]
mod console_api;
#[path = "integration/dialects.rs"]
mod dialects;
#[path = "integration/discovery.rs"]
mod discovery;
#[path = "integration/entra.rs"]
mod entra;
#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/fairness.rs"]
mod fairness;
#[path = "integration/groups.rs"]
mod groups;
#[path = "integration/jwt.rs"]
mod jwt;
#[path = "integration/oauth.rs"]
mod oauth;
#[path = "integration/okta.rs"]
mod okta;
#[path = "integration/ops.rs"]
mod ops;
#[path = "integration/processes.rs"]
mod processes;
#[path = "integration/query.rs"]
mod query;
#[path = "integration/sessions.rs"]
mod sessions;
#[path = "integration/tenancy.rs"]
mod tenancy;
#[path = "integration/tokens.rs"]
mod tokens;
#[path = "integration/trigrams.rs"]
mod trigrams;
#[path = "integration/users.rs"]
mod users;
#[path = "integration/webhooks.rs"]
mod webhooks;
#[path = "integration/writer.rs"]
mod writer;

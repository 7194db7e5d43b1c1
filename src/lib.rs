//! Scimitar: a SCIM 2.0 provisioning server (RFC 7643, RFC 7644). ARCHITECTURE.md describes
//! the modules and which may import which.

// No unwrap/expect/panic on the request path; tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod errors;
pub mod http;
pub mod metrics;
pub mod product;
pub mod provisioning;
pub mod scim;
pub mod server;
pub mod storage;
pub mod webhooks;

//! Scimitar: a SCIM 2.0 provisioning server (RFC 7643, RFC 7644).

// No unwrap/expect/panic on the request path; tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod config;
pub mod http;
pub mod provisioning;
pub mod scim;
pub mod server;
pub mod storage;
pub mod webhooks;

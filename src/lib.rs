//! Scimitar: a SCIM 2.0 provisioning server (RFC 7643, RFC 7644).

pub mod auth;
pub mod config;
pub mod http;
pub mod provisioning;
pub mod scim;
pub mod server;
pub mod storage;

//! Scimitar: a SCIM 2.0 provisioning server (RFC 7643, RFC 7644). ARCHITECTURE.md describes
//! the modules and which may import which.

// No unwrap/expect/panic on the request path; tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// The allocator of every binary that links the library (the server, the tests, the
/// benchmarks): glibc's malloc spent about 30% of the CPU of a 32-client read benchmark in
/// its arenas (`_int_malloc`, `malloc_consolidate`, `_int_free`), mimalloc's thread-local
/// heaps much less (README, "query").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

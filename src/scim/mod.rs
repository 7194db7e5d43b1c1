//! The SCIM protocol, pure: schemas, filters and paths, validation, PATCH, projection,
//! client dialects. Depends on neither actix nor diesel, so all of it is unit-tested alone.

pub mod compat;
pub mod error;
pub mod events;
pub mod filter;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod time;

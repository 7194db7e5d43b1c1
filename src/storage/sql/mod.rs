//! The SQL implementation of storage: one code path for SQLite and Postgres (raw SQL that
//! both accept, with `?` placeholders numbered for Postgres), bound parameters only.

pub mod admin_extras;
pub mod conn;
pub mod filter;
pub mod product;
pub mod sessions;
pub mod store;
pub mod tenancy;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::StorageError;

impl From<DieselError> for StorageError {
    fn from(e: DieselError) -> StorageError {
        match e {
            DieselError::NotFound => StorageError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                StorageError::MissingReference
            }
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StorageError::Conflict(info.constraint_name().unwrap_or(info.message()).to_string())
            }
            other => StorageError::Backend(Box::new(other)),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StorageError {
    fn from(e: diesel::r2d2::PoolError) -> StorageError {
        StorageError::Pool(e.to_string())
    }
}

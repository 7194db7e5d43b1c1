//! Every error answered as an RFC 7644 §3.12 SCIM error. The one table from error to
//! (status, scimType) is `From<provisioning::Error>` below.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::AuthError;
use crate::provisioning::Error;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::schema::ERROR_SCHEMA;

pub const SCIM_JSON: &str = "application/scim+json";

/// `Retry-After` (seconds) of a request that ran past the statement deadline.
pub const DEADLINE_RETRY_AFTER: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// `WWW-Authenticate` for 401s.
    pub challenge: Option<&'static str>,
    /// `Retry-After` seconds for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<ScimType>,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            scim_type,
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 429: the credential's request rate is over the limit (`--rate-limit`).
    pub fn too_many_requests(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("too many requests for this credential; retry after {retry_after} s"),
            )
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// A failure that is ours, not the client's: logged in full, answered generically.
    pub fn internal(source: &dyn std::error::Error) -> ApiError {
        log::error!("internal error: {}", crate::errors::chain(source));
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal server error; the server log has the details",
        )
    }

    fn unavailable(source: &dyn std::error::Error) -> ApiError {
        log::error!("database unavailable: {source}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the database is unavailable; retry later",
        )
    }
}

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> ApiError {
        let status = match e.scim_type {
            ScimType::Uniqueness => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, Some(e.scim_type), e.detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        use crate::storage::StorageError as S;
        match e {
            Error::Scim(s) => s.into(),
            Error::Invalid(d) => {
                ApiError::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue), d)
            }
            Error::Auth(a) => a.into(),
            Error::NotFound(d) => ApiError::new(StatusCode::NOT_FOUND, None, d),
            Error::Conflict(d) => {
                ApiError::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), d)
            }
            Error::PreconditionFailed => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, None, e.to_string())
            }
            Error::TooLarge(d) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, None, d),
            Error::Forbidden => ApiError::new(StatusCode::FORBIDDEN, None, e.to_string()),
            Error::Storage(S::VersionMismatch) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                S::VersionMismatch.to_string(),
            ),
            Error::Storage(S::NotFound) => ApiError::not_found("resource not found"),
            Error::Storage(S::MissingReference) => ApiError::new(
                StatusCode::BAD_REQUEST,
                Some(ScimType::InvalidValue),
                "a member named in the request was deleted meanwhile; retry without it",
            ),
            Error::Storage(S::Conflict(_)) => ApiError::new(
                StatusCode::CONFLICT,
                Some(ScimType::Uniqueness),
                "the change conflicts with an existing resource",
            ),
            Error::Storage(s @ (S::Pool(_) | S::Connect(_))) => ApiError::unavailable(&s),
            // A write (or a read other than a list) that ran past the statement deadline:
            // rolled back, so the client may retry it as it is. Lists answer 400 tooMany
            // (`provisioning::list`).
            Error::Storage(S::Deadline) => {
                log::warn!("a statement ran past the statement deadline; answered 503");
                ApiError {
                    retry_after: Some(DEADLINE_RETRY_AFTER),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        None,
                        "the request took longer than the server allows \
                         (--db-statement-timeout-ms) and changed nothing; retry later",
                    )
                }
            }
            // Its client went away: nobody reads this answer.
            Error::Storage(S::Cancelled) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the request was cancelled",
            ),
            // A row that does not decode (`Corrupt`) is ours: logged with the row, never sent.
            Error::Storage(s) => ApiError::internal(&s),
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> ApiError {
        Error::Storage(e).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Missing => ApiError {
                challenge: Some("Bearer realm=\"scimitar\""),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "authentication required: send Authorization: Bearer <token>",
                )
            },
            AuthError::Invalid => ApiError {
                challenge: Some("Bearer realm=\"scimitar\", error=\"invalid_token\""),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "the bearer token is not valid",
                )
            },
            AuthError::ReadOnly => ApiError::new(StatusCode::FORBIDDEN, None, e.to_string()),
            AuthError::Storage(s) => Error::Storage(s).into(),
        }
    }
}

impl ApiError {
    /// The RFC 7644 §3.12 error body (also a bulk operation's `response`).
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t.as_str());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = self.body();
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)));
        if let Some(c) = self.challenge {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(c)));
        }
        if let Some(s) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        resp.body(body.to_string())
    }
}

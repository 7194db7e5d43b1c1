//! Request extraction: JSON bodies and query parameters, each failing with a SCIM error,
//! never actix's plain-text bodies. (The credential is the front door's: `front`.)

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use super::error::ApiError;
use super::AppState;
use crate::scim::error::{ScimError, ScimType};

/// A JSON request body, size-limited, as `application/scim+json` or `application/json`.
pub struct ScimBody(pub Value);

impl FromRequest for ScimBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ScimBody, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.max_body_bytes)
            .unwrap_or(1 << 20);
        let body = read_json(req, payload, limit);
        Box::pin(async move { body.await.map(ScimBody) })
    }
}

/// Reads a JSON body of at most `limit` bytes, as `application/scim+json` or
/// `application/json` (or with no Content-Type).
fn read_json(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> impl Future<Output = Result<Value, ApiError>> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if let Some(ct) = &content_type {
            if ct != "application/scim+json" && ct != "application/json" {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    format!("Content-Type `{ct}` is not accepted; send application/scim+json or application/json"),
                ));
            }
        }
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        };
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::from(ScimError::invalid_syntax(format!(
                    "reading the body failed: {e}"
                )))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if body.is_empty() {
            return Err(ScimError::invalid_syntax("the request needs a JSON body").into());
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))?;
        if has_nul(&value) {
            // Postgres text cannot hold U+0000; refuse it on both backends alike.
            return Err(
                ScimError::invalid_value("strings may not contain the character U+0000").into(),
            );
        }
        Ok(value)
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Query parameters, with names matched case-insensitively (clients vary: `startIndex`,
/// `startindex`).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from_request(req: &HttpRequest) -> Result<Params, ScimError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|e| ScimError::invalid_syntax(format!("malformed query string: {e}")))?;
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ScimError::invalid_value(
                "query parameters may not contain the character U+0000",
            ));
        }
        Ok(Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// An integer parameter; anything else is `invalidValue`.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ScimError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ScimError::new(
                    ScimType::InvalidValue,
                    format!("`{name}` must be an integer, not `{v}`"),
                )
            }),
        }
    }

    /// A text parameter, owned.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

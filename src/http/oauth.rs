//! `POST /oauth/token`: the OAuth 2.0 token endpoint for the client credentials grant
//! (RFC 6749 §4.4). The client authenticates with HTTP Basic or with `client_id` and
//! `client_secret` in the form body (§2.3.1), and gets a short-lived access token (a JWT the
//! server signs, see `auth::oauth`) that the SCIM endpoints accept as a bearer token. Errors
//! are RFC 6749 §5.2 JSON bodies, not SCIM ones: OAuth clients read those.

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{PartialSchema, ToSchema};

use super::front::rate_key;
use super::openapi::header;
use super::AppState;
use crate::auth::oauth::{self, Grant};
use crate::auth::AuthError;
use crate::scim::time::now_micros;

/// The form of a token request (RFC 6749 §4.4.2, §2.3.1). Parsed by hand (`parse_form`): a
/// repeated parameter is an error there.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "documents the form; `parse_form` reads it by hand"
)]
pub struct TokenRequest {
    /// `client_credentials`.
    #[schema(examples("client_credentials"))]
    grant_type: String,
    /// The client id, when not sent with HTTP Basic (then `client_secret` too).
    client_id: Option<String>,
    /// The client secret, when not sent with HTTP Basic. Never both methods.
    client_secret: Option<String>,
    /// Accepted and ignored: the client's own scope is granted.
    scope: Option<String>,
}

/// An access token (RFC 6749 §5.1): a JWT the SCIM endpoints accept as a bearer token.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`.
    #[schema(value_type = String, examples("Bearer"))]
    pub token_type: &'static str,
    /// Seconds until it expires.
    #[schema(examples(3600))]
    pub expires_in: i64,
    /// The client's scope: `read`, `write` or `admin`.
    #[schema(value_type = String, examples("write"))]
    pub scope: &'static str,
}

/// An RFC 6749 §5.2 error (`invalid_request`, `invalid_client`, `unsupported_grant_type`,
/// `rate_limited`, `server_error`).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    #[schema(value_type = String, examples("invalid_client"))]
    pub error: &'static str,
    pub error_description: String,
}

/// `POST /oauth/token` in the OpenAPI document, and the schemas it needs.
pub fn described(schemas: &mut Vec<(String, RefOr<Schema>)>) -> (&'static str, Operation) {
    for (name, schema) in [
        (TokenRequest::name(), TokenRequest::schema()),
        (TokenResponse::name(), TokenResponse::schema()),
        (OAuthErrorBody::name(), OAuthErrorBody::schema()),
    ] {
        schemas.push((name.into(), schema));
    }
    let content = |name: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(name)))
            .build()
    };
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", content("OAuthErrorBody"))
    };
    let op = super::openapi::operation_named(
        "issueToken",
        "oauth",
        "An access token for a SCIM client (client credentials grant)",
        Some("RFC 6749 §4.4. The client authenticates with HTTP Basic or with `client_id` and `client_secret` in the body, not both. The token is a JWT valid for one hour that `/scim/v2` accepts as a bearer token while the client exists and is not revoked. Answers carry `Cache-Control: no-store`."),
    )
        .securities(Some([
            SecurityRequirement::new("basicAuth", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/x-www-form-urlencoded", content("TokenRequest"))
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The access token.")
                .content("application/json", content("TokenResponse")),
        )
        .response(
            "400",
            error("`invalid_request` (a missing or repeated parameter, both authentication methods, not a form) or `unsupported_grant_type`."),
        )
        .response(
            "401",
            error("`invalid_client`: the client is unknown, revoked, or its secret is wrong.")
                .header("WWW-Authenticate", header(String::schema(), "`Basic realm=\"scimitar\"`.")),
        )
        .response("413", error("The body is over 16 KiB (`invalid_request`)."))
        .response(
            "429",
            error("`rate_limited`: the client is over `--rate-limit`.")
                .header("Retry-After", header(i64::schema(), "Seconds to wait before retrying.")),
        )
        .response("500", error("`server_error` (details only in the server log)."))
        .build();
    ("/oauth/token", op)
}

/// A token request is a handful of short parameters.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// Answer with `WWW-Authenticate: Basic` (the client tried HTTP Basic, §5.2).
    basic_challenge: bool,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn server(e: &dyn std::error::Error) -> OAuthError {
        log::error!("token endpoint: {}", crate::errors::chain(e));
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal server error; the server log has the details",
        )
    }

    fn response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        no_store(&mut r);
        if self.basic_challenge {
            r.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scimitar\""),
            ));
        }
        if let Some(s) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        r.json(OAuthErrorBody {
            error: self.code,
            error_description: self.description.clone(),
        })
    }
}

/// RFC 6749 §5.1: token responses are never cached.
fn no_store(r: &mut actix_web::HttpResponseBuilder) {
    r.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    r.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749 §2.3.1 encodes the
/// Basic credentials this way).
fn form_decode(s: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
    pairs.into_iter().next().map(|(_, v)| v)
}

/// `Authorization: Basic base64(id:secret)`, when present: Some(Ok) decoded, Some(Err)
/// malformed.
fn basic_credentials(req: &HttpRequest) -> Option<Result<(String, String), ()>> {
    let h = req.headers().get(header::AUTHORIZATION)?;
    let parse = || -> Option<(String, String)> {
        let (scheme, value) = h.to_str().ok()?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
        let (id, secret) = raw.split_once(':')?;
        Some((form_decode(id)?, form_decode(secret)?))
    };
    Some(parse().ok_or(()))
}

/// The form parameters; a repeated one is an error (RFC 6749 §3.2).
fn parse_form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|_| OAuthError::invalid_request("the body is not a valid form"))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{k}` is repeated"
            )));
        }
    }
    Ok(out)
}

/// POST /oauth/token.
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    match issue(state, req, body).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

async fn issue(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let body = body.to_bytes_limited(MAX_FORM_BYTES).await.map_err(|_| {
        OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body is larger than {MAX_FORM_BYTES} bytes"),
        )
    })?;
    let body = body.map_err(|_| OAuthError::invalid_request("reading the body failed"))?;
    let mut form = parse_form(&req, &body)?;
    let basic = basic_credentials(&req);
    let invalid_client = |description: &str| OAuthError {
        basic_challenge: true,
        ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    };
    match form.get("grant_type").map(String::as_str) {
        None => return Err(OAuthError::invalid_request("`grant_type` is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ))
        }
    }
    let form_secret = form.remove("client_secret");
    let (client_id, secret) = match (basic, form_secret) {
        (Some(_), Some(_)) => {
            // §2.3: a client MUST NOT use more than one authentication method.
            return Err(OAuthError::invalid_request(
                "send the client credentials either with HTTP Basic or in the body, not both",
            ));
        }
        (Some(Err(())), None) => return Err(invalid_client("malformed HTTP Basic credentials")),
        (Some(Ok((id, secret))), None) => {
            if form.get("client_id").is_some_and(|f| *f != id) {
                return Err(OAuthError::invalid_request(
                    "`client_id` differs from the HTTP Basic user",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => match form.remove("client_id") {
            Some(id) => (id, secret),
            None => return Err(OAuthError::invalid_request("`client_id` is required")),
        },
        (None, None) => return Err(OAuthError {
            basic_challenge: true,
            ..OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required (HTTP Basic, or client_id and client_secret)",
            )
        }),
    };
    let svc = state.service.clone();
    let limiter = state.rate_limiter.clone();
    // One blocking hop, one connection: the grant is a use case of `auth::oauth`.
    let result = web::block(move || {
        let mut conn = svc.conn()?;
        oauth::grant(
            &mut conn,
            &client_id,
            &secret,
            now_micros(),
            |tenant, id| {
                // The same bucket as the client's access tokens.
                match &limiter {
                    Some(limiter) => limiter.check(&rate_key(tenant, Some(id))),
                    None => Ok(()),
                }
            },
        )
    })
    .await
    .map_err(|e| OAuthError::server(&e))?;
    let issued = match result {
        Ok(Grant::Issued(issued)) => issued,
        Ok(Grant::Throttled(retry_after)) => {
            return Err(OAuthError {
                retry_after: Some(retry_after),
                ..OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests for this client; retry after {retry_after} s"),
                )
            })
        }
        Err(AuthError::Storage(e)) => return Err(OAuthError::server(&e)),
        Err(_) => return Err(invalid_client("client authentication failed")),
    };
    let mut r = HttpResponse::Ok();
    no_store(&mut r);
    Ok(r.json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: issued.scope,
    }))
}

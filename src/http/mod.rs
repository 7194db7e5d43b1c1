//! The HTTP surface (actix-web): routes, extraction and error mapping. A handler extracts,
//! calls one provisioning function on the blocking pool, and maps the result.

pub mod api;
pub mod console;
pub mod error;
pub mod extract;
pub mod oauth;
pub mod ratelimit;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::provisioning::{self, IfMatch, ListQuery, Output, Service};
use crate::scim::projection::Projection;
use crate::scim::resource::etag;
use crate::scim::schema::{Rtype, LIST_RESPONSE, SEARCH_REQUEST};

pub use error::{ApiError, SCIM_JSON};
use extract::{Auth, Params, ScimBody};

/// What every request shares.
pub struct AppState {
    pub service: Service,
    /// SHA-256 of `SCIMITAR_BOOTSTRAP_TOKEN`, when set.
    pub bootstrap_hash: Option<String>,
    pub max_body_bytes: usize,
    /// Per-credential request rate limit (`--rate-limit`), when on.
    pub rate_limiter: Option<std::sync::Arc<ratelimit::RateLimiter>>,
    /// The admin console's settings (cookies, sign-in limit).
    pub console: console::ConsoleState,
}

/// The routes. `main` and the tests both build the app with this.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .service(
                web::resource("/oauth/token")
                    .route(web::post().to(oauth::token))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(web::scope("/api/v1").configure(api::routes))
            .service(console::scope())
            .service(
                web::scope("/scim/v2")
                    .service(
                        web::resource("/ServiceProviderConfig")
                            .route(web::get().to(service_provider_config))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/ResourceTypes")
                            .route(web::get().to(resource_types))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/ResourceTypes/{id}")
                            .route(web::get().to(resource_type))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/Schemas")
                            .route(web::get().to(schemas))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/Schemas/{id}")
                            .route(web::get().to(schema))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/Bulk")
                            .route(web::post().to(bulk))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/.search")
                            .route(web::post().to(search_root))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/{rtype:Users|Groups}/.search")
                            .route(web::post().to(search))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/{rtype:Users|Groups}")
                            .route(web::get().to(list))
                            .route(web::post().to(create))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/{rtype:Users|Groups}/{id}")
                            .route(web::get().to(get))
                            .route(web::put().to(replace))
                            .route(web::patch().to(patch))
                            .route(web::delete().to(delete))
                            .default_service(web::to(method_not_allowed)),
                    ),
            )
            .default_service(web::to(not_found));
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}

fn rtype(segment: &str) -> Rtype {
    if segment == "Groups" {
        Rtype::Group
    } else {
        Rtype::User
    }
}

/// Runs blocking provisioning work off the async executor.
async fn run<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> provisioning::Result<T> + Send + 'static,
{
    web::block(f)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
        .body(body.to_string())
}

fn resource_response(status: StatusCode, out: &Output) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)));
    resp.insert_header((header::ETAG, etag(out.version)));
    if status == StatusCode::CREATED {
        resp.insert_header((header::LOCATION, out.location.clone()));
    }
    resp.body(out.resource.to_string())
}

fn projection(state: &AppState, rt: Rtype, params: &Params) -> Result<Projection, ApiError> {
    Ok(Projection::parse(
        &state.service.registry,
        rt,
        params.get("attributes"),
        params.get("excludedAttributes"),
    )?)
}

fn if_match(req: &HttpRequest) -> Option<IfMatch> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(IfMatch::parse)
}

async fn create(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let rt = rtype(&path);
    let proj = projection(&state, rt, &Params::from_request(&req)?)?;
    let svc = state.service.clone();
    let out = run(move || svc.create(&p, rt, &body, &proj)).await?;
    Ok(resource_response(StatusCode::CREATED, &out))
}

async fn get(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (seg, id) = path.into_inner();
    let rt = rtype(&seg);
    let proj = projection(&state, rt, &Params::from_request(&req)?)?;
    let svc = state.service.clone();
    let out = run(move || svc.get(&p, rt, &id, &proj)).await?;
    // If-None-Match (RFC 7232 §3.2): 304 when the client's copy is current.
    let current = etag(out.version);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim() == current || t.trim() == current.trim_start_matches("W/"))
        });
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, current))
            .finish());
    }
    Ok(resource_response(StatusCode::OK, &out))
}

async fn list(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rt = rtype(&path);
    let params = Params::from_request(&req)?;
    let q = ListQuery {
        filter: params.get("filter").map(str::to_string),
        start_index: params.int("startIndex")?,
        count: params.int("count")?,
        attributes: params.get("attributes").map(str::to_string),
        excluded_attributes: params.get("excludedAttributes").map(str::to_string),
        sort_by: params.get("sortBy").map(str::to_string),
        sort_order: params.get("sortOrder").map(str::to_string),
        cursor: params.get("cursor").map(str::to_string),
    };
    let svc = state.service.clone();
    let body = run(move || svc.list(&p, &[rt], &q)).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

/// POST /Bulk (RFC 7644 §3.7): always 200 with a BulkResponse once the request itself is
/// acceptable; each operation carries its own status (errors as SCIM error bodies, mapped by
/// the same table as single requests).
async fn bulk(
    state: web::Data<AppState>,
    Auth(p): Auth,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    use crate::provisioning::bulk::{Done, BULK_RESPONSE};
    let svc = state.service.clone();
    let outcomes = run(move || svc.bulk(&p, &body)).await?;
    let ops: Vec<Value> = outcomes
        .into_iter()
        .map(|o| {
            let mut op = json!({"method": o.method});
            if let Some(b) = o.bulk_id {
                op["bulkId"] = json!(b);
            }
            match o.result {
                Ok(Done::Resource { status, output }) => {
                    op["location"] = json!(output.location);
                    op["version"] = json!(etag(output.version));
                    op["status"] = json!(status.to_string());
                }
                Ok(Done::NoContent { location }) => {
                    op["location"] = json!(location);
                    op["status"] = json!("204");
                }
                Err(e) => {
                    let api = ApiError::from(e);
                    op["status"] = json!(api.status.as_u16().to_string());
                    op["response"] = api.body();
                }
            }
            op
        })
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [BULK_RESPONSE], "Operations": ops}),
    ))
}

async fn search(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let rt = rtype(&path);
    let q = search_request(&body)?;
    let svc = state.service.clone();
    let body = run(move || svc.list(&p, &[rt], &q)).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search_root(
    state: web::Data<AppState>,
    Auth(p): Auth,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let q = search_request(&body)?;
    let svc = state.service.clone();
    let body = run(move || svc.list(&p, &[Rtype::User, Rtype::Group], &q)).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

/// A SearchRequest body (RFC 7644 §3.4.3). `attributes` may be an array or a
/// comma-separated string.
fn search_request(body: &Value) -> Result<ListQuery, ApiError> {
    use crate::scim::error::ScimError;
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let schemas_ok = field("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(SEARCH_REQUEST)));
    if !schemas_ok {
        return Err(
            ScimError::invalid_syntax(format!("`schemas` must be [\"{SEARCH_REQUEST}\"]")).into(),
        );
    }
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(a)) => {
                let parts: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
                parts.map(|p| Some(p.join(","))).ok_or_else(|| {
                    ScimError::invalid_value(format!("`{name}` must be a list of attribute names"))
                        .into()
                })
            }
            Some(_) => Err(ScimError::invalid_value(format!("`{name}` has the wrong type")).into()),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ScimError::invalid_value(format!("`{name}` must be an integer")).into()
            }),
        }
    };
    if matches!(field("filter"), Some(v) if !v.is_string() && !v.is_null()) {
        return Err(ScimError::invalid_filter("`filter` must be a string").into());
    }
    Ok(ListQuery {
        filter: text("filter")?,
        start_index: int("startIndex")?,
        count: int("count")?,
        attributes: text("attributes")?,
        excluded_attributes: text("excludedAttributes")?,
        sort_by: text("sortBy")?,
        sort_order: text("sortOrder")?,
        cursor: text("cursor")?,
    })
}

async fn replace(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let (seg, id) = path.into_inner();
    let rt = rtype(&seg);
    let proj = projection(&state, rt, &Params::from_request(&req)?)?;
    let m = if_match(&req);
    let svc = state.service.clone();
    let out = run(move || svc.replace(&p, rt, &id, &body, m.as_ref(), &proj)).await?;
    Ok(resource_response(StatusCode::OK, &out))
}

async fn patch(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let (seg, id) = path.into_inner();
    let rt = rtype(&seg);
    let proj = projection(&state, rt, &Params::from_request(&req)?)?;
    let m = if_match(&req);
    let svc = state.service.clone();
    match run(move || svc.patch(&p, rt, &id, &body, m.as_ref(), &proj)).await? {
        Some(out) => Ok(resource_response(StatusCode::OK, &out)),
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

async fn delete(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (seg, id) = path.into_inner();
    let rt = rtype(&seg);
    let m = if_match(&req);
    let svc = state.service.clone();
    run(move || svc.delete(&p, rt, &id, m.as_ref())).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------
// Discovery (RFC 7644 §4)

async fn service_provider_config(state: web::Data<AppState>, _auth: Auth) -> HttpResponse {
    let s = &state.service.settings;
    let base = &s.base_url;
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/scimitar/scimitar#readme",
            "patch": {"supported": true},
            // maxPayloadSize is the limit on every request body (413 above it), a bulk one
            // included; RFC 7643 §5 has no other field for it, and validators refuse extra
            // attributes here (README, "Abuse limits").
            "bulk": {
                "supported": true,
                "maxOperations": s.bulk.max_operations,
                "maxPayloadSize": state.max_body_bytes
            },
            "filter": {"supported": true, "maxResults": s.max_page_size},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            // RFC 9865 §5: both index and cursor paging.
            "pagination": {
                "cursor": true,
                "index": true,
                "defaultPaginationMethod": "index",
                "defaultPageSize": s.default_page_size,
                "maxPageSize": s.max_page_size,
                "cursorTimeout": crate::provisioning::cursor::CURSOR_TIMEOUT_SECS
            },
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A bearer token (RFC 6750): a token from `scimitar token create`, an access token from POST /oauth/token (client credentials, RFC 6749 §4.4), or a JWT from the tenant's configured issuer.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": true
            }, {
                "type": "oauth2",
                "name": "OAuth 2.0 client credentials",
                "description": "POST /oauth/token with grant_type=client_credentials and a client from `scimitar client create`.",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6749#section-4.4"
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{base}/ServiceProviderConfig")
            }
        }),
    )
}

fn with_location(mut doc: Value, base: &str, kind: &str, id: &str) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "meta".into(),
            json!({"resourceType": kind, "location": format!("{base}/{kind}s/{id}")}),
        );
    }
    doc
}

fn list_of(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn resource_types(state: web::Data<AppState>, _auth: Auth) -> HttpResponse {
    let svc = &state.service;
    let items = svc
        .registry
        .resource_types()
        .iter()
        .map(|rt| {
            with_location(
                rt.document.clone(),
                &svc.settings.base_url,
                "ResourceType",
                &rt.id,
            )
        })
        .collect();
    scim_json(StatusCode::OK, &list_of(items))
}

async fn resource_type(
    state: web::Data<AppState>,
    _auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.service;
    let rt = svc
        .registry
        .resource_types()
        .iter()
        .find(|rt| rt.id == *id)
        .ok_or_else(|| ApiError::not_found(format!("no resource type `{id}`")))?;
    Ok(scim_json(
        StatusCode::OK,
        &with_location(
            rt.document.clone(),
            &svc.settings.base_url,
            "ResourceType",
            &rt.id,
        ),
    ))
}

async fn schemas(state: web::Data<AppState>, _auth: Auth) -> HttpResponse {
    let svc = &state.service;
    let items = svc
        .registry
        .schemas()
        .iter()
        .map(|s| with_location(s.document.clone(), &svc.settings.base_url, "Schema", &s.id))
        .collect();
    scim_json(StatusCode::OK, &list_of(items))
}

async fn schema(
    state: web::Data<AppState>,
    _auth: Auth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.service;
    let s = svc
        .registry
        .schema(&id)
        .ok_or_else(|| ApiError::not_found(format!("no schema `{id}`")))?;
    Ok(scim_json(
        StatusCode::OK,
        &with_location(s.document.clone(), &svc.settings.base_url, "Schema", &s.id),
    ))
}

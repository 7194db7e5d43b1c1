//! The SCIM resource endpoints (`/scim/v2/Users`, `/Groups`, `/.search`, `/Bulk`, RFC 7644
//! §3): each handler reads the request, calls one use case through the front door and
//! answers `application/scim+json` with the ETag and Location headers.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::{ApiError, SCIM_JSON};
use super::extract::{Params, ScimBody};
use super::front::{enter, Access, Bearer};
use super::AppState;
use crate::provisioning::bulk::BULK_RESPONSE;
use crate::provisioning::list::ListQuery;
use crate::provisioning::resources::{Change, Done, IfMatch, Output, Target};
use crate::provisioning::Service;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use crate::scim::resource::etag;
use crate::scim::schema::{Rtype, SEARCH_REQUEST};

fn rtype(segment: &str) -> Rtype {
    if segment == "Groups" {
        Rtype::Group
    } else {
        Rtype::User
    }
}

pub(super) fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    scim_text(status, body.to_string())
}

/// An `application/scim+json` answer whose JSON text is already written.
fn scim_text(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
        .body(body)
}

fn resource_response(status: StatusCode, out: &Output) -> HttpResponse {
    let location = (status == StatusCode::CREATED).then_some(out.location.as_str());
    resource_text(status, out.version, location, out.resource.to_string())
}

/// A resource's answer from its JSON text: its ETag, and its Location when given.
fn resource_text(
    status: StatusCode,
    version: i64,
    location: Option<&str>,
    body: String,
) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)));
    resp.insert_header((header::ETAG, etag(version)));
    if let Some(l) = location {
        resp.insert_header((header::LOCATION, l.to_string()));
    }
    resp.body(body)
}

/// A write's answer: the resource with its ETag (and Location when created), or 204.
fn answer(done: Done) -> HttpResponse {
    match done {
        Done::Resource { status, output } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            resource_response(status, &output)
        }
        Done::NoContent { .. } => HttpResponse::NoContent().finish(),
    }
}

/// `attributes` / `excludedAttributes` of the query string (RFC 7644 §3.9).
fn projection(
    svc: &Service,
    rt: Rtype,
    params: Result<Params, ScimError>,
) -> Result<Projection, ScimError> {
    let params = params?;
    Projection::parse(
        &svc.registry,
        rt,
        params.get("attributes"),
        params.get("excludedAttributes"),
    )
}

pub async fn create(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let rt = rtype(&path);
    let params = Params::from_request(&req);
    let done = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        let proj = projection(svc, rt, params)?;
        svc.change(conn, p, &Change::Create(rt, body), &proj)
    })
    .await?;
    Ok(answer(done))
}

pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (seg, id) = path.into_inner();
    let rt = rtype(&seg);
    let params = Params::from_request(&req);
    let out = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        let proj = projection(svc, rt, params)?;
        svc.get(conn, p, rt, &id, &proj)
    })
    .await?;
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
    Ok(resource_text(StatusCode::OK, out.version, None, out.text))
}

/// A list's query string as a `ListQuery`.
fn list_query(params: Result<Params, ScimError>) -> Result<ListQuery, ScimError> {
    let params = params?;
    Ok(ListQuery {
        filter: params.text("filter"),
        start_index: params.int("startIndex")?,
        count: params.int("count")?,
        attributes: params.text("attributes"),
        excluded_attributes: params.text("excludedAttributes"),
        sort_by: params.text("sortBy"),
        sort_order: params.text("sortOrder"),
        cursor: params.text("cursor"),
    })
}

pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rt = rtype(&path);
    let params = Params::from_request(&req);
    let body = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        svc.list(conn, p, &[rt], &list_query(params)?)
    })
    .await?;
    Ok(scim_text(StatusCode::OK, body.to_json()))
}

/// POST /Bulk (RFC 7644 §3.7): always 200 with a BulkResponse once the request itself is
/// acceptable; each operation carries its own status (errors as SCIM error bodies, mapped by
/// the same table as single requests).
pub async fn bulk(
    state: web::Data<AppState>,
    bearer: Bearer,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let outcomes = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        svc.bulk(conn, p, &body)
    })
    .await?;
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

/// POST /.search (Users and Groups) and /Users/.search, /Groups/.search (RFC 7644 §3.4.3).
pub async fn search(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let types = match req.match_info().get("rtype") {
        Some(seg) => vec![rtype(seg)],
        None => Rtype::ALL.to_vec(),
    };
    let body = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        svc.list(conn, p, &types, &search_request(&body)?)
    })
    .await?;
    Ok(scim_text(StatusCode::OK, body.to_json()))
}

/// A SearchRequest body (RFC 7644 §3.4.3). `attributes` may be an array or a
/// comma-separated string.
fn search_request(body: &Value) -> Result<ListQuery, ScimError> {
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
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must be [\"{SEARCH_REQUEST}\"]"
        )));
    }
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(a)) => {
                let parts: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
                parts.map(|p| Some(p.join(","))).ok_or_else(|| {
                    ScimError::invalid_value(format!("`{name}` must be a list of attribute names"))
                })
            }
            Some(_) => Err(ScimError::invalid_value(format!(
                "`{name}` has the wrong type"
            ))),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        match field(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("`{name}` must be an integer"))),
        }
    };
    if matches!(field("filter"), Some(v) if !v.is_string() && !v.is_null()) {
        return Err(ScimError::invalid_filter("`filter` must be a string"));
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

/// The resource the path names, with the request's `If-Match`.
fn target(req: &HttpRequest, path: web::Path<(String, String)>) -> Target {
    let (seg, id) = path.into_inner();
    Target {
        rt: rtype(&seg),
        id,
        if_match: req
            .headers()
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(IfMatch::parse),
    }
}

/// PUT (RFC 7644 §3.5.1) and PATCH (§3.5.2): the same request parts, the method picks the
/// use case. A PATCH may answer 204 (see `Service::patch`).
pub async fn change(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse, ApiError> {
    let t = target(&req, path);
    let params = Params::from_request(&req);
    let put = req.method() == Method::PUT;
    let done = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        let proj = projection(svc, t.rt, params)?;
        let change = if put {
            Change::Replace(t, body)
        } else {
            Change::patch(t, &body, p)?
        };
        svc.change(conn, p, &change, &proj)
    })
    .await?;
    Ok(answer(done))
}

pub async fn delete(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let t = target(&req, path);
    let done = enter(&state, bearer, Access::Scim, move |svc, conn, p| {
        svc.change(conn, p, &Change::Delete(t), &Projection::default())
    })
    .await?;
    Ok(answer(done))
}

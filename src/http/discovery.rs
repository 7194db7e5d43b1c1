//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, from the
//! schema registry and the server's settings. Authenticated like every SCIM endpoint.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::front::{enter, Access, Bearer};
use super::scim::scim_json;
use super::AppState;
use crate::scim::schema::LIST_RESPONSE;

/// Lets the caller in (or answers why not); discovery needs nothing else of the database.
async fn admit(state: &web::Data<AppState>, bearer: Bearer) -> Result<(), ApiError> {
    enter(state, bearer, Access::Scim, |_, _, _| Ok(())).await
}

pub async fn service_provider_config(
    state: web::Data<AppState>,
    bearer: Bearer,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
    let s = &state.service.settings;
    let base = &s.base_url;
    Ok(scim_json(
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
    ))
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

pub async fn resource_types(
    state: web::Data<AppState>,
    bearer: Bearer,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
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
    Ok(scim_json(StatusCode::OK, &list_of(items)))
}

pub async fn resource_type(
    state: web::Data<AppState>,
    bearer: Bearer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
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

pub async fn schemas(state: web::Data<AppState>, bearer: Bearer) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
    let svc = &state.service;
    let items = svc
        .registry
        .schemas()
        .iter()
        .map(|s| with_location(s.document.clone(), &svc.settings.base_url, "Schema", &s.id))
        .collect();
    Ok(scim_json(StatusCode::OK, &list_of(items)))
}

pub async fn schema(
    state: web::Data<AppState>,
    bearer: Bearer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
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

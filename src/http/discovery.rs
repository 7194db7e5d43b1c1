//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, from the
//! schema registry and the server's settings. Authenticated like every SCIM endpoint.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::front::{enter, Access, Bearer};
use super::scim::scim_json;
use super::AppState;
use crate::scim::schema::{Registry, LIST_RESPONSE};

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

/// The documents listed by id (RFC 7644 §4): resource types or schemas, as the path's
/// first segment names them.
#[derive(Clone, Copy)]
enum Kind {
    ResourceType,
    Schema,
}

impl Kind {
    fn of(segment: &str) -> Kind {
        if segment == "Schemas" {
            Kind::Schema
        } else {
            Kind::ResourceType
        }
    }

    /// The `meta.resourceType` of its documents.
    fn name(self) -> &'static str {
        match self {
            Kind::ResourceType => "ResourceType",
            Kind::Schema => "Schema",
        }
    }

    /// Every document of this kind, with its id.
    fn all(self, r: &Registry) -> Vec<(&str, &Value)> {
        match self {
            Kind::ResourceType => r
                .resource_types()
                .iter()
                .map(|t| (t.id.as_str(), &t.document))
                .collect(),
            Kind::Schema => r
                .schemas()
                .iter()
                .map(|s| (s.id.as_str(), &s.document))
                .collect(),
        }
    }

    /// The document `id` names: a resource type by its exact id, a schema by its URI in any
    /// case.
    fn find<'a>(self, r: &'a Registry, id: &str) -> Result<(&'a str, &'a Value), ApiError> {
        match self {
            Kind::ResourceType => r
                .resource_types()
                .iter()
                .find(|t| t.id == id)
                .map(|t| (t.id.as_str(), &t.document))
                .ok_or_else(|| ApiError::not_found(format!("no resource type `{id}`"))),
            Kind::Schema => r
                .schema(id)
                .map(|s| (s.id.as_str(), &s.document))
                .ok_or_else(|| ApiError::not_found(format!("no schema `{id}`"))),
        }
    }

    /// A document as served: with its `meta` (its kind and location).
    fn served(self, base: &str, id: &str, doc: &Value) -> Value {
        let mut doc = doc.clone();
        if let Some(obj) = doc.as_object_mut() {
            let kind = self.name();
            obj.insert(
                "meta".into(),
                json!({"resourceType": kind, "location": format!("{base}/{kind}s/{id}")}),
            );
        }
        doc
    }
}

/// GET /ResourceTypes, /Schemas.
pub async fn list(
    state: web::Data<AppState>,
    bearer: Bearer,
    kind: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
    let (kind, svc) = (Kind::of(&kind), &state.service);
    let base = &svc.settings.base_url;
    let items: Vec<Value> = kind
        .all(&svc.registry)
        .into_iter()
        .map(|(id, doc)| kind.served(base, id, doc))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    ))
}

/// GET /ResourceTypes/{id}, /Schemas/{id}.
pub async fn get(
    state: web::Data<AppState>,
    bearer: Bearer,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, bearer).await?;
    let (kind, id) = path.into_inner();
    let (kind, svc) = (Kind::of(&kind), &state.service);
    let (id, doc) = kind.find(&svc.registry, &id)?;
    Ok(scim_json(
        StatusCode::OK,
        &kind.served(&svc.settings.base_url, id, doc),
    ))
}

//! The OpenAPI 3.1 document of `/api/v1` and `/oauth/token`, generated from the routes
//! (`api::routes`, each with its `Op`) and the wire types they take and answer (their
//! `utoipa::ToSchema` derives). Served at `GET /api/v1/openapi.json` and committed as
//! `docs/openapi.json`; a test fails when the two differ. To regenerate the file:
//! `SCIMITAR_WRITE_OPENAPI=1 cargo test --lib openapi`.

use std::borrow::Cow;
use std::sync::OnceLock;

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref,
    RefOr, Required,
};
use utoipa::ToSchema;

/// A schema the document names, and the components it needs (its type's `ToSchema`).
#[derive(Clone, Copy)]
pub struct Named {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into(), T::schema()));
    T::schemas(schemas);
}

/// The schema of `T`.
pub const fn named<T: ToSchema>() -> Named {
    Named {
        name: T::name,
        collect: collect::<T>,
    }
}

impl Named {
    fn reference(&self) -> Ref {
        Ref::from_schema_name((self.name)())
    }
}

/// What a successful call answers.
#[derive(Clone, Copy)]
pub enum Answer {
    /// A JSON body: status, description, schema.
    Json(u16, &'static str, Named),
    /// `{"items": [...], "nextCursor"}` of `item`s, as the component `name`: paged by `limit`
    /// and `cursor` when `paged`, else whole (`nextCursor` always null).
    List {
        name: &'static str,
        item: Named,
        description: &'static str,
        paged: bool,
    },
    /// 204, no body.
    Empty(&'static str),
}

/// A query parameter of a route.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Limit,
    Cursor,
    State,
    Role,
    Group,
    /// A SCIM filter over the account's user.
    Filter,
    /// A delivery's status.
    Status,
    After,
    Wait,
}

/// What the document says of one operation. Every operation may answer 401, 403, 429 and
/// the default error; one with a body also 400, 413 and 415; `errors` adds the others.
#[derive(Clone, Copy)]
pub struct Op {
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: Option<&'static str>,
    /// What `{id}` in the path names.
    pub path_id: Option<&'static str>,
    pub body: Option<Named>,
    pub query: &'static [Query],
    pub answer: Answer,
    pub errors: &'static [u16],
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// An error response of the API: `{"status", "error", "detail"}`.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        json_content(Ref::from_schema_name("Error")),
    )
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer)
}

/// An integer from `min` to `max`, `default` when absent.
fn bounded(min: i64, max: i64, default: i64) -> ObjectBuilder {
    integer()
        .minimum(Some(min))
        .maximum(Some(max))
        .default(Some(default.into()))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A response header.
pub(super) fn header(schema: impl Into<RefOr<Schema>>, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// An optional query parameter.
fn query_param(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An operation's identity: its id, tag, summary and description.
pub fn operation_named(
    id: &str,
    tag: &str,
    summary: &str,
    description: Option<&str>,
) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .tag(tag)
        .description(description)
}

fn query(q: Query) -> RefOr<Parameter> {
    let p = |name: &str, description: &str, schema: ObjectBuilder| {
        RefOr::T(query_param(name, description, schema))
    };
    match q {
        Query::Limit => RefOr::Ref(Ref::new("#/components/parameters/limit")),
        Query::Cursor => RefOr::Ref(Ref::new("#/components/parameters/cursor")),
        Query::State => p(
            "state",
            "Only accounts in this state (another value: 400).",
            string().enum_values(Some(["pending", "active", "suspended", "removed"])),
        ),
        Query::Role => p("role", "Role id: only accounts holding it.", string()),
        Query::Group => p(
            "group",
            "SCIM group id: only accounts whose user is a member.",
            string(),
        ),
        Query::Filter => p(
            "filter",
            "A SCIM filter over the user, as a rule's (same parser and semantics as `/scim/v2/Users?filter=`; group membership is the `group` parameter), e.g. `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\"`. A bad filter gives 400 naming the position.",
            string(),
        ),
        Query::Status => p(
            "status",
            "Only deliveries in this status (another value: 400).",
            string().enum_values(Some(["pending", "delivered", "dead"])),
        ),
        Query::After => p(
            "after",
            "A seq; events after it.",
            integer().minimum(Some(0)).default(Some(0.into())),
        ),
        Query::Wait => p(
            "wait",
            "Seconds to hold the request while no event is there.",
            bounded(0, 60, 0),
        ),
    }
}

/// The components every document has: security schemes, error responses, list parameters.
fn base_components() -> ComponentsBuilder {
    ComponentsBuilder::new()
        .security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A credential of scope `admin` (`scimitar token create --tenant T --scope admin`, or an OAuth client / JWT issuer with scope `admin`).",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "consoleSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::front::COOKIE,
                "The admin console's session (`POST /admin/session`; `__Host-scimitar_session` when the base URL is https), instead of a bearer credential. State-changing requests must also send the session's CSRF token in `X-CSRF-Token` (403 without it).",
            ))),
        )
        .security_scheme(
            "basicAuth",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An OAuth client of `scimitar client create`: its id and secret (RFC 6749 §2.3.1).",
                    ))
                    .build(),
            ),
        )
        .response("BadRequest", error_response("Bad request (`bad_request`).").build())
        .response(
            "Unauthorized",
            error_response("No valid credential (`unauthorized`).")
                .header(
                    "WWW-Authenticate",
                    header(
                        string(),
                        "`Bearer realm=\"scimitar\"` (with `error=\"invalid_token\"` when a token was sent but is not valid).",
                    ),
                )
                .build(),
        )
        .response(
            "Forbidden",
            error_response("The credential is not of scope `admin` (`forbidden`).").build(),
        )
        .response(
            "NotFound",
            error_response(
                "Not found (`not_found`): an unknown id (or an unknown path, or a method the path does not support).",
            )
            .build(),
        )
        .response("Conflict", error_response("Conflict (`conflict`).").build())
        .response(
            "PayloadTooLarge",
            error_response(
                "The request body is over the server's body limit (`payload_too_large`).",
            )
            .build(),
        )
        .response(
            "UnsupportedMediaType",
            error_response(
                "The request body's Content-Type is neither application/json nor application/scim+json (`unsupported_media_type`); a body without Content-Type is accepted.",
            )
            .build(),
        )
        .response(
            "TooManyRequests",
            error_response(
                "The credential is over the server's request rate limit, `--rate-limit` (`too_many_requests`).",
            )
            .header(
                "Retry-After",
                header(
                    integer().minimum(Some(0)),
                    "Seconds to wait before retrying.",
                ),
            )
            .build(),
        )
        .response(
            "Error",
            error_response(
                "Any other error: 500 `internal`, 503 `unavailable` (and any status listed in the Error schema).",
            )
            .build(),
        )
        .parameter(
            "limit",
            query_param(
                "limit",
                "Page size (out of range: 400).",
                bounded(1, 1000, 100),
            ),
        )
        .parameter(
            "cursor",
            query_param(
                "cursor",
                "`nextCursor` of the previous page. A cursor that does not decode, or belongs to another list, gives 400.",
                string(),
            ),
        )
}

impl Op {
    /// An operation answering 204, taking nothing; the methods below say the rest.
    pub const fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op {
            id,
            tag,
            summary,
            description: None,
            path_id: None,
            body: None,
            query: &[],
            answer: Answer::Empty("Deleted."),
            errors: &[],
        }
    }

    pub const fn about(mut self, description: &'static str) -> Op {
        self.description = Some(description);
        self
    }

    /// The path's `{id}` names this (and an unknown one is 404).
    pub const fn of(mut self, what: &'static str) -> Op {
        self.path_id = Some(what);
        self
    }

    pub const fn body(mut self, schema: Named) -> Op {
        self.body = Some(schema);
        self
    }

    pub const fn query(mut self, query: &'static [Query]) -> Op {
        self.query = query;
        self
    }

    pub const fn answer(mut self, answer: Answer) -> Op {
        self.answer = answer;
        self
    }

    /// Error statuses besides the ones every operation (and every body, query or id) has.
    pub const fn errors(mut self, errors: &'static [u16]) -> Op {
        self.errors = errors;
        self
    }
}

/// The name of the response component for an error status.
fn error_component(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        413 => "PayloadTooLarge",
        415 => "UnsupportedMediaType",
        429 => "TooManyRequests",
        _ => "Error",
    }
}

/// The list schema of an `Answer::List`.
fn list_schema(item: &Named, description: &str, paged: bool) -> RefOr<Schema> {
    let cursor = if paged {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .description(Some(
                "Pass as `cursor` for the next page; null on the last page.",
            ))
    } else {
        ObjectBuilder::new()
            .schema_type(Type::Null)
            .description(Some("Always null: this list is never paged."))
    };
    ObjectBuilder::new()
        .description(Some(description))
        .property("items", ArrayBuilder::new().items(item.reference()))
        .property("nextCursor", cursor)
        .required("items")
        .required("nextCursor")
        .into()
}

/// One operation of the document, and the schemas it needs.
fn operation(
    op: &Op,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let mut b = operation_named(op.id, op.tag, op.summary, op.description);
    if let Some(about) = op.path_id {
        b = b.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(about))
                .schema(Some(string())),
        );
    }
    for q in op.query {
        b = match query(*q) {
            RefOr::T(p) => b.parameter(p),
            RefOr::Ref(r) => b.parameter_ref(r),
        };
    }
    let mut statuses: Vec<u16> = vec![401, 403, 429];
    if op.path_id.is_some() {
        statuses.push(404);
    }
    if let Some(body) = &op.body {
        (body.collect)(schemas);
        b = b.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(body.reference()))
                .build(),
        ));
        statuses.extend([400, 413, 415]);
    }
    if op
        .query
        .iter()
        .any(|q| q != &Query::Role && q != &Query::Group)
    {
        statuses.push(400);
    }
    statuses.extend(op.errors);
    statuses.sort_unstable();
    statuses.dedup();
    let mut responses = ResponsesBuilder::new();
    responses = match op.answer {
        Answer::Json(status, description, named) => {
            (named.collect)(schemas);
            responses.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", json_content(named.reference())),
            )
        }
        Answer::List {
            name,
            item,
            description,
            paged,
        } => {
            (item.collect)(schemas);
            schemas.push((name.into(), list_schema(&item, description, paged)));
            responses.response(
                "200",
                ResponseBuilder::new().description(description).content(
                    "application/json",
                    json_content(Ref::from_schema_name(name)),
                ),
            )
        }
        Answer::Empty(description) => {
            responses.response("204", ResponseBuilder::new().description(description))
        }
    };
    for s in statuses {
        responses = responses.response(
            s.to_string(),
            Ref::new(format!("#/components/responses/{}", error_component(s))),
        );
    }
    responses = responses.response("default", Ref::new("#/components/responses/Error"));
    b.responses(responses.build()).build()
}

/// The document.
pub fn document() -> OpenApi {
    let mut schemas = Vec::new();
    let mut paths = Paths::new();
    for route in super::api::routes() {
        let op = operation(&route.op, &mut schemas);
        paths.add_path_operation(format!("/api/v1{}", route.path), vec![route.method], op);
    }
    paths.add_path_operation(
        "/api/v1/openapi.json",
        vec![HttpMethod::Get],
        operation_named(
            "getOpenApi",
            "meta",
            "This OpenAPI description (no authentication needed)",
            None,
        )
        .securities(Some(Vec::<SecurityRequirement>::new()))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI document.")
                .content("application/json", json_content(ObjectBuilder::new())),
        )
        .build(),
    );
    let (token_path, token_op) = super::oauth::described(&mut schemas);
    paths.add_path_operation(token_path, vec![HttpMethod::Post], token_op);
    collect::<super::api::ErrorBody>(&mut schemas);
    schemas.push((
        "EventType".into(),
        crate::webhooks::wire::event_type_schema(),
    ));
    collect::<crate::provisioning::journal::SecurityEventToken>(&mut schemas);
    collect::<crate::provisioning::accounts::AccountEventData>(&mut schemas);
    let webhook = webhook_delivery(&mut schemas);
    // One entry per name, in the order first met (stable output).
    let mut seen = std::collections::HashSet::new();
    schemas.retain(|(name, _)| seen.insert(name.clone()));
    let tags = [
        ("policy", "The tenant's provisioning policy."),
        ("roles", "Roles: names and typed entitlements."),
        (
            "rules",
            "Rules that grant roles: a SCIM filter or a SCIM group.",
        ),
        (
            "candidates",
            "Accounts awaiting approval (provisioning `review`).",
        ),
        (
            "removals",
            "Accounts flagged for removal (deprovisioning `notify`).",
        ),
        ("accounts", "Accounts: one per SCIM User."),
        ("events", "The change feed."),
        (
            "webhooks",
            "Webhook subscriptions, their deliveries and dead letters.",
        ),
        (
            "oauth",
            "OAuth 2.0 access tokens for SCIM clients (client credentials).",
        ),
        ("meta", "This description."),
    ];
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Scimitar admin and product API")
                .version("1")
                .description(Some(DESCRIPTION)),
        )
        .json_schema_dialect(Some("https://spec.openapis.org/oas/3.1/dialect/base"))
        .security(Some([
            SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
            SecurityRequirement::new("consoleSession", Vec::<String>::new()),
        ]))
        .tags(Some(tags.map(|(name, about)| {
            TagBuilder::new()
                .name(name)
                .description(Some(about))
                .build()
        })))
        .paths(paths)
        .webhooks(Some(webhook))
        .components(Some(base_components().schemas_from_iter(schemas).build()))
        .build()
}

const DESCRIPTION: &str = "Accounts (one per SCIM User), roles granted by rules, the tenant's policy, the review queues, a gap-free change feed and webhooks (see docs/api-v1.md). Every call needs a bearer credential of scope `admin` (tokens of scope `read` or `write` get 403), or the admin console's session cookie (`POST /admin/session`; with it, every state-changing request carries the session's CSRF token in `X-CSRF-Token`). Errors are `{\"status\", \"error\", \"detail\"}`; a failed request changes nothing. Lists answer `{\"items\", \"nextCursor\"}`: the lists of accounts, candidates, removals, groups, an account's timeline and a webhook's deliveries and dead letters are paged by `limit` and `cursor`; the lists of roles, rules and webhooks come whole in one response (`nextCursor` always null). The feed pages by `seq`. Times are RFC 3339 strings in UTC. Also described: `POST /oauth/token`, where SCIM clients get access tokens (RFC 6749 §4.4), and the webhook deliveries this API's subscriptions receive.";

/// The `webhooks` section: what a subscription receives.
fn webhook_delivery(schemas: &mut Vec<(String, RefOr<Schema>)>) -> utoipa::openapi::path::Paths {
    collect::<crate::webhooks::wire::Event>(schemas);
    let header = |name: &str, description: &str, pattern: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(string().pattern(Some(pattern))))
            .build()
    };
    let op = operation_named(
        "deliverEvent",
        "webhooks",
        "A feed event POSTed to a subscription",
        Some("Each matching event is queued in the transaction that wrote it and POSTed as the event JSON, with the Standard Webhooks headers. A 2xx answer delivers it; otherwise it is retried with exponential backoff and jitter (a random delay between half and all of the doubled delay) until --webhook-retry-horizon-secs after the event, then parked as a dead letter. Deliveries of one account (or one group) are attempted in feed order."),
    )
        .securities(Some(Vec::<SecurityRequirement>::new()))
        .parameter(header(
            "webhook-id",
            "The event id: the same on every retry; use it to drop duplicates.",
            ".+",
        ))
        .parameter(header(
            "webhook-timestamp",
            "Unix seconds of the attempt.",
            "^[0-9]+$",
        ))
        .parameter(header(
            "webhook-signature",
            "`v1,` + base64(HMAC-SHA256(key, \"{webhook-id}.{webhook-timestamp}.{body}\")), where key is the base64 decoding of the secret after its `whsec_` prefix.",
            "^v1,",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    json_content(Ref::from_schema_name("Event")),
                )
                .build(),
        ))
        .response("2XX", ResponseBuilder::new().description("Delivered."))
        .response(
            "default",
            ResponseBuilder::new()
                .description("Not delivered: retried with backoff, then parked as a dead letter."),
        )
        .build();
    let mut paths = Paths::new();
    paths.add_path_operation("event", vec![HttpMethod::Post], op);
    paths
}

/// The document as served and committed (pretty JSON).
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = document().to_pretty_json().unwrap_or_else(|e| {
            log::error!("cannot render the OpenAPI document: {e}");
            String::from("{}")
        });
        text.push('\n');
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is the generated document. With SCIMITAR_WRITE_OPENAPI=1 the test
    /// writes it instead of comparing.
    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let generated = json();
        if std::env::var_os("SCIMITAR_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the document the routes generate; \
             regenerate it with `SCIMITAR_WRITE_OPENAPI=1 cargo test --lib openapi`"
        );
    }

    #[actix_web::test]
    async fn the_api_serves_the_document() {
        use actix_web::{test, web, App};
        let app = test::init_service(
            App::new().service(web::scope("/api/v1").configure(super::super::api::configure)),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/api/v1/openapi.json")
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status().as_u16(), 200);
        let body = test::read_body(resp).await;
        assert_eq!(body, json().as_bytes());
    }

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        let text = json();
        for piece in text.split("\"$ref\": \"#/components/").skip(1) {
            let target = piece.split('"').next().unwrap();
            let (kind, name) = target.split_once('/').unwrap();
            assert!(
                doc["components"][kind].get(name).is_some(),
                "unresolved reference {target}"
            );
        }
    }
}

//! One way to make a request: a bearer credential (none when empty), a method, a URI and
//! an optional JSON body, sent through the app; the answer is a `Resp` (status, headers,
//! JSON). The body's type follows the endpoint: `application/json` on `/api/v1`,
//! `application/scim+json` elsewhere.

use actix_web::test::TestRequest;
use serde_json::Value;

use super::{send, Resp, TestApp};

/// The request `request` sends, for a caller that adds to it before `send`.
pub fn as_(token: &str, method: &str, uri: &str, body: Option<&Value>) -> TestRequest {
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = TestRequest::default().method(m).uri(uri);
    if !token.is_empty() {
        r = r.insert_header(("Authorization", format!("Bearer {token}")));
    }
    if let Some(b) = body {
        let kind = if uri.starts_with("/api/") {
            "application/json"
        } else {
            "application/scim+json"
        };
        r = r
            .insert_header(("Content-Type", kind))
            .set_payload(b.to_string());
    }
    r
}

/// Sends `method uri` with `token` and `body`; the status and JSON of the answer.
pub async fn request<S: TestApp>(
    app: &S,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> Resp {
    send(app, as_(token, method, uri, body.as_ref())).await
}

/// `request` of a GET.
pub async fn get<S: TestApp>(app: &S, token: &str, uri: &str) -> Resp {
    request(app, token, "GET", uri, None).await
}

/// GETs `uri` with the test token; the answer, which must be 200.
pub async fn get_ok<S: TestApp>(app: &S, uri: &str) -> Resp {
    let r = get(app, super::TOKEN, uri).await;
    assert_eq!(r.status.as_u16(), 200, "GET {uri}: {}", r.raw);
    r
}

/// `request` of a DELETE.
pub async fn delete<S: TestApp>(app: &S, token: &str, uri: &str) -> Resp {
    request(app, token, "DELETE", uri, None).await
}

/// `request` of a POST.
pub async fn post<S: TestApp>(app: &S, token: &str, uri: &str, body: Option<Value>) -> Resp {
    request(app, token, "POST", uri, body).await
}

/// `request` of a PUT.
pub async fn put<S: TestApp>(app: &S, token: &str, uri: &str, body: Value) -> Resp {
    request(app, token, "PUT", uri, Some(body)).await
}

/// The `id` of a created (or read) resource in an answer's body.
#[track_caller]
pub fn id_of(r: &Resp) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {}", r.raw))
        .to_string()
}

/// Asserts that the body of `r` holds each `(JSON pointer, value)` of `fields`; a failure
/// names `case` and the pointer.
#[track_caller]
pub fn assert_fields<P: AsRef<str>>(r: &Resp, case: &str, fields: &[(P, Value)]) {
    for (pointer, want) in fields {
        let pointer = pointer.as_ref();
        assert_eq!(
            r.body.pointer(pointer),
            Some(want),
            "{case}: {pointer}; body: {}",
            r.raw
        );
    }
}

/// Asserts the status of a case table's row, a failure naming `case`, and for an error its
/// SCIM shape (`Resp::expect`); `scim_type`, when given, must be the error's `scimType`.
#[track_caller]
pub fn expect_row(r: &Resp, case: &str, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{case}: {}", r.raw);
    r.expect(status);
    if scim_type.is_some() {
        r.expect_case(case, status, scim_type);
    }
}

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

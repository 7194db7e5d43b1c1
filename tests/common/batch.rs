//! Group commit in tests: requests made to run as one batch of the writer
//! (`provisioning::writer`), and the write requests such batches are made of.

use std::time::Duration;

use actix_web::{test, web};
use futures_util::future::join_all;
use serde_json::{json, Value};

use super::{patch_body, req, send, Resp, TestApp};
use scimitar::http::AppState;
use scimitar::storage::TenantId;

/// A POST of the SCIM resource `body` to `path`.
pub fn scim_post(path: &str, body: Value) -> test::TestRequest {
    req("POST", path)
        .insert_header(("Content-Type", "application/scim+json"))
        .set_payload(body.to_string())
}

/// A PATCH replacing the user's `title`, if the user is at `version` (If-Match).
pub fn patch_title(id: &str, version: &str, title: &str) -> test::TestRequest {
    req("PATCH", &format!("/scim/v2/Users/{id}"))
        .insert_header(("Content-Type", "application/scim+json"))
        .insert_header(("If-Match", version.to_string()))
        .set_payload(
            patch_body(json!([{"op": "replace", "path": "title", "value": title}])).to_string(),
        )
}

/// Sends `requests` (writes of the default tenant) so that they run as one batch: the
/// tenant's writes are held until all of them wait in its queue. Their answers, in order.
/// The app needs a pooled connection and an admission slot for each at once.
pub async fn one_batch<S: TestApp>(
    app: &S,
    data: &web::Data<AppState>,
    requests: Vec<test::TestRequest>,
) -> Vec<Resp> {
    let tenant = TenantId::from("default");
    let writer = data.service.writer.clone();
    let n = requests.len();
    let paused = writer.pause(&tenant);
    let release = async {
        // Not a timing assertion: it waits for all of them to be queued, however long.
        while writer.waiting(&tenant) < n {
            actix_web::rt::time::sleep(Duration::from_millis(2)).await;
        }
        drop(paused);
    };
    let (answers, ()) = futures_util::future::join(
        join_all(requests.into_iter().map(|r| send(app, r))),
        release,
    )
    .await;
    assert_eq!(writer.stats().last, n, "the {n} writes ran as one batch");
    answers
}

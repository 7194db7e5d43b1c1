use serde_json::Value;

use crate::common::*;

#[actix_web::test]
async fn service_provider_config_advertises_features() {
    let (app, _db) = app().await;
    let r = get_ok(&app, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/scim+json")
    );
    assert_eq!(r.body["patch"]["supported"], true);
    assert_eq!(r.body["etag"]["supported"], true);
    assert_eq!(r.body["filter"]["supported"], true);
    assert!(r.body["filter"]["maxResults"].as_i64().unwrap() > 0);
    assert_eq!(
        r.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
}

#[actix_web::test]
async fn resource_types_and_schemas_are_served() {
    let (app, _db) = app().await;
    let r = get_ok(&app, "/scim/v2/ResourceTypes").await;
    assert_eq!(r.body["totalResults"], 2);
    let names: Vec<&str> = strs(&r.body["Resources"], "name");
    assert_eq!(names, ["User", "Group"]);
    let u = get_ok(&app, "/scim/v2/ResourceTypes/User").await;
    assert_eq!(u.body["endpoint"], "/Users");
    assert_eq!(
        u.body["meta"]["location"],
        "http://scim.test/scim/v2/ResourceTypes/User"
    );
    get(&app, TOKEN, "/scim/v2/ResourceTypes/Robot")
        .await
        .expect(404);

    let s = get_ok(&app, "/scim/v2/Schemas").await;
    let ids: Vec<&str> = strs(&s.body["Resources"], "id");
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"));
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    let one = get_ok(
        &app,
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group",
    )
    .await;
    assert_eq!(one.body["name"], "Group");
    assert!(one.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "members"));
    get(&app, TOKEN, "/scim/v2/Schemas/urn:nope")
        .await
        .expect(404);
}

#[actix_web::test]
async fn discovery_needs_a_token_and_rejects_writes() {
    let (app, _db) = app().await;
    // No token: no Authorization header at all.
    let anon = get(&app, "", "/scim/v2/ServiceProviderConfig").await;
    anon.expect(401);
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/Schemas",
    ] {
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            call(&app, m, path, None).await.expect(405);
        }
    }
    let r = get(&app, TOKEN, "/scim/v2/Schemas").await;
    assert!(r.body["Resources"]
        .as_array()
        .is_some_and(|a| a.iter().all(|s| s["attributes"].is_array())));
    assert_eq!(r.body["Resources"].as_array().map(Vec::len), Some(6));
    let _: &Value = &r.body;
}

//! JWTs from a tenant's own issuer: accepted when signed by a configured key with its pinned
//! algorithm, for the configured issuer and audience, within exp/nbf (with leeway). Every
//! rejection case of the issue is here: `alg: none`, an unexpected algorithm, a wrong issuer
//! or audience, HMAC "signed" with the public key, expired / not yet valid, forged keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use scimitar::auth::{external, Scope};
use scimitar::provisioning::tenancy as admin;
use scimitar::storage;

use crate::common::*;

const ISS: &str = "https://idp.example.com/tenant-1/";
const AUD: &str = "scimitar-test";
fixtures! {
    RSA_PRIVATE = "jwt/rsa-private.pem",
    RSA_PUBLIC = "jwt/rsa-public.pem",
    OTHER_RSA_PRIVATE = "jwt/other-rsa-private.pem",
    EC_PRIVATE = "jwt/ec-private.pem",
    JWKS = "jwt/jwks.json",
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "entra-provisioning", "iat": now(), "nbf": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn rsa(alg: Algorithm, claims: &Value) -> String {
    sign(
        alg,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        None,
        claims,
    )
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut c = claims();
    if value.is_null() {
        c.as_object_mut().unwrap().remove(name);
    } else {
        c[name] = value;
    }
    c
}

/// An app with tenant `ext` trusting ISS/AUD with the RSA public key pinned to RS256, and
/// tenant `jwks` trusting another issuer through the JWKS fixture.
async fn setup() -> (
    impl TestApp,
    actix_web::web::Data<scimitar::http::AppState>,
    TestDb,
) {
    let (db, app, state) = app_state().await;
    let mut conn = state.service.pool.get().unwrap();
    admin::create_tenant(&mut conn, "ext").unwrap();
    let pem = external::parse_pem(RSA_PUBLIC, "RS256", None).unwrap();
    admin::set_jwt_issuer(&mut conn, "ext", ISS, AUD, Scope::Write, &[pem]).unwrap();
    admin::create_tenant(&mut conn, "jwks").unwrap();
    let keys = external::parse_jwks(JWKS, Some("RS256")).unwrap();
    admin::set_jwt_issuer(
        &mut conn,
        "jwks",
        "https://login.example.net/jwks/",
        AUD,
        Scope::Write,
        &keys,
    )
    .unwrap();
    drop(conn);
    (app, state, db)
}

#[actix_web::test]
async fn a_valid_external_jwt_acts_for_its_tenant() {
    let (app, state, _db) = setup().await;
    let token = rsa(Algorithm::RS256, &claims());
    let r = post_user(&app, &token, "j@ext", "1", "j@ext.example").await;
    r.expect(201);
    let mut conn = state.service.pool.get().unwrap();
    assert_eq!(
        storage::feed::event_credentials(&mut conn.db(), &"ext".into()).unwrap(),
        vec![Some(format!("{ISS}|entra-provisioning"))]
    );
    let r = get(&app, TOKEN, "/scim/v2/Users").await;
    assert_eq!(
        r.body["totalResults"], 0,
        "nothing leaked into the default tenant"
    );
    // An audience list containing ours is fine; within the leeway is fine.
    for c in [
        with_claim("aud", json!(["something-else", AUD])),
        with_claim("exp", json!(now() - 20)),
        with_claim("nbf", json!(now() + 20)),
        with_claim("nbf", Value::Null),
    ] {
        get(&app, &rsa(Algorithm::RS256, &c), "/scim/v2/Users")
            .await
            .expect(200);
    }
}

#[actix_web::test]
async fn every_rejection_case_is_401() {
    let (app, _state, _db) = setup().await;
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let other = EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let good = rsa(Algorithm::RS256, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());

    // An attacker's key carried in the token's own header is never used.
    let mut embedded = Header::new(Algorithm::RS256);
    embedded.jwk = Some(Jwk::from_encoding_key(&other, Algorithm::RS256).unwrap());
    let self_signed = jsonwebtoken::encode(&embedded, &claims(), &other).unwrap();

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none, unsigned",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
        ),
        (
            "alg none, signature kept",
            format!("{}.{}.{}", b64(&json!({"alg": "none"})), parts[1], parts[2]),
        ),
        (
            "alg None",
            format!("{}.{}.", b64(&json!({"alg": "None"})), parts[1]),
        ),
        (
            "unexpected alg RS384 (key pinned to RS256)",
            rsa(Algorithm::RS384, &claims()),
        ),
        (
            "unexpected alg PS256 (key pinned to RS256)",
            rsa(Algorithm::PS256, &claims()),
        ),
        (
            "unexpected alg ES256 with an EC key",
            sign(Algorithm::ES256, &ec, None, &claims()),
        ),
        (
            "header says RS512, signed RS256",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "RS512", "typ": "JWT"})),
                parts[1],
                parts[2]
            ),
        ),
        (
            "HMAC signed with the public key",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
                None,
                &claims(),
            ),
        ),
        (
            "HMAC signed with the public key, HS512",
            sign(
                Algorithm::HS512,
                &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
                None,
                &claims(),
            ),
        ),
        (
            "wrong issuer",
            rsa(
                Algorithm::RS256,
                &with_claim("iss", json!("https://evil.example.com/")),
            ),
        ),
        (
            "issuer differing in case",
            rsa(
                Algorithm::RS256,
                &with_claim("iss", json!(ISS.to_uppercase())),
            ),
        ),
        (
            "our own issuer name",
            rsa(Algorithm::RS256, &with_claim("iss", json!("scimitar"))),
        ),
        (
            "no issuer",
            rsa(Algorithm::RS256, &with_claim("iss", Value::Null)),
        ),
        (
            "wrong audience",
            rsa(Algorithm::RS256, &with_claim("aud", json!("someone-else"))),
        ),
        (
            "no audience",
            rsa(Algorithm::RS256, &with_claim("aud", Value::Null)),
        ),
        (
            "expired beyond the leeway",
            rsa(Algorithm::RS256, &with_claim("exp", json!(now() - 120))),
        ),
        (
            "not valid for ten minutes",
            rsa(Algorithm::RS256, &with_claim("nbf", json!(now() + 600))),
        ),
        (
            "no exp",
            rsa(Algorithm::RS256, &with_claim("exp", Value::Null)),
        ),
        (
            "exp not a number",
            rsa(Algorithm::RS256, &with_claim("exp", json!("tomorrow"))),
        ),
        (
            "signed by another key",
            sign(Algorithm::RS256, &other, None, &claims()),
        ),
        ("key embedded in the header", self_signed),
        (
            "claims altered after signing",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with_claim("sub", json!("admin"))),
                parts[2]
            ),
        ),
        ("signature removed", format!("{}.{}.", parts[0], parts[1])),
        ("unknown crit extension", sign_with_crit(&rsa_key)),
    ];
    for (name, token) in cases {
        let r = get(&app, &token, "/scim/v2/Users").await;
        assert_eq!(r.status.as_u16(), 401, "{name}: {}", r.raw);
        r.expect_error(401, None);
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"scimitar\", error=\"invalid_token\""),
            "{name}"
        );
        // Nothing changes either.
        let w = post_user(&app, &token, "x@ext", "x", "x@ext.example").await;
        assert_eq!(w.status.as_u16(), 401, "{name}");
    }
    get(&app, &good, "/scim/v2/Users").await.expect(200);
    let r = get(&app, &good, "/scim/v2/Users").await;
    assert_eq!(r.body["totalResults"], 0);
}

fn sign_with_crit(key: &EncodingKey) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.crit = Some(vec!["exp-ext".into()]);
    jsonwebtoken::encode(&h, &claims(), key).unwrap()
}

#[actix_web::test]
async fn jwks_keys_are_chosen_by_kid_and_pinned() {
    let (app, _state, _db) = setup().await;
    let iss = "https://login.example.net/jwks/";
    let c = with_claim("iss", json!(iss));
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    // Accepted: the RSA key by kid (no alg in the JWKS, pinned to RS256 at configuration),
    // the EC key by kid (ES256), and the RSA key without a kid.
    for (name, token) in [
        (
            "RSA by kid",
            sign(Algorithm::RS256, &rsa_key, Some("rsa-1"), &c),
        ),
        ("EC by kid", sign(Algorithm::ES256, &ec, Some("ec-1"), &c)),
        (
            "RSA without kid",
            sign(Algorithm::RS256, &rsa_key, None, &c),
        ),
    ] {
        expect_row(&get(&app, &token, "/scim/v2/Users").await, name, 200, None);
    }
    for (name, token) in [
        (
            "unknown kid",
            sign(Algorithm::RS256, &rsa_key, Some("rsa-2"), &c),
        ),
        (
            "EC alg naming the RSA key",
            sign(Algorithm::ES256, &ec, Some("rsa-1"), &c),
        ),
        (
            "RS384 on the RS256 key",
            sign(Algorithm::RS384, &rsa_key, Some("rsa-1"), &c),
        ),
        (
            "HMAC with the JWKS text",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(JWKS.as_bytes()),
                Some("rsa-1"),
                &c,
            ),
        ),
        (
            "the other tenant's issuer with this key",
            sign(Algorithm::ES256, &ec, Some("ec-1"), &claims()),
        ),
    ] {
        let r = get(&app, &token, "/scim/v2/Users").await;
        assert_eq!(r.status.as_u16(), 401, "{name}");
    }
}

#[actix_web::test]
async fn issuer_configuration_rules() {
    let (app, state, _db) = setup().await;
    let mut conn = state.service.pool.get().unwrap();
    let pem = external::parse_pem(RSA_PUBLIC, "RS256", None).unwrap();
    admin::create_tenant(&mut conn, "third").unwrap();
    // One (issuer, audience) names one tenant.
    let e = admin::set_jwt_issuer(
        &mut conn,
        "third",
        ISS,
        AUD,
        Scope::Write,
        std::slice::from_ref(&pem),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("another tenant already trusts"),
        "{e}"
    );
    // The same issuer with another audience is another tenant.
    admin::set_jwt_issuer(
        &mut conn,
        "third",
        ISS,
        "third-aud",
        Scope::Read,
        std::slice::from_ref(&pem),
    )
    .unwrap();
    let t = rsa(Algorithm::RS256, &with_claim("aud", json!("third-aud")));
    get(&app, &t, "/scim/v2/Users").await.expect(200);
    post_user(&app, &t, "t@third", "t", "t@third.example")
        .await
        .expect_error(403, None);
    // A token naming both audiences cannot say whose it is.
    let both = rsa(
        Algorithm::RS256,
        &with_claim("aud", json!([AUD, "third-aud"])),
    );
    get(&app, &both, "/scim/v2/Users").await.expect(401);
    // Our own issuer name, no keys, unknown tenant.
    assert!(admin::set_jwt_issuer(
        &mut conn,
        "third",
        "scimitar",
        AUD,
        Scope::Write,
        std::slice::from_ref(&pem)
    )
    .is_err());
    assert!(admin::set_jwt_issuer(&mut conn, "third", ISS, "x", Scope::Write, &[]).is_err());
    let e = admin::set_jwt_issuer(&mut conn, "ghost", "https://x/", "x", Scope::Write, &[pem])
        .unwrap_err();
    assert!(e.to_string().contains("no tenant named `ghost`"));
    // Removing the issuer ends its tokens.
    assert!(admin::remove_jwt_issuer(&mut conn, "ext").unwrap());
    get(&app, &rsa(Algorithm::RS256, &claims()), "/scim/v2/Users")
        .await
        .expect(401);
}

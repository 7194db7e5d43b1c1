//! JWTs from a tenant's own issuer (for example Microsoft Entra ID's provisioning service):
//! the tenant names an issuer, an audience and verification keys (PEM public keys or a JWKS
//! file), each key pinned to one asymmetric algorithm. A token is routed to the one tenant
//! whose (issuer, audience) it names and verified only with that tenant's keys; keys the
//! token carries itself (`jwk`, `jku`, `x5u`) are never used. Rejected: `alg: none`, any
//! HMAC algorithm (so a public key can never serve as an HMAC secret), an algorithm other than
//! the key's, a wrong issuer or audience, `exp`/`nbf` outside the leeway, a missing `exp`,
//! unknown `crit` extensions. Must not depend on actix.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::Value;

use super::oauth::{ISSUER, LEEWAY_SECS};
use super::tenant::TenantSettings;
use super::{AuthError, Principal, Scope};
use crate::scim::compat::Compat;
use crate::storage::conn::Db;
use crate::storage::tenancy::{self, JwtKeyRow};
use crate::storage::{StorageError, TenantId};

/// The algorithms an external key may be pinned to: asymmetric only.
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Parses an algorithm name an external key may use.
pub fn parse_alg(name: &str) -> Result<Algorithm, String> {
    if !ALGORITHMS.contains(&name) {
        return Err(format!(
            "algorithm `{name}` is not accepted for an external issuer; use one of {}",
            ALGORITHMS.join(", ")
        ));
    }
    name.parse::<Algorithm>()
        .map_err(|_| format!("unknown algorithm `{name}`"))
}

fn pem_key(pem: &[u8], alg: Algorithm) -> Result<DecodingKey, String> {
    let key = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Hmac => return Err("HMAC keys are not accepted".into()),
    };
    key.map_err(|e| format!("not a {alg:?} public key in PEM form: {e}"))
}

fn jwk_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, String> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (kty `oct`) keys are not accepted for an external issuer".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    if family != alg.family() {
        return Err(format!("a {family:?} key cannot verify {alg:?}"));
    }
    DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))
}

/// A PEM public key pinned to `alg`, checked now so a bad file fails the command, not a
/// request.
pub fn parse_pem(pem: &str, alg: &str, kid: Option<&str>) -> Result<JwtKeyRow, String> {
    let a = parse_alg(alg)?;
    if pem.contains("PRIVATE KEY") {
        return Err("this is a private key; configure the issuer's public key".into());
    }
    pem_key(pem.as_bytes(), a)?;
    Ok(JwtKeyRow {
        kid: kid.map(str::to_string),
        alg: alg.to_string(),
        format: "pem".into(),
        material: pem.to_string(),
    })
}

/// The signing keys of a JWKS document (RFC 7517 §5). Each key is pinned to its own `alg`,
/// or to `default_alg` when it names none (Entra ID publishes RSA keys without `alg`).
/// Encryption keys (`use: enc`) are skipped; symmetric keys are an error.
pub fn parse_jwks(json: &str, default_alg: Option<&str>) -> Result<Vec<JwtKeyRow>, String> {
    let raw: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let set: JwkSet =
        serde_json::from_value(raw.clone()).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut out = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let which = jwk
            .common
            .key_id
            .as_deref()
            .map(|k| format!("key `{k}`"))
            .unwrap_or_else(|| format!("key {}", i + 1));
        let alg = match (&jwk.common.key_algorithm, default_alg) {
            (Some(a), _) => a.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(format!(
                    "{which} names no `alg`; pin one with --alg (Entra ID: RS256)"
                ))
            }
        };
        let a = parse_alg(&alg).map_err(|e| format!("{which}: {e}"))?;
        jwk_key(jwk, a).map_err(|e| format!("{which}: {e}"))?;
        // Store the key exactly as published, one JWK per row.
        let material = raw["keys"][i].to_string();
        out.push(JwtKeyRow {
            kid: jwk.common.key_id.clone(),
            alg,
            format: "jwk".into(),
            material,
        });
    }
    if out.is_empty() {
        return Err("the JWKS document has no signing keys".into());
    }
    Ok(out)
}

fn decoding_key(row: &JwtKeyRow, alg: Algorithm) -> Result<DecodingKey, String> {
    match row.format.as_str() {
        "pem" => pem_key(row.material.as_bytes(), alg),
        "jwk" => {
            let jwk: Jwk = serde_json::from_str(&row.material).map_err(|e| e.to_string())?;
            jwk_key(&jwk, alg)
        }
        other => Err(format!("unknown key format `{other}`")),
    }
}

/// The claims read before verification, only to route the token to a tenant.
pub struct Unverified {
    pub iss: String,
    pub aud: Vec<String>,
}

impl Unverified {
    pub fn from_claims(claims: &Value) -> Option<Unverified> {
        let iss = claims.get("iss")?.as_str()?.to_string();
        let aud = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Some(Unverified { iss, aud })
    }
}

fn seconds(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_f64).map(|f| f.floor() as i64)
}

/// Verifies an external JWT and returns the principal it acts as.
pub fn verify(
    db: &mut Db<'_>,
    token: &str,
    header: &Header,
    routing: &Unverified,
    server_compat: Compat,
    now: i64,
) -> Result<Principal, AuthError> {
    if routing.iss == ISSUER || header.crit.is_some() {
        return Err(AuthError::Invalid);
    }
    // Only asymmetric algorithms: an HMAC token "signed" with a public key never verifies.
    let alg_name = format!("{:?}", header.alg);
    if parse_alg(&alg_name).is_err() {
        return Err(AuthError::Invalid);
    }
    let mut matching = tenancy::issuers_named(db, &routing.iss)?
        .into_iter()
        .filter(|i| routing.aud.contains(&i.audience));
    let config = matching.next().ok_or(AuthError::Invalid)?;
    if matching.next().is_some() {
        // The token's audiences name two tenants: it cannot say whose it is.
        return Err(AuthError::Invalid);
    }
    let tenant = TenantId::from(config.tenant_id.as_str());
    let keys = tenancy::jwt_keys(db, &tenant)?;
    let pinned = |k: &&JwtKeyRow| k.alg == alg_name;
    let by_kid: Vec<&JwtKeyRow> = match &header.kid {
        Some(kid) => {
            let exact: Vec<&JwtKeyRow> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if exact.is_empty() {
                keys.iter().filter(|k| k.kid.is_none()).collect()
            } else {
                exact
            }
        }
        None => keys.iter().collect(),
    };
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    for key in by_kid.into_iter().filter(pinned) {
        let Ok(dk) = decoding_key(key, header.alg) else {
            continue;
        };
        let Ok(data) = jsonwebtoken::decode::<Value>(token, &dk, &v) else {
            continue;
        };
        let c = data.claims;
        let secs = now / 1_000_000;
        let exp = seconds(c.get("exp")).ok_or(AuthError::Invalid)?;
        if exp + LEEWAY_SECS <= secs {
            return Err(AuthError::Invalid);
        }
        if c.get("nbf").is_some() {
            let nbf = seconds(c.get("nbf")).ok_or(AuthError::Invalid)?;
            if nbf - LEEWAY_SECS > secs {
                return Err(AuthError::Invalid);
            }
        }
        // The audit trail names the issuer and the subject (or the calling application).
        let who = ["sub", "azp", "appid", "client_id"]
            .iter()
            .find_map(|n| c.get(*n).and_then(Value::as_str))
            .unwrap_or("-");
        let settings = TenantSettings::parse(&config.settings)
            .map_err(|e| StorageError::Backend(Box::new(e)))?;
        return Ok(Principal {
            tenant,
            credential: Some(format!("{}|{who}", config.issuer)),
            scope: Scope::parse(&config.scope).ok_or(AuthError::Invalid)?,
            compat: settings.compat(server_compat),
        });
    }
    Err(AuthError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/rsa-public.pem");
    const EC_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/ec-public.pem");
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa-private.pem");
    const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");

    #[test]
    fn pem_keys_are_pinned_and_checked() {
        assert_eq!(parse_pem(RSA_PUBLIC, "RS256", None).unwrap().alg, "RS256");
        assert!(parse_pem(EC_PUBLIC, "ES256", Some("k")).is_ok());
        assert!(parse_pem(RSA_PUBLIC, "HS256", None).is_err(), "no HMAC");
        assert!(parse_pem(RSA_PUBLIC, "none", None).is_err());
        assert!(
            parse_pem(RSA_PUBLIC, "ES256", None).is_err(),
            "wrong family"
        );
        assert!(
            parse_pem(RSA_PRIVATE, "RS256", None).is_err(),
            "private key"
        );
        assert!(parse_pem("garbage", "RS256", None).is_err());
    }

    #[test]
    fn jwks_keys_take_their_own_alg_or_the_default() {
        assert!(parse_jwks(JWKS, None).is_err(), "RSA key without alg");
        let keys = parse_jwks(JWKS, Some("RS256")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa-1"));
        assert_eq!(keys[0].alg, "RS256");
        assert_eq!(keys[1].alg, "ES256");
        assert!(parse_jwks(JWKS, Some("HS256")).is_err());
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
        assert!(parse_jwks(oct, None).is_err());
        assert!(parse_jwks(r#"{"keys":[]}"#, None).is_err());
    }
}

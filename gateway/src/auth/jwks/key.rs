//! One JWK turned into a key the gateway verifies with, or refused with the reason.
//!
//! The algorithm comes from the key, never from the token alone: the JWK's `alg` if it has one
//! (which must fit its key type), else every algorithm of its key type, narrowed to
//! `GATEWAY_JWT_ALGORITHMS`. A shared secret (`kty: oct`, or an `HS*` `alg`) is never taken from a
//! JWKS: a key set is public, so an HMAC key in it would let anyone sign tokens.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::auth::decode::{Checks, decode};
use crate::auth::error::AuthError;
use crate::config::is_hmac;

/// A key from a JWKS with the validation it is used with: its own algorithms only.
pub(crate) struct JwksKey {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKey").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl JwksKey {
    pub(crate) fn verify<T: serde::de::DeserializeOwned>(&self, token: &str, checks: Checks) -> Result<T, AuthError> {
        decode(token, &self.key, &self.validation, checks)
    }
}

/// Why a JWK is ignored (logged with its `kid`, which is public).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    #[error("an HMAC key (kty oct or an HS alg): a shared secret is never taken from a JWKS")]
    Hmac,
    #[error("not a signing key (use or key_ops)")]
    NotForSigning,
    #[error("its alg is not a signature algorithm the gateway supports (e.g. none)")]
    UnsupportedAlg,
    #[error("its alg {0:?} does not fit its key type")]
    AlgMismatch(Algorithm),
    #[error("its key type or curve is not supported (RSA, EC P-256/P-384, OKP Ed25519 are)")]
    UnsupportedKey,
    #[error("none of its algorithms is accepted (GATEWAY_JWT_ALGORITHMS)")]
    NotAccepted,
    #[error("it has no kid (the gateway picks keys by kid)")]
    NoKid,
    #[error("its parameters are not a valid public key")]
    Invalid,
}

/// The algorithms a key of this type and curve can verify.
fn family(jwk: &Jwk) -> Result<&'static [Algorithm], Refusal> {
    use Algorithm::*;
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => Err(Refusal::Hmac),
        AlgorithmParameters::RSA(_) => Ok(&[RS256, RS384, RS512, PS256, PS384, PS512]),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Ok(&[ES256]),
            EllipticCurve::P384 => Ok(&[ES384]),
            _ => Err(Refusal::UnsupportedKey),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Ok(&[EdDSA]),
        _ => Err(Refusal::UnsupportedKey),
    }
}

/// The `kid` and the usable key of `jwk`, checked against the `accepted` algorithms; `checks`
/// holds the claim rules every key applies.
pub(super) fn from_jwk(jwk: &Jwk, accepted: &[Algorithm], checks: &Validation) -> Result<(String, JwksKey), Refusal> {
    let family = family(jwk)?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature)
        || jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Refusal::NotForSigning);
    }
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        Some(declared) => {
            let alg: Algorithm = declared.to_string().parse().map_err(|_| Refusal::UnsupportedAlg)?;
            if is_hmac(alg) {
                return Err(Refusal::Hmac);
            }
            if !family.contains(&alg) {
                return Err(Refusal::AlgMismatch(alg));
            }
            vec![alg]
        }
        None => family.to_vec(),
    };
    let algorithms: Vec<Algorithm> = algorithms.into_iter().filter(|a| accepted.contains(a)).collect();
    if algorithms.is_empty() {
        return Err(Refusal::NotAccepted);
    }
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty()).ok_or(Refusal::NoKid)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::Invalid)?;
    let mut validation = checks.clone();
    validation.algorithms = algorithms;
    Ok((kid, JwksKey { key, validation }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const ALL: [Algorithm; 9] = crate::config::ASYMMETRIC;

    fn rsa(extra: Value) -> Jwk {
        // A public exponent and a modulus: not a real key pair, enough to parse.
        let mut v = json!({ "kty": "RSA", "kid": "k", "e": "AQAB", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw" });
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        serde_json::from_value(v).expect("a JWK")
    }

    fn refusal(jwk: Value, accepted: &[Algorithm]) -> Refusal {
        let jwk: Jwk = serde_json::from_value(jwk).expect("a JWK");
        from_jwk(&jwk, accepted, &Validation::default()).expect_err("refused")
    }

    #[test]
    fn an_rsa_key_without_alg_verifies_its_family_narrowed_to_the_accepted_ones() {
        let (kid, key) = from_jwk(&rsa(json!({})), &[Algorithm::RS256, Algorithm::ES256], &Validation::default()).expect("usable");
        assert_eq!((kid.as_str(), key.validation.algorithms.as_slice()), ("k", &[Algorithm::RS256][..]));
        let (_, key) = from_jwk(&rsa(json!({ "alg": "PS384", "use": "sig" })), &ALL, &Validation::default()).expect("usable");
        assert_eq!(key.validation.algorithms, [Algorithm::PS384]);
    }

    #[test]
    fn hmac_none_mismatched_and_encryption_keys_are_refused() {
        assert_eq!(refusal(json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0" }), &ALL), Refusal::Hmac);
        assert_eq!(refusal(json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256" }), &ALL), Refusal::Hmac);
        let key = |extra| from_jwk(&rsa(extra), &ALL, &Validation::default()).expect_err("refused");
        assert_eq!(key(json!({ "alg": "none" })), Refusal::UnsupportedAlg);
        assert_eq!(key(json!({ "alg": "RSA-OAEP" })), Refusal::UnsupportedAlg);
        assert_eq!(key(json!({ "alg": "HS256" })), Refusal::Hmac, "an HS alg on a public key");
        assert_eq!(key(json!({ "alg": "ES256" })), Refusal::AlgMismatch(Algorithm::ES256));
        assert_eq!(key(json!({ "use": "enc" })), Refusal::NotForSigning);
        assert_eq!(key(json!({ "key_ops": ["encrypt"] })), Refusal::NotForSigning);
        assert_eq!(key(json!({ "kid": null })), Refusal::NoKid);
        assert_eq!(from_jwk(&rsa(json!({})), &[Algorithm::EdDSA], &Validation::default()).err(), Some(Refusal::NotAccepted));
    }

    #[test]
    fn ec_keys_verify_the_algorithm_of_their_curve_only() {
        let p256 = json!({ "kty": "EC", "kid": "e", "crv": "P-256", "alg": "ES384",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" });
        assert_eq!(refusal(p256, &ALL), Refusal::AlgMismatch(Algorithm::ES384));
        let p521 = json!({ "kty": "EC", "kid": "e", "crv": "P-521", "x": "AA", "y": "AA" });
        assert_eq!(refusal(p521, &ALL), Refusal::UnsupportedKey);
    }
}

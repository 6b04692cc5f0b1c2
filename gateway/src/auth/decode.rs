//! Decoding a token with one key: the signature, the algorithm, and either every claim check the
//! gateway's own tokens need or (for Mercure, whose drafts have their own claim rules) none.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};

use super::error::AuthError;

/// The checks of a token whose claims are judged elsewhere (Mercure's, whose drafts allow a float
/// or absent `exp` and have their own audience and issuer rules): the signature and algorithm
/// only, from the key's own validation.
fn signature_only(validation: &Validation) -> Validation {
    let mut v = validation.clone();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.iss = None;
    v.required_spec_claims.clear();
    v
}

/// A token verified by signature only: its JOSE `typ` and its claims as JSON.
#[derive(Debug)]
pub struct RawToken {
    pub typ: Option<String>,
    pub claims: serde_json::Value,
}

/// How much of a token to check: everything the gateway's own tokens need, or the signature only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checks {
    Full,
    SignatureOnly,
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
    checks: Checks,
) -> Result<T, AuthError> {
    let relaxed;
    let validation = match checks {
        Checks::Full => validation,
        Checks::SignatureOnly => {
            relaxed = signature_only(validation);
            &relaxed
        }
    };
    let data = jsonwebtoken::decode::<T>(token, key, validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => AuthError::Algorithm,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => AuthError::Claims,
        _ => AuthError::Malformed,
    })?;
    Ok(data.claims)
}

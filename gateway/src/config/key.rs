//! The token key (`GATEWAY_JWT_SECRET` or `GATEWAY_JWT_PUBLIC_KEY`) as the configuration holds it,
//! and the algorithm families a key may verify: checked at start, so that no configuration can
//! accept a token "signed" with the wrong kind of key.

use jsonwebtoken::{Algorithm, DecodingKey};

/// The algorithms a public key can verify: the only ones a JWKS key may be used with.
pub const ASYMMETRIC: [Algorithm; 9] = {
    use Algorithm::*;
    [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]
};

/// Whether `alg` is an HMAC algorithm: verified with the static secret only, never a JWKS key.
pub(crate) fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The key the gateway verifies with. Kept as bytes so that the config stays `Clone` and `Debug`
/// without ever printing the secret.
#[derive(Clone)]
pub enum KeyMaterial {
    Secret(Vec<u8>),
    Rsa(Vec<u8>),
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial::{}(..)", self.kind())
    }
}

impl KeyMaterial {
    /// Recognises the type of a PEM public key by trying each family the library supports.
    pub fn public_from_pem(pem: Vec<u8>) -> Result<Self, String> {
        if DecodingKey::from_rsa_pem(&pem).is_ok() {
            Ok(Self::Rsa(pem))
        } else if DecodingKey::from_ec_pem(&pem).is_ok() {
            Ok(Self::Ec(pem))
        } else if DecodingKey::from_ed_pem(&pem).is_ok() {
            Ok(Self::Ed(pem))
        } else {
            Err("not an RSA, EC or Ed25519 public key in PEM form".into())
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Secret(_) => "HMAC secret",
            Self::Rsa(_) => "RSA public key",
            Self::Ec(_) => "EC public key",
            Self::Ed(_) => "Ed25519 public key",
        }
    }

    pub fn default_algorithm(&self) -> Algorithm {
        match self {
            Self::Secret(_) => Algorithm::HS256,
            Self::Rsa(_) => Algorithm::RS256,
            Self::Ec(_) => Algorithm::ES256,
            Self::Ed(_) => Algorithm::EdDSA,
        }
    }

    /// Whether `alg` belongs to this key's family. Checked at start so that no configuration can
    /// accept an HMAC token "signed" with a public key (algorithm confusion).
    pub fn accepts(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Secret(_) => is_hmac(alg),
            Self::Rsa(_) => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::Ec(_) => matches!(alg, ES256 | ES384),
            Self::Ed(_) => matches!(alg, EdDSA),
        }
    }

    /// The key in the form the verifier uses (checked when the verifier is built).
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        match self {
            Self::Secret(s) => Ok(DecodingKey::from_secret(s)),
            Self::Rsa(pem) => DecodingKey::from_rsa_pem(pem),
            Self::Ec(pem) => DecodingKey::from_ec_pem(pem),
            Self::Ed(pem) => DecodingKey::from_ed_pem(pem),
        }
    }
}

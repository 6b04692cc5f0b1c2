//! Key families and algorithm confusion: RSA, EC and Ed25519 public keys, and HMAC tokens keyed
//! with a public key.

use jsonwebtoken::{Algorithm, EncodingKey};

use super::common::*;
use support::app::*;

#[tokio::test]
async fn an_rs256_token_is_accepted_with_the_rsa_public_key() {
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa private key");
    let t = sign(Algorithm::RS256, &key, &claims(&["*"], &[]));
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200);
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    // The classic confusion: the public key, which anyone has, used as an HMAC secret.
    let t = sign(Algorithm::HS256, &EncodingKey::from_secret(RSA_PUBLIC), &claims(&["*"], &["*"]));
    assert_unauthorized(get_events(&app, &["t"], &t).await, Some("algorithm")).await;
    assert_unauthorized(publish_as(&app, &t, "t").await, Some("algorithm")).await;
    // And the gateway's own HMAC tokens mean nothing to an RSA-keyed gateway.
    assert_unauthorized(get_events(&app, &["t"], &token(&["*"], &[])).await, Some("algorithm")).await;
}

#[tokio::test]
async fn an_rs256_token_with_a_signature_from_another_token_is_a_bad_signature() {
    // Widening a token's grants by swapping its payload while keeping a valid signature of other claims.
    let app = spawn_with_public_key(RSA_PUBLIC, Algorithm::RS256).await;
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa private key");
    let good = sign(Algorithm::RS256, &key, &claims(&["*"], &[]));
    let other = sign(Algorithm::RS256, &key, &claims(&["other.*"], &[]));
    let (head_and_payload, _) = good.rsplit_once('.').expect("three parts");
    let (_, other_sig) = other.rsplit_once('.').expect("three parts");
    let spliced = format!("{head_and_payload}.{other_sig}");
    assert_unauthorized(get_events(&app, &["t"], &spliced).await, Some("signature")).await;
}

/// With `public` configured for `alg`, a token signed by the matching private key is accepted
/// and an HS256 token keyed with the public key itself is refused.
async fn assert_key_family(public: &[u8], alg: Algorithm, private: EncodingKey) {
    let app = spawn_with_public_key(public, alg).await;
    let t = sign(alg, &private, &claims(&["*"], &[]));
    assert_eq!(get_events(&app, &["t"], &t).await.status(), 200, "{alg:?}");
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(public), &claims(&["*"], &[]));
    assert_unauthorized(get_events(&app, &["t"], &confused).await, Some("algorithm")).await;
}

#[tokio::test]
async fn an_es256_token_is_accepted_with_the_ec_public_key() {
    assert_key_family(EC_PUBLIC, Algorithm::ES256, EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec private key")).await;
}

#[tokio::test]
async fn an_eddsa_token_is_accepted_with_the_ed25519_public_key() {
    assert_key_family(ED_PUBLIC, Algorithm::EdDSA, EncodingKey::from_ed_pem(ED_PRIVATE).expect("ed25519 private key")).await;
}

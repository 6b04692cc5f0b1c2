//! The ticket string: `<deployment>.<expiry>.<secret>`, pure (no I/O, no clock), so that it can
//! be tested and fuzzed alone.
//!
//! - `deployment`: 12 base64url characters (72 random bits), the tag of the deployment that
//!   issued it, so that a ticket presented to another deployment is refused as foreign without a
//!   lookup (and without a lookup that could only say "unknown");
//! - `expiry`: when it expires, in milliseconds since the epoch, base 36, so that an expired
//!   ticket is refused as such without a lookup (and long after its entry is gone);
//! - `secret`: 22 base64url characters, 128 random bits from the thread's CSPRNG: what makes a
//!   ticket impossible to guess.
//!
//! Clients treat the whole as opaque. The store keys a ticket by the SHA-256 of the whole string
//! ([`Ticket::digest`]): changing any part (extending the expiry) yields a ticket the store has
//! never seen, and reading the store yields no usable ticket.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of a deployment tag.
pub(crate) const DEPLOYMENT_LEN: usize = 12;
/// Random bytes in a ticket's secret part.
const SECRET_BYTES: usize = 16;
/// Length of the secret part (base64url of [`SECRET_BYTES`], no padding).
const SECRET_LEN: usize = 22;
/// Longest expiry part: `u64::MAX` in base 36 has 13 digits.
const EXPIRY_MAX_LEN: usize = 13;
/// Longest well-formed ticket. Anything longer is refused before it is split.
pub(crate) const MAX_LEN: usize = DEPLOYMENT_LEN + 1 + EXPIRY_MAX_LEN + 1 + SECRET_LEN;

/// Why a string is not a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a ticket")]
pub(crate) struct Malformed;

/// A well-formed ticket, borrowed from the string it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket<'a> {
    raw: &'a str,
    pub deployment: &'a str,
    /// Milliseconds since the epoch.
    pub expires_ms: u64,
}

/// A fresh deployment tag.
pub(crate) fn new_deployment() -> String {
    let mut bytes = [0u8; DEPLOYMENT_LEN * 3 / 4];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new ticket of `deployment` expiring at `expires_ms`.
pub(crate) fn mint(deployment: &str, expires_ms: u64) -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    format!("{deployment}.{}.{}", base36(expires_ms), URL_SAFE_NO_PAD.encode(secret))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(EXPIRY_MAX_LEN);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn is_base64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'a> Ticket<'a> {
    /// Reads a ticket, checking each part's alphabet and length: whatever passes is safe to log
    /// the parts of (it never is) and to hash, and nothing oversized is ever processed.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, Malformed> {
        if raw.len() > MAX_LEN {
            return Err(Malformed);
        }
        let mut parts = raw.split('.');
        let (Some(deployment), Some(expiry), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Malformed);
        };
        if deployment.len() != DEPLOYMENT_LEN || !is_base64url(deployment) {
            return Err(Malformed);
        }
        if secret.len() != SECRET_LEN || URL_SAFE_NO_PAD.decode(secret).is_err() {
            return Err(Malformed);
        }
        // `from_str_radix` would also take upper case and a sign: one spelling per number only.
        if expiry.is_empty() || expiry.len() > EXPIRY_MAX_LEN || !expiry.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
            return Err(Malformed);
        }
        let expires_ms = u64::from_str_radix(expiry, 36).map_err(|_| Malformed)?;
        if base36(expires_ms) != expiry {
            return Err(Malformed);
        }
        Ok(Self { raw, deployment, expires_ms })
    }

    /// The key the store keeps this ticket under: base64url of the SHA-256 of the whole string.
    pub(crate) fn digest(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.raw.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_ticket_parses_back_to_its_parts() {
        let deployment = new_deployment();
        assert_eq!(deployment.len(), DEPLOYMENT_LEN);
        for expires_ms in [0, 1, 35, 36, 1_795_484_965_819, u64::MAX] {
            let ticket = mint(&deployment, expires_ms);
            assert!(ticket.len() <= MAX_LEN, "{ticket}");
            let parsed = Ticket::parse(&ticket).expect("a minted ticket parses");
            assert_eq!((parsed.deployment, parsed.expires_ms), (deployment.as_str(), expires_ms));
        }
    }

    #[test]
    fn tickets_differ_and_so_do_their_digests() {
        let d = new_deployment();
        let (a, b) = (mint(&d, 1), mint(&d, 1));
        assert_ne!(a, b);
        let (pa, pb) = (Ticket::parse(&a).expect("a"), Ticket::parse(&b).expect("b"));
        assert_ne!(pa.digest(), pb.digest());
        assert_eq!(pa.digest().len(), 43);
        assert_eq!(pa.digest(), Ticket::parse(&a).expect("a").digest(), "the digest is stable");
    }

    #[test]
    fn a_changed_expiry_is_another_ticket() {
        let ticket = mint(&new_deployment(), 1_000);
        let (head, secret) = ticket.rsplit_once('.').expect("parts");
        let (deployment, _) = head.split_once('.').expect("parts");
        let extended = format!("{deployment}.{}.{secret}", base36(9_999_999_999_999));
        assert_ne!(Ticket::parse(&extended).expect("well formed").digest(), Ticket::parse(&ticket).expect("ticket").digest());
    }

    #[test]
    fn anything_else_is_malformed() {
        let good = mint("AAAAAAAAAAAA", 1_795_484_965_819);
        let secret = good.rsplit('.').next().expect("secret").to_owned();
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b.c".into(),
            format!("{good}.x"),
            format!("AAAAAAAAAAA.1.{secret}"),
            format!("AAAAAAAAAAAAA.1.{secret}"),
            format!("AAAAAAAAAAA=.1.{secret}"),
            format!("AAAAAAAAAAAA..{secret}"),
            format!("AAAAAAAAAAAA.1A.{secret}"),
            format!("AAAAAAAAAAAA.+1.{secret}"),
            format!("AAAAAAAAAAAA.01.{secret}"),
            format!("AAAAAAAAAAAA.zzzzzzzzzzzzz.{secret}"),
            format!("AAAAAAAAAAAA.1.{}", &secret[1..]),
            format!("AAAAAAAAAAAA.1.{secret}A"),
            format!("AAAAAAAAAAAA.1.{}+", &secret[1..]),
            "x".repeat(10_000),
            format!("{good}\n"),
        ];
        for case in &cases {
            assert_eq!(Ticket::parse(case), Err(Malformed), "{case:?}");
        }
    }
}

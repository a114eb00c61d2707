//! The `X-Hub-Signature` check: `sha256=<hex HMAC-SHA256(secret, raw body)>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// There is no `X-Hub-Signature` header (or it is blank).
    #[error("the X-Hub-Signature header is missing; set the webhook's secret in Bitbucket")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("the X-Hub-Signature header is not of the form sha256=<64 hex digits>")]
    Malformed,
    /// The header is well formed but is not the HMAC of this body with this secret.
    #[error(
        "the X-Hub-Signature header does not match the body; check that the webhook's secret \
         in Bitbucket is the one reposync holds"
    )]
    Mismatch,
}

/// Checks `X-Hub-Signature` (passed as `header`) against the HMAC-SHA256 of the raw body.
///
/// The comparison runs in constant time. The body must be the exact bytes received, before any
/// parsing. Whether an unsigned delivery (such as Server's ping) is acceptable is the caller's
/// decision: this function refuses it with [`SignatureError::Missing`].
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let Some(header) = header else {
        return Err(SignatureError::Missing);
    };
    let digest = header
        .split_at_checked(PREFIX.len())
        .filter(|(algorithm, hex)| algorithm.eq_ignore_ascii_case(PREFIX) && hex.len() == 64)
        .and_then(|(_, hex)| hex::decode(hex).ok())
        .ok_or(SignatureError::Malformed)?;
    mac(secret)
        .chain_update(body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature` value Bitbucket would send for `body`: `sha256=<hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let tag = mac(secret).chain_update(body).finalize().into_bytes();
    format!("{PREFIX}{}", hex::encode(tag))
}

#[allow(clippy::expect_used)]
fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length (a long one is hashed first), so this cannot fail.
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

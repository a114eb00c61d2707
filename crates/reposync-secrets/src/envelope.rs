//! Envelope encryption: one random data key per secret, wrapped by the master key.
//!
//! A sealed value is one self-describing blob:
//!
//! ```text
//! version (1 byte, 0x01)
//! wrap nonce (24 bytes)  || data key sealed under the master key (32 + 16 bytes)
//! value nonce (24 bytes) || value sealed under the data key (len + 16 bytes)
//! ```
//!
//! Both layers use XChaCha20-Poly1305 with random nonces, whose 192 bits make collisions a
//! non-issue without any counter state. Both layers authenticate `version || binding` as
//! associated data, so a blob copied to another record (another binding) or relabelled with
//! another version fails to open instead of decrypting under the wrong name.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::master_key::MasterKey;

/// The only blob format version written and read so far.
const VERSION_1: u8 = 1;
const NONCE_LEN: usize = 24;
const DATA_KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const WRAPPED_KEY_LEN: usize = DATA_KEY_LEN + TAG_LEN;
const WRAP_NONCE_AT: usize = 1;
const WRAPPED_KEY_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const VALUE_NONCE_AT: usize = WRAPPED_KEY_AT + WRAPPED_KEY_LEN;
const VALUE_AT: usize = VALUE_NONCE_AT + NONCE_LEN;
/// The shortest valid blob: everything above plus the tag of an empty value.
const MIN_LEN: usize = VALUE_AT + TAG_LEN;

/// An encrypted secret value as stored in the database.
///
/// Only [`seal`] and [`SealedValue::from_bytes`] build one, so a value of this type always
/// has a known version and a plausible length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue(Vec<u8>);

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The blob is too short or otherwise not shaped like a sealed value.
    #[error("the stored secret is malformed: {reason}")]
    Malformed {
        /// What is wrong, without any of the blob's content.
        reason: &'static str,
    },
    /// The blob was written by a newer (or unknown) format version.
    #[error("the stored secret uses unknown format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// Decryption failed: the master key is not the one that sealed it, the blob was
    /// altered, or it belongs to another record.
    #[error(
        "the stored secret could not be decrypted: the master key is wrong, \
         or the value was altered or belongs to another record"
    )]
    AuthenticationFailed,
    /// The plaintext is larger than the cipher can encrypt in one message.
    #[error("the secret value is too large to encrypt")]
    TooLarge,
}

impl SealedValue {
    /// The blob to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Accepts a stored blob after checking its version and minimum length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SealedValue, SealError> {
        let Some(&version) = bytes.first() else {
            return Err(SealError::Malformed {
                reason: "the blob is empty",
            });
        };
        if version != VERSION_1 {
            return Err(SealError::UnknownVersion { version });
        }
        if bytes.len() < MIN_LEN {
            return Err(SealError::Malformed {
                reason: "the blob is shorter than its fixed header",
            });
        }
        Ok(SealedValue(bytes))
    }
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedValue({} bytes)", self.0.len())
    }
}

/// Encrypts `plaintext` under a fresh data key wrapped by `master`, bound to `binding`.
///
/// `binding` names the record the value belongs to (for example `b"secret:<uuid>:<kind>"`);
/// the same binding must be given to [`open`].
pub fn seal(
    master: &MasterKey,
    binding: &[u8],
    plaintext: &[u8],
) -> Result<SealedValue, SealError> {
    let aad = associated_data(VERSION_1, binding);

    let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    OsRng.fill_bytes(data_key.as_mut_slice());

    let wrap_nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let wrapped_key = cipher(master.as_bytes())
        .encrypt(
            &wrap_nonce,
            Payload {
                msg: data_key.as_slice(),
                aad: &aad,
            },
        )
        .map_err(|_| SealError::TooLarge)?;

    let value_nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let value = cipher(&data_key)
        .encrypt(
            &value_nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::TooLarge)?;

    let mut blob = Vec::with_capacity(VALUE_AT + value.len());
    blob.push(VERSION_1);
    blob.extend_from_slice(&wrap_nonce);
    blob.extend_from_slice(&wrapped_key);
    blob.extend_from_slice(&value_nonce);
    blob.extend_from_slice(&value);
    Ok(SealedValue(blob))
}

/// Decrypts a value sealed by [`seal`] with the same master key and binding.
pub fn open(
    master: &MasterKey,
    binding: &[u8],
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let blob = sealed.as_bytes();
    // `SealedValue` can only be built with a known version and at least `MIN_LEN` bytes, so
    // these slices are in range; `get` keeps that an error rather than a panic regardless.
    let malformed = SealError::Malformed {
        reason: "the blob is shorter than its fixed header",
    };
    let version = *blob.first().ok_or(malformed.clone())?;
    let wrap_nonce = blob
        .get(WRAP_NONCE_AT..WRAPPED_KEY_AT)
        .ok_or(malformed.clone())?;
    let wrapped_key = blob
        .get(WRAPPED_KEY_AT..VALUE_NONCE_AT)
        .ok_or(malformed.clone())?;
    let value_nonce = blob
        .get(VALUE_NONCE_AT..VALUE_AT)
        .ok_or(malformed.clone())?;
    let value = blob.get(VALUE_AT..).ok_or(malformed)?;
    if version != VERSION_1 {
        return Err(SealError::UnknownVersion { version });
    }
    let aad = associated_data(version, binding);

    let data_key = Zeroizing::new(
        cipher(master.as_bytes())
            .decrypt(
                XNonce::from_slice(wrap_nonce),
                Payload {
                    msg: wrapped_key,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)?,
    );
    let data_key: &[u8; DATA_KEY_LEN] =
        data_key
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Malformed {
                reason: "the wrapped data key has the wrong length",
            })?;

    let plaintext = cipher(data_key)
        .decrypt(
            XNonce::from_slice(value_nonce),
            Payload {
                msg: value,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::AuthenticationFailed)?;
    Ok(Zeroizing::new(plaintext))
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(key))
}

fn associated_data(version: u8, binding: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + binding.len());
    aad.push(version);
    aad.extend_from_slice(binding);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINDING: &[u8] = b"secret:7f1c7c2e-0000-4000-8000-000000000001:ssh_key";

    #[test]
    fn round_trip() {
        let master = MasterKey::generate();
        let sealed = seal(&master, BINDING, b"hunter2").unwrap();
        assert_eq!(sealed.as_bytes().len(), MIN_LEN + 7);
        let opened = open(&master, BINDING, &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"hunter2");
    }

    #[test]
    fn round_trip_through_stored_bytes() {
        let master = MasterKey::generate();
        let sealed = seal(&master, BINDING, b"").unwrap();
        let stored = SealedValue::from_bytes(sealed.as_bytes().to_vec()).unwrap();
        assert_eq!(open(&master, BINDING, &stored).unwrap().as_slice(), b"");
    }

    #[test]
    fn value_moved_to_another_record_does_not_open() {
        let master = MasterKey::generate();
        let sealed = seal(&master, BINDING, b"hunter2").unwrap();
        let other = b"secret:7f1c7c2e-0000-4000-8000-000000000002:ssh_key";
        assert_eq!(
            open(&master, other, &sealed).unwrap_err(),
            SealError::AuthenticationFailed
        );
    }

    #[test]
    fn wrong_master_key_does_not_open() {
        let sealed = seal(&MasterKey::generate(), BINDING, b"hunter2").unwrap();
        assert_eq!(
            open(&MasterKey::generate(), BINDING, &sealed).unwrap_err(),
            SealError::AuthenticationFailed
        );
    }

    #[test]
    fn any_tampered_byte_fails_to_open() {
        let master = MasterKey::generate();
        let sealed = seal(&master, BINDING, b"hunter2").unwrap();
        for at in 1..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[at] ^= 0x01;
            let tampered = SealedValue::from_bytes(bytes).unwrap();
            assert_eq!(
                open(&master, BINDING, &tampered).unwrap_err(),
                SealError::AuthenticationFailed,
                "flipping byte {at}"
            );
        }
    }

    #[test]
    fn sealing_twice_gives_different_blobs() {
        let master = MasterKey::generate();
        let a = seal(&master, BINDING, b"hunter2").unwrap();
        let b = seal(&master, BINDING, b"hunter2").unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        // Neither the nonces nor the wrapped data keys repeat.
        assert_ne!(a.as_bytes()[..VALUE_AT], b.as_bytes()[..VALUE_AT]);
    }

    #[test]
    fn malformed_blobs_are_told_apart_from_authentication_failures() {
        assert!(matches!(
            SealedValue::from_bytes(Vec::new()),
            Err(SealError::Malformed { .. })
        ));
        assert!(matches!(
            SealedValue::from_bytes(vec![VERSION_1; MIN_LEN - 1]),
            Err(SealError::Malformed { .. })
        ));
        assert_eq!(
            SealedValue::from_bytes(vec![2; MIN_LEN]),
            Err(SealError::UnknownVersion { version: 2 })
        );
    }

    #[test]
    fn debug_shows_only_the_length() {
        let sealed = seal(&MasterKey::generate(), BINDING, b"hunter2").unwrap();
        assert_eq!(
            format!("{sealed:?}"),
            format!("SealedValue({} bytes)", MIN_LEN + 7)
        );
    }

    /// Freezes the version 1 wire format: a blob written by this code must open forever.
    #[test]
    fn version_1_blob_still_opens() {
        let master = MasterKey::from_bytes(*b"reposync wire format test key 01");
        let stored = hex(VERSION_1_BLOB);
        let sealed = SealedValue::from_bytes(stored).unwrap();
        let opened = open(&master, b"secret:frozen:token", &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"frozen plaintext");
    }

    /// `seal` of `b"frozen plaintext"` under the key and binding above, as written once.
    const VERSION_1_BLOB: &str = concat!(
        "0199c1a076c431b2099c39466ff526d6f5d85e25d5074df4140ff6106277ba2a",
        "def67e42686911cc45d3de08fc24d90c9c40d51161e352723c2b1e86d0305217",
        "c0ec247767deec174b26056e63e7fe26722a576e6d37cdc2a1867ab0a7291b10",
        "99265fed0cbc3c34417642c9aefecc403cb06a11a74ecef24fee3596bc3d1360",
        "a9",
    );

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}

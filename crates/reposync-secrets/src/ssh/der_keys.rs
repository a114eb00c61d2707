//! Conversion of DER-encoded keys (PKCS#1, PKCS#8, SEC1) into OpenSSH keypairs.
//!
//! Each function here takes decrypted DER and returns `KeypairData`. "Could not decode"
//! becomes [`SshKeyError::Malformed`] with a fixed reason; the callers that decrypted the
//! DER themselves turn that into [`SshKeyError::WrongPassphrase`], because without an
//! integrity check a wrong passphrase looks exactly like corrupt data.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::der::Decode;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::{AssociatedOid, ObjectIdentifier, PrivateKeyInfo};
use rsa::pkcs1::DecodeRsaPrivateKey;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use zeroize::Zeroizing;

use super::SshKeyError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

fn malformed(what: &str) -> SshKeyError {
    SshKeyError::Malformed(format!("the {what} could not be decoded"))
}

/// Converts an RSA key in PKCS#1 DER (`BEGIN RSA PRIVATE KEY`).
pub(super) fn from_pkcs1(der: &[u8]) -> Result<KeypairData, SshKeyError> {
    let key =
        rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|_| malformed("PKCS#1 RSA key data"))?;
    rsa_keypair(&key)
}

/// Converts a key in unencrypted PKCS#8 DER (`BEGIN PRIVATE KEY`).
pub(super) fn from_pkcs8(der: &[u8]) -> Result<KeypairData, SshKeyError> {
    let info = PrivateKeyInfo::from_der(der).map_err(|_| malformed("PKCS#8 structure"))?;
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let key = rsa::RsaPrivateKey::try_from(info)
            .map_err(|_| malformed("RSA key inside the PKCS#8 structure"))?;
        rsa_keypair(&key)
    } else if oid == EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|_| malformed("curve of the PKCS#8 ECDSA key"))?;
        let reason = "ECDSA key inside the PKCS#8 structure";
        if curve == p256::NistP256::OID {
            let key = p256::SecretKey::try_from(info).map_err(|_| malformed(reason))?;
            Ok(p256_keypair(&key))
        } else if curve == p384::NistP384::OID {
            let key = p384::SecretKey::try_from(info).map_err(|_| malformed(reason))?;
            Ok(p384_keypair(&key))
        } else if curve == p521::NistP521::OID {
            let key = p521::SecretKey::try_from(info).map_err(|_| malformed(reason))?;
            Ok(p521_keypair(&key))
        } else {
            Err(unsupported_curve(curve))
        }
    } else if oid == ED25519 {
        ed25519_keypair(&info)
    } else if oid == DSA {
        Err(SshKeyError::DsaUnsupported)
    } else if oid == RSA_PSS {
        Err(SshKeyError::UnsupportedAlgorithm(
            "RSA-PSS (an RSA key restricted to PSS signatures cannot be used for SSH)".to_owned(),
        ))
    } else if oid == ED448 {
        Err(SshKeyError::UnsupportedAlgorithm("Ed448".to_owned()))
    } else {
        Err(SshKeyError::UnsupportedAlgorithm(format!(
            "PKCS#8 key with algorithm identifier {oid}"
        )))
    }
}

/// Converts an ECDSA key in SEC1 DER (`BEGIN EC PRIVATE KEY`).
pub(super) fn from_sec1(der: &[u8]) -> Result<KeypairData, SshKeyError> {
    let reason = "SEC1 ECDSA key data";
    let key = sec1::EcPrivateKey::from_der(der).map_err(|_| malformed(reason))?;
    // OpenSSL always names the curve; without it the scalar's length still tells the
    // three NIST curves apart, which is all we could accept anyway.
    let curve = match key.parameters.and_then(|p| p.named_curve()) {
        Some(curve) => curve,
        None => match key.private_key.len() {
            32 => p256::NistP256::OID,
            48 => p384::NistP384::OID,
            66 => p521::NistP521::OID,
            _ => return Err(malformed(reason)),
        },
    };
    if curve == p256::NistP256::OID {
        let key = p256::SecretKey::from_sec1_der(der).map_err(|_| malformed(reason))?;
        Ok(p256_keypair(&key))
    } else if curve == p384::NistP384::OID {
        let key = p384::SecretKey::from_sec1_der(der).map_err(|_| malformed(reason))?;
        Ok(p384_keypair(&key))
    } else if curve == p521::NistP521::OID {
        let key = p521::SecretKey::from_sec1_der(der).map_err(|_| malformed(reason))?;
        Ok(p521_keypair(&key))
    } else {
        Err(unsupported_curve(curve))
    }
}

fn unsupported_curve(curve: ObjectIdentifier) -> SshKeyError {
    let name = if curve == SECP256K1 {
        "ECDSA on curve secp256k1".to_owned()
    } else {
        format!("ECDSA on curve {curve}")
    };
    SshKeyError::UnsupportedAlgorithm(name)
}

fn rsa_keypair(key: &rsa::RsaPrivateKey) -> Result<KeypairData, SshKeyError> {
    // Multi-prime RSA is the only thing the conversion refuses; SSH has no encoding for it.
    let keypair = RsaKeypair::try_from(key).map_err(|_| {
        SshKeyError::UnsupportedAlgorithm("multi-prime RSA (more than two primes)".to_owned())
    })?;
    Ok(KeypairData::Rsa(keypair))
}

fn p256_keypair(key: &p256::SecretKey) -> KeypairData {
    KeypairData::Ecdsa(EcdsaKeypair::NistP256 {
        public: key.public_key().to_encoded_point(false),
        private: key.clone().into(),
    })
}

fn p384_keypair(key: &p384::SecretKey) -> KeypairData {
    KeypairData::Ecdsa(EcdsaKeypair::NistP384 {
        public: key.public_key().to_encoded_point(false),
        private: key.clone().into(),
    })
}

fn p521_keypair(key: &p521::SecretKey) -> KeypairData {
    KeypairData::Ecdsa(EcdsaKeypair::NistP521 {
        public: key.public_key().to_encoded_point(false),
        private: key.clone().into(),
    })
}

/// Ed25519 in PKCS#8 (RFC 8410) wraps the 32-byte seed in one more OCTET STRING.
fn ed25519_keypair(info: &PrivateKeyInfo<'_>) -> Result<KeypairData, SshKeyError> {
    let reason = "Ed25519 key inside the PKCS#8 structure";
    let seed = OctetStringRef::from_der(info.private_key).map_err(|_| malformed(reason))?;
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(seed.as_bytes().try_into().map_err(|_| malformed(reason))?);
    let keypair = Ed25519Keypair::from_seed(&seed);
    // PKCS#8 v2 may carry the public key too; a mismatch means the file was tampered with
    // or assembled wrongly, and using it would give Bitbucket a key that cannot log in.
    if let Some(public) = info.public_key
        && public != keypair.public.as_ref()
    {
        return Err(SshKeyError::Malformed(
            "the public key stored with the Ed25519 key does not match it".to_owned(),
        ));
    }
    Ok(KeypairData::Ed25519(keypair))
}

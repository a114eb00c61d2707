//! Decryption of legacy OpenSSL-encrypted PEM (`Proc-Type: 4,ENCRYPTED`).
//!
//! `ssh-keygen -m PEM -N pass` and `openssl genrsa -aes128` still write this format. The key
//! is derived with OpenSSL's `EVP_BytesToKey` (MD5, one iteration, salt = the first eight
//! bytes of the IV) and the body is CBC-encrypted with PKCS#7 padding. CBC has no integrity
//! check, so a wrong passphrase shows up only as bad padding or undecodable DER afterwards.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, KeyInit, KeyIvInit};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::SshKeyError;
use super::pem::PemBlock;

/// The block ciphers (all in CBC mode) OpenSSL offers for legacy PEM that are still worth accepting.
#[derive(Clone, Copy)]
enum PemCipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
}

impl PemCipher {
    fn from_name(name: &str) -> Option<PemCipher> {
        match name.to_ascii_uppercase().as_str() {
            "AES-128-CBC" => Some(PemCipher::Aes128),
            "AES-192-CBC" => Some(PemCipher::Aes192),
            "AES-256-CBC" => Some(PemCipher::Aes256),
            "DES-EDE3-CBC" => Some(PemCipher::DesEde3),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            PemCipher::Aes128 => 16,
            PemCipher::Aes192 => 24,
            PemCipher::Aes256 => 32,
            PemCipher::DesEde3 => 24,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            PemCipher::DesEde3 => 8,
            _ => 16,
        }
    }
}

/// Whether the block says it is encrypted (`Proc-Type: 4,ENCRYPTED`).
pub(super) fn is_encrypted(block: &PemBlock) -> bool {
    block
        .header("Proc-Type")
        .is_some_and(|value| value.to_ascii_uppercase().ends_with("ENCRYPTED"))
}

/// Decrypts the body of an encrypted legacy PEM block.
///
/// A padding failure is reported as [`SshKeyError::WrongPassphrase`]; the caller must treat
/// undecodable DER in the result the same way, since CBC cannot tell the two apart.
pub(super) fn decrypt(
    block: &PemBlock,
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SshKeyError> {
    let dek_info = block.header("DEK-Info").ok_or_else(|| {
        SshKeyError::Malformed("the key is marked encrypted but has no DEK-Info line".to_owned())
    })?;
    let (name, iv_hex) = dek_info.split_once(',').ok_or_else(|| {
        SshKeyError::Malformed("the DEK-Info line has no initialisation vector".to_owned())
    })?;
    let name = name.trim();
    let cipher = PemCipher::from_name(name).ok_or_else(|| {
        SshKeyError::UnsupportedAlgorithm(format!(
            "PEM encryption {name} (only AES-128/192/256-CBC and DES-EDE3-CBC are supported)"
        ))
    })?;
    let iv = decode_hex(iv_hex.trim())
        .filter(|iv| iv.len() == cipher.iv_len())
        .ok_or_else(|| {
            SshKeyError::Malformed(
                "the DEK-Info initialisation vector is not hex of the right length".to_owned(),
            )
        })?;
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&iv[..8]);
    let key = evp_bytes_to_key(passphrase, &salt, cipher.key_len());

    let mut buffer = Zeroizing::new(block.body.to_vec());
    let plain_len = match cipher {
        PemCipher::Aes128 => cbc_decrypt::<aes::Aes128>(&key, &iv, &mut buffer),
        PemCipher::Aes192 => cbc_decrypt::<aes::Aes192>(&key, &iv, &mut buffer),
        PemCipher::Aes256 => cbc_decrypt::<aes::Aes256>(&key, &iv, &mut buffer),
        PemCipher::DesEde3 => cbc_decrypt::<des::TdesEde3>(&key, &iv, &mut buffer),
    }?;
    buffer.truncate(plain_len);
    Ok(buffer)
}

/// Decrypts `buffer` in place and returns the length of the unpadded plaintext.
fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buffer: &mut [u8]) -> Result<usize, SshKeyError>
where
    C: BlockCipher + BlockDecryptMut + KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| {
        SshKeyError::Malformed("the DEK-Info line does not fit its cipher".to_owned())
    })?;
    if buffer.is_empty() || !buffer.len().is_multiple_of(C::block_size()) {
        return Err(SshKeyError::Malformed(
            "the encrypted key body is not a whole number of cipher blocks".to_owned(),
        ));
    }
    decryptor
        .decrypt_padded_mut::<Pkcs7>(buffer)
        .map(|plain| plain.len())
        .map_err(|_| SshKeyError::WrongPassphrase)
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration: `D_i = MD5(D_{i-1} || pass || salt)`.
fn evp_bytes_to_key(passphrase: &[u8], salt: &[u8; 8], key_len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + 16));
    let mut previous: Option<Zeroizing<[u8; 16]>> = None;
    while key.len() < key_len {
        let mut hasher = Md5::new();
        if let Some(previous) = &previous {
            hasher.update(previous.as_slice());
        }
        hasher.update(passphrase);
        hasher.update(salt);
        let digest = Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
        key.extend_from_slice(digest.as_slice());
        previous = Some(digest);
    }
    key.truncate(key_len);
    key
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl enc -aes-256-cbc -P -md md5 -pass pass:password -S 0102030405060708`
    /// prints this key, pinning our `EVP_BytesToKey` to OpenSSL's.
    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        let key = evp_bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(
            key.iter().map(|b| format!("{b:02X}")).collect::<String>(),
            "E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02"
        );
    }

    #[test]
    fn decodes_hex() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}

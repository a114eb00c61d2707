//! Reading the OpenSSH private key container (`openssh-key-v1`).
//!
//! ssh-key 0.6 decodes an ECDSA private scalar only when it has the curve's full width, but
//! OpenSSH writes it as a minimal mpint: about half of all P-521 keys, and one P-256 or
//! P-384 key in 256, have a shorter scalar and would be rejected as corrupt. So this module
//! opens the container itself, decrypts with ssh-key's own KDF and cipher code, pads the
//! scalar to full width, and hands ssh-key an equivalent unencrypted container to decode
//! and validate. Its own parsing stops at splitting fields; every check of the key itself
//! stays in ssh-key.

use ssh_key::{Cipher, Kdf, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::{SshKeyError, check_key_type};

const AUTH_MAGIC: &[u8] = b"openssh-key-v1\0";
/// The padding block size of an unencrypted container.
const PLAIN_BLOCK_SIZE: usize = 8;
/// `ssh-keygen -a` defaults to 16 rounds and each costs milliseconds; the cap keeps one
/// pasted key from occupying a CPU for minutes while allowing every sane setting.
const MAX_BCRYPT_ROUNDS: u32 = 1000;

/// Parses an OpenSSH private key, decrypting it with `passphrase` if it is encrypted.
pub(super) fn parse(body: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKey, SshKeyError> {
    let mut reader = Reader::new(body);
    if reader.take(AUTH_MAGIC.len())? != AUTH_MAGIC {
        return Err(malformed("does not start with the openssh-key-v1 marker"));
    }
    let cipher_name = reader.string()?;
    let kdf_name = reader.string()?;
    let kdf_options = reader.string()?;
    let key_count = reader.u32()?;
    if key_count != 1 {
        return Err(SshKeyError::Malformed(format!(
            "the OpenSSH key file holds {key_count} keys instead of one"
        )));
    }
    let public_blob = reader.string()?;
    let public = PublicKey::from_bytes(public_blob)
        .map_err(|_| malformed("has a public key that cannot be decoded"))?;
    // The public half is stored in clear, so an unusable key type is reported before
    // anyone is asked for a passphrase.
    check_key_type(public.key_data())?;
    let private_section = reader.string()?;

    let cipher = std::str::from_utf8(cipher_name)
        .ok()
        .and_then(|name| Cipher::new(name).ok())
        .ok_or_else(|| {
            SshKeyError::UnsupportedAlgorithm(format!(
                "OpenSSH key encryption {}",
                printable(cipher_name)
            ))
        })?;
    let tag = if cipher.has_tag() {
        let mut tag = [0u8; 16];
        tag.copy_from_slice(reader.take(16)?);
        Some(tag)
    } else {
        None
    };
    if !reader.is_empty() {
        return Err(malformed("has unexpected data after the key"));
    }

    let mut section = Zeroizing::new(private_section.to_vec());
    if cipher.is_some() {
        let kdf = parse_kdf(kdf_name, kdf_options)?;
        let passphrase = passphrase.ok_or(SshKeyError::PassphraseRequired)?;
        if !section.len().is_multiple_of(cipher.block_size()) {
            return Err(malformed(
                "has an encrypted part that is not a whole number of blocks",
            ));
        }
        let (key, iv) = kdf
            .derive_key_and_iv(cipher, passphrase)
            .map_err(|_| malformed("has invalid key derivation parameters"))?;
        // Only the AEAD ciphers can fail here, and only on a wrong tag.
        cipher
            .decrypt(&key, &iv, &mut section, tag)
            .map_err(|_| SshKeyError::WrongPassphrase)?;
    } else if kdf_name != b"none" {
        return Err(malformed("names a key derivation but no cipher"));
    }

    let plain = unencrypted_container(public_blob, &section, cipher.is_some())?;
    PrivateKey::from_bytes(&plain)
        .map_err(|_| malformed("has a private key that cannot be decoded"))
}

fn malformed(reason: &str) -> SshKeyError {
    SshKeyError::Malformed(format!("the OpenSSH key data {reason}"))
}

/// Shows a name from the file only if it is short printable ASCII.
fn printable(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) if text.len() <= 40 && text.bytes().all(|b| b.is_ascii_graphic()) => {
            text.to_owned()
        }
        _ => "(unreadable name)".to_owned(),
    }
}

fn parse_kdf(name: &[u8], options: &[u8]) -> Result<Kdf, SshKeyError> {
    if name != b"bcrypt" {
        return Err(SshKeyError::UnsupportedAlgorithm(format!(
            "OpenSSH key derivation {}",
            printable(name)
        )));
    }
    let mut reader = Reader::new(options);
    let salt = reader.string()?.to_vec();
    let rounds = reader.u32()?;
    if !reader.is_empty() || rounds == 0 {
        return Err(malformed("has invalid bcrypt parameters"));
    }
    if rounds > MAX_BCRYPT_ROUNDS {
        return Err(SshKeyError::UnsupportedAlgorithm(format!(
            "bcrypt key derivation with {rounds} rounds (at most {MAX_BCRYPT_ROUNDS} are \
             accepted; re-encrypt the key with `ssh-keygen -p -a 100 -f FILE`)"
        )));
    }
    Ok(Kdf::Bcrypt { salt, rounds })
}

/// Rebuilds a decrypted private section as a complete unencrypted container.
///
/// The section is `checkint checkint keypair comment padding`. The keypair's fields are
/// copied unchanged, except that an ECDSA scalar is padded to its curve's full width.
fn unencrypted_container(
    public_blob: &[u8],
    section: &[u8],
    was_encrypted: bool,
) -> Result<Zeroizing<Vec<u8>>, SshKeyError> {
    let mut reader = Reader::new(section);
    let check1 = reader.u32()?;
    let check2 = reader.u32()?;
    if check1 != check2 {
        // These two equal random numbers exist precisely to detect a wrong passphrase.
        return Err(if was_encrypted {
            SshKeyError::WrongPassphrase
        } else {
            malformed("has check values that do not match")
        });
    }

    // Room for everything below without reallocating, so no stray copy of the key is left
    // in freed memory: the section, the scalar padding and the block padding.
    let mut plain_section = Zeroizing::new(Vec::with_capacity(section.len() + 80));
    plain_section.extend_from_slice(&check1.to_be_bytes());
    plain_section.extend_from_slice(&check2.to_be_bytes());

    let algorithm = reader.string()?;
    put_string(&mut plain_section, algorithm);
    match algorithm {
        b"ssh-ed25519" => copy_strings(&mut reader, &mut plain_section, 2)?,
        // n, e, d, iqmp, p, q
        b"ssh-rsa" => copy_strings(&mut reader, &mut plain_section, 6)?,
        _ if algorithm.starts_with(b"ecdsa-sha2-") => {
            let curve = reader.string()?;
            let width = match curve {
                b"nistp256" => 32,
                b"nistp384" => 48,
                b"nistp521" => 66,
                _ => return Err(malformed("names an unknown ECDSA curve")),
            };
            put_string(&mut plain_section, curve);
            let point = reader.string()?;
            put_string(&mut plain_section, point);
            let scalar = full_width_scalar(reader.string()?, width)?;
            put_string(&mut plain_section, &scalar);
        }
        // The public key's type was checked already, so this is a private half that does
        // not match its public half.
        _ => {
            return Err(malformed(
                "has a private part of another type than its public part",
            ));
        }
    }
    let comment = reader.string()?;
    put_string(&mut plain_section, comment);
    // The rest is padding for the original cipher's block size; ours is re-made below.
    let padding = (PLAIN_BLOCK_SIZE - plain_section.len() % PLAIN_BLOCK_SIZE) % PLAIN_BLOCK_SIZE;
    plain_section.extend((1..=padding).map(|i| i as u8));

    let mut plain = Zeroizing::new(Vec::with_capacity(
        AUTH_MAGIC.len() + 6 * 4 + "none".len() * 2 + public_blob.len() + plain_section.len(),
    ));
    plain.extend_from_slice(AUTH_MAGIC);
    put_string(&mut plain, b"none");
    put_string(&mut plain, b"none");
    put_string(&mut plain, b"");
    plain.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut plain, public_blob);
    put_string(&mut plain, &plain_section);
    Ok(plain)
}

/// Re-encodes an mpint scalar with exactly `width` magnitude bytes (plus a sign byte if
/// the top bit is set), the only form ssh-key 0.6 decodes.
fn full_width_scalar(mpint: &[u8], width: usize) -> Result<Zeroizing<Vec<u8>>, SshKeyError> {
    let leading_zeros = mpint.iter().take_while(|&&b| b == 0).count();
    let digits = &mpint[leading_zeros..];
    if digits.len() > width {
        return Err(malformed(
            "has an ECDSA private scalar too large for its curve",
        ));
    }
    let mut scalar = Zeroizing::new(Vec::with_capacity(width + 1));
    if digits.len() == width && digits.first().is_some_and(|&b| b >= 0x80) {
        scalar.push(0);
    }
    let padded_len = scalar.len() + width - digits.len();
    scalar.resize(padded_len, 0);
    scalar.extend_from_slice(digits);
    Ok(scalar)
}

fn copy_strings(
    reader: &mut Reader<'_>,
    out: &mut Vec<u8>,
    count: usize,
) -> Result<(), SshKeyError> {
    for _ in 0..count {
        put_string(out, reader.string()?);
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths come from fields of an input that itself fit in memory and was read with
    // u32 lengths, so they always fit a u32.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over SSH wire-format data (big-endian u32s and length-prefixed strings).
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], SshKeyError> {
        if self.rest.len() < len {
            return Err(malformed("ends too early"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, SshKeyError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], SshKeyError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| malformed("has a field that is too long"))?;
        self.take(len)
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::*;

    #[test]
    fn bcrypt_rounds_are_capped() {
        let mut options = Vec::new();
        put_string(&mut options, &[7; 16]);
        options.extend_from_slice(&(MAX_BCRYPT_ROUNDS + 1).to_be_bytes());
        assert!(matches!(
            parse_kdf(b"bcrypt", &options),
            Err(SshKeyError::UnsupportedAlgorithm(_))
        ));
        options.truncate(options.len() - 4);
        options.extend_from_slice(&MAX_BCRYPT_ROUNDS.to_be_bytes());
        assert!(parse_kdf(b"bcrypt", &options).is_ok());
    }

    #[test]
    fn pads_short_scalars_and_keeps_full_ones() {
        assert_eq!(
            full_width_scalar(&[0x01, 0x02], 4).unwrap().as_slice(),
            [0, 0, 1, 2]
        );
        assert_eq!(
            full_width_scalar(&[0x00, 0x80, 1, 2, 3], 4)
                .unwrap()
                .as_slice(),
            [0, 0x80, 1, 2, 3]
        );
        assert!(full_width_scalar(&[1, 2, 3, 4, 5], 4).is_err());
    }

    /// Regression: a P-256 key whose scalar starts with a zero byte, written the way
    /// OpenSSH writes it (minimal mpint), used to be rejected as damaged.
    #[test]
    fn ecdsa_key_with_short_scalar_parses() {
        let mut scalar = [0x42u8; 32];
        scalar[0] = 0;
        let secret = p256::SecretKey::from_slice(&scalar).unwrap();
        let point = secret.public_key().to_encoded_point(false);

        let mut public_blob = Vec::new();
        put_string(&mut public_blob, b"ecdsa-sha2-nistp256");
        put_string(&mut public_blob, b"nistp256");
        put_string(&mut public_blob, point.as_bytes());

        let mut section = Vec::new();
        section.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 7]);
        put_string(&mut section, b"ecdsa-sha2-nistp256");
        put_string(&mut section, b"nistp256");
        put_string(&mut section, point.as_bytes());
        put_string(&mut section, &scalar[1..]);
        put_string(&mut section, b"comment");
        let mut pad = 1;
        while section.len() % 8 != 0 {
            section.push(pad);
            pad += 1;
        }

        let mut body = AUTH_MAGIC.to_vec();
        put_string(&mut body, b"none");
        put_string(&mut body, b"none");
        put_string(&mut body, b"");
        body.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut body, &public_blob);
        put_string(&mut body, &section);

        let key = parse(&body, None).unwrap();
        let ecdsa = key.key_data().ecdsa().unwrap();
        assert_eq!(ecdsa.private_key_bytes(), scalar);
        assert_eq!(key.comment(), "comment");
    }
}

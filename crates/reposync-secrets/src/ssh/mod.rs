//! SSH private keys: accept what users paste, hand back one normalised OpenSSH key.
//!
//! Whatever format comes in (OpenSSH, PKCS#1, SEC1 or PKCS#8 PEM, encrypted or not), the
//! result is an unencrypted OpenSSH-format key that `ssh` reads, its `SHA256:` fingerprint
//! as `ssh-keygen -l` prints it, and the public line to paste into Bitbucket. Detection
//! goes by the PEM label first, so a DSA or public key is named as such without decoding.

mod der_keys;
mod legacy;
mod openssh;
mod pem;

use std::fmt;

use rand::rngs::OsRng;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use zeroize::Zeroizing;

/// The key algorithms reposync accepts, with their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeyAlgorithm {
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size in bits, as `ssh-keygen -l` prints it.
        bits: u32,
    },
    /// ECDSA on a NIST curve.
    Ecdsa {
        /// The curve.
        curve: EcdsaCurve,
    },
    /// Ed25519.
    Ed25519,
}

impl SshKeyAlgorithm {
    /// The label `ssh-keygen -l` prints in parentheses: `RSA`, `ECDSA` or `ED25519`.
    pub fn label(&self) -> &'static str {
        match self {
            SshKeyAlgorithm::Rsa { .. } => "RSA",
            SshKeyAlgorithm::Ecdsa { .. } => "ECDSA",
            SshKeyAlgorithm::Ed25519 => "ED25519",
        }
    }

    /// The key size in bits, as the first column of `ssh-keygen -l`.
    pub fn bits(&self) -> u32 {
        match self {
            SshKeyAlgorithm::Rsa { bits } => *bits,
            SshKeyAlgorithm::Ecdsa { curve } => curve.bits(),
            SshKeyAlgorithm::Ed25519 => 256,
        }
    }
}

/// Shown as label and size, e.g. `RSA 3072`, `ECDSA 256`, `ED25519 256`.
impl fmt::Display for SshKeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.label(), self.bits())
    }
}

/// The NIST curves OpenSSH supports for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaCurve {
    /// NIST P-256 (`nistp256`).
    NistP256,
    /// NIST P-384 (`nistp384`).
    NistP384,
    /// NIST P-521 (`nistp521`).
    NistP521,
}

impl EcdsaCurve {
    /// The curve's name in SSH key types, e.g. `nistp256`.
    pub fn ssh_name(&self) -> &'static str {
        match self {
            EcdsaCurve::NistP256 => "nistp256",
            EcdsaCurve::NistP384 => "nistp384",
            EcdsaCurve::NistP521 => "nistp521",
        }
    }

    /// The curve's size in bits.
    pub fn bits(&self) -> u32 {
        match self {
            EcdsaCurve::NistP256 => 256,
            EcdsaCurve::NistP384 => 384,
            EcdsaCurve::NistP521 => 521,
        }
    }
}

impl fmt::Display for EcdsaCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ssh_name())
    }
}

/// A parsed SSH private key in the one form reposync stores.
#[derive(Clone)]
pub struct SshKeyMaterial {
    /// The key's algorithm and size.
    pub algorithm: SshKeyAlgorithm,
    /// The SHA-256 fingerprint exactly as `ssh-keygen -l` prints it, e.g. `SHA256:abc…`.
    pub fingerprint: String,
    /// The public key as one `authorized_keys` line, e.g. `ssh-ed25519 AAAA… comment`.
    pub public_key_openssh: String,
    /// The private key re-encoded as an unencrypted OpenSSH-format PEM, for storing (inside
    /// the envelope) and later handing to ssh in a 0600 temp file.
    pub private_key_openssh: Zeroizing<String>,
}

impl fmt::Debug for SshKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshKeyMaterial")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint)
            .field("public_key_openssh", &self.public_key_openssh)
            .field("private_key_openssh", &"<redacted>")
            .finish()
    }
}

/// Why a pasted key was not accepted; every message is safe to show the user.
///
/// No variant carries any part of the key, the passphrase or the decoding library's
/// error text, which may quote the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshKeyError {
    /// The input is a public key.
    #[error(
        "this is a public key; paste the private key instead (the file without .pub, \
         e.g. ~/.ssh/id_ed25519, which starts with \"-----BEGIN\")"
    )]
    PublicKeyGiven,
    /// The key is encrypted and no passphrase was given.
    #[error("this private key is protected by a passphrase; enter the passphrase too")]
    PassphraseRequired,
    /// The passphrase does not decrypt the key.
    #[error("the passphrase is wrong: it does not decrypt this private key")]
    WrongPassphrase,
    /// The key is a DSA key.
    #[error(
        "DSA keys are no longer supported by Bitbucket or OpenSSH; \
         generate an Ed25519 key instead (ssh-keygen -t ed25519)"
    )]
    DsaUnsupported,
    /// The key, or the way it is encrypted, is of a kind reposync cannot use.
    #[error(
        "unsupported key type: {0}; use an Ed25519, ECDSA (P-256, P-384, P-521) \
         or RSA (2048 bits or more) key"
    )]
    UnsupportedAlgorithm(String),
    /// The input is not a private key in any format we know.
    #[error(
        "not a private key in a recognised format (OpenSSH, PEM PKCS#1, PKCS#8); \
         a PuTTY .ppk key must first be exported with PuTTYgen (Conversions > Export OpenSSH key)"
    )]
    Unrecognized,
    /// The format was recognised but its content is corrupt or incomplete.
    #[error("the private key is damaged: {0}")]
    Malformed(String),
}

/// Parses a private key in any supported format into normalised [`SshKeyMaterial`].
///
/// Accepts OpenSSH (`BEGIN OPENSSH PRIVATE KEY`), PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`), SEC1
/// ECDSA (`BEGIN EC PRIVATE KEY`), both optionally with legacy OpenSSL encryption, and
/// PKCS#8 (`BEGIN PRIVATE KEY`, `BEGIN ENCRYPTED PRIVATE KEY`). CRLF line endings,
/// indentation, re-wrapped lines and surrounding text are tolerated. A passphrase given for
/// an unencrypted key is ignored, and an empty passphrase counts as none, since no format
/// encrypts under an empty one.
pub fn parse_private_key(
    text: &str,
    passphrase: Option<&[u8]>,
) -> Result<SshKeyMaterial, SshKeyError> {
    let passphrase = passphrase.filter(|p| !p.is_empty());
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(SshKeyError::Unrecognized);
    }

    let markers = pem::begin_markers(text);
    // A paste may hold both halves of a key pair; the private one is what we want.
    if let Some(marker) = markers.iter().find(|m| m.label.ends_with("PRIVATE KEY")) {
        let key = parse_private_block(text, marker, passphrase)?;
        return material(&key);
    }
    if markers.iter().any(|m| m.label.ends_with("PUBLIC KEY")) || looks_like_public_key(text) {
        return Err(SshKeyError::PublicKeyGiven);
    }
    Err(SshKeyError::Unrecognized)
}

/// Generates a new Ed25519 key with the given comment.
pub fn generate_ed25519(comment: &str) -> Result<SshKeyMaterial, SshKeyError> {
    let keypair = Ed25519Keypair::random(&mut OsRng);
    let key = PrivateKey::new(KeypairData::Ed25519(keypair), comment).map_err(|_| {
        SshKeyError::Malformed("the generated key could not be assembled".to_owned())
    })?;
    material(&key)
}

fn parse_private_block(
    text: &str,
    marker: &pem::Marker<'_>,
    passphrase: Option<&[u8]>,
) -> Result<PrivateKey, SshKeyError> {
    // Decide on the label alone where we can: a DSA key needs no decoding to be refused.
    match marker.label {
        "DSA PRIVATE KEY" => return Err(SshKeyError::DsaUnsupported),
        "OPENSSH PRIVATE KEY"
        | "RSA PRIVATE KEY"
        | "EC PRIVATE KEY"
        | "PRIVATE KEY"
        | "ENCRYPTED PRIVATE KEY" => {}
        _ => return Err(SshKeyError::Unrecognized),
    }
    let block = pem::decode_block(text, marker)?;
    let key_data = match marker.label {
        "OPENSSH PRIVATE KEY" => return openssh::parse(&block.body, passphrase),
        "RSA PRIVATE KEY" => legacy_pem_key(&block, passphrase, der_keys::from_pkcs1)?,
        "EC PRIVATE KEY" => legacy_pem_key(&block, passphrase, der_keys::from_sec1)?,
        "ENCRYPTED PRIVATE KEY" => encrypted_pkcs8_key(&block, passphrase)?,
        _ => der_keys::from_pkcs8(&block.body)?,
    };
    // PEM formats have no comment; the public line simply has none either.
    PrivateKey::new(key_data, "")
        .map_err(|_| SshKeyError::Malformed("the key could not be assembled".to_owned()))
}

fn legacy_pem_key(
    block: &pem::PemBlock,
    passphrase: Option<&[u8]>,
    convert: fn(&[u8]) -> Result<KeypairData, SshKeyError>,
) -> Result<KeypairData, SshKeyError> {
    if !legacy::is_encrypted(block) {
        return convert(&block.body);
    }
    let passphrase = passphrase.ok_or(SshKeyError::PassphraseRequired)?;
    let der = legacy::decrypt(block, passphrase)?;
    convert(&der).map_err(wrong_passphrase_if_malformed)
}

fn encrypted_pkcs8_key(
    block: &pem::PemBlock,
    passphrase: Option<&[u8]>,
) -> Result<KeypairData, SshKeyError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.body.as_slice()).map_err(|_| {
        SshKeyError::Malformed(
            "the encrypted PKCS#8 structure could not be decoded, \
             or it uses an encryption scheme this server does not know"
                .to_owned(),
        )
    })?;
    check_pkcs8_kdf_cost(&info)?;
    let passphrase = passphrase.ok_or(SshKeyError::PassphraseRequired)?;
    let document = info.decrypt(passphrase).map_err(|err| {
        use pkcs8::pkcs5::Error as Pkcs5Error;
        match err {
            pkcs8::Error::EncryptedPrivateKey(
                Pkcs5Error::UnsupportedAlgorithm { .. } | Pkcs5Error::NoPbes1CryptSupport,
            ) => SshKeyError::UnsupportedAlgorithm(
                "PKCS#8 encryption scheme (only PBES2 with PBKDF2 or scrypt and AES or 3DES \
                 is supported; convert the key with `ssh-keygen -p -f FILE`)"
                    .to_owned(),
            ),
            pkcs8::Error::EncryptedPrivateKey(Pkcs5Error::AlgorithmParametersInvalid {
                ..
            }) => SshKeyError::Malformed(
                "the encryption parameters of the PKCS#8 key are invalid".to_owned(),
            ),
            // A bad padding comes back as `EncryptFailed` (sic) or `DecryptFailed`, and
            // lucky padding over garbage as a DER error: all mean the passphrase is wrong.
            _ => SshKeyError::WrongPassphrase,
        }
    })?;
    der_keys::from_pkcs8(document.as_bytes()).map_err(wrong_passphrase_if_malformed)
}

/// Refuses key derivation settings that would tie up the server for long or exhaust memory.
///
/// OpenSSL uses 2048 PBKDF2 iterations or scrypt with N = 16384 and r = 8 (16 MiB); the
/// limits leave a wide margin above that, but a pasted key must not be able to demand
/// billions of iterations or gigabytes of memory.
fn check_pkcs8_kdf_cost(info: &pkcs8::EncryptedPrivateKeyInfo<'_>) -> Result<(), SshKeyError> {
    const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;
    const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
    const MAX_SCRYPT_PARALLELISM: u16 = 16;
    use pkcs8::pkcs5::pbes2::Kdf;
    let Some(params) = info.encryption_algorithm.pbes2() else {
        return Ok(());
    };
    let too_costly = match &params.kdf {
        Kdf::Pbkdf2(pbkdf2) => pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS,
        Kdf::Scrypt(scrypt) => {
            let memory = 128u64
                .saturating_mul(scrypt.cost_parameter)
                .saturating_mul(u64::from(scrypt.block_size));
            memory > MAX_SCRYPT_MEMORY || scrypt.parallelization > MAX_SCRYPT_PARALLELISM
        }
        _ => false,
    };
    if too_costly {
        return Err(SshKeyError::UnsupportedAlgorithm(
            "PKCS#8 key derivation with an excessive cost (re-encrypt the key with \
             `ssh-keygen -p -f FILE`)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Without an integrity check, undecodable plaintext almost always means a wrong passphrase.
fn wrong_passphrase_if_malformed(err: SshKeyError) -> SshKeyError {
    match err {
        SshKeyError::Malformed(_) => SshKeyError::WrongPassphrase,
        other => other,
    }
}

fn check_key_type(key_data: &KeyData) -> Result<(), SshKeyError> {
    match key_data {
        KeyData::Rsa(_) | KeyData::Ecdsa(_) | KeyData::Ed25519(_) => Ok(()),
        KeyData::Dsa(_) => Err(SshKeyError::DsaUnsupported),
        KeyData::SkEcdsaSha2NistP256(_) | KeyData::SkEd25519(_) => {
            Err(SshKeyError::UnsupportedAlgorithm(format!(
                "{} (a security-key backed key needs the hardware token at every use, \
                 which a server does not have)",
                key_data.algorithm()
            )))
        }
        other => Err(SshKeyError::UnsupportedAlgorithm(
            other.algorithm().to_string(),
        )),
    }
}

/// Describes an unencrypted key: algorithm, fingerprint, public line, normalised PEM.
fn material(key: &PrivateKey) -> Result<SshKeyMaterial, SshKeyError> {
    check_key_type(key.public_key().key_data())?;
    let algorithm = match key.key_data() {
        KeypairData::Rsa(rsa) => {
            let bits = rsa
                .public
                .n
                .as_positive_bytes()
                .and_then(|bytes| {
                    let first = bytes.first()?;
                    let len = u32::try_from(bytes.len()).ok()?;
                    Some(len * 8 - first.leading_zeros())
                })
                .ok_or_else(|| {
                    SshKeyError::Malformed("the RSA modulus is not a positive number".to_owned())
                })?;
            // ssh-keygen refuses to create smaller keys, Bitbucket rejects them, and they
            // are within reach of factoring; better to say so now than at first push.
            if bits < 2048 {
                return Err(SshKeyError::UnsupportedAlgorithm(format!(
                    "RSA with {bits} bits is too short"
                )));
            }
            SshKeyAlgorithm::Rsa { bits }
        }
        KeypairData::Ecdsa(ecdsa) => SshKeyAlgorithm::Ecdsa {
            curve: match ecdsa.curve() {
                ssh_key::EcdsaCurve::NistP256 => EcdsaCurve::NistP256,
                ssh_key::EcdsaCurve::NistP384 => EcdsaCurve::NistP384,
                ssh_key::EcdsaCurve::NistP521 => EcdsaCurve::NistP521,
            },
        },
        KeypairData::Ed25519(_) => SshKeyAlgorithm::Ed25519,
        // `check_key_type` has accepted only the three kinds above, and callers only pass
        // decrypted keys; anything else is a broken invariant, reported rather than panicked.
        _ => {
            return Err(SshKeyError::Malformed(
                "the key data does not match its declared type".to_owned(),
            ));
        }
    };

    let public = key.public_key();
    let encode_error =
        |_| SshKeyError::Malformed("the key could not be re-encoded in OpenSSH format".to_owned());
    Ok(SshKeyMaterial {
        algorithm,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        public_key_openssh: public.to_openssh().map_err(encode_error)?,
        private_key_openssh: key.to_openssh(LineEnding::LF).map_err(encode_error)?,
    })
}

/// Whether the text looks like an OpenSSH public key line or an RFC 4716 public key.
fn looks_like_public_key(text: &str) -> bool {
    if text.contains("BEGIN SSH2 PUBLIC KEY") {
        return true;
    }
    // `authorized_keys` lines may start with options, so look for "<type> AAAA…" anywhere.
    text.lines().any(|line| {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        tokens
            .windows(2)
            .any(|pair| is_ssh_key_type(pair[0]) && pair[1].starts_with("AAAA"))
    })
}

fn is_ssh_key_type(token: &str) -> bool {
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-"]
        .iter()
        .any(|prefix| token.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_the_parser() {
        let generated = generate_ed25519("reposync@test").unwrap();
        assert_eq!(generated.algorithm, SshKeyAlgorithm::Ed25519);
        assert!(generated.public_key_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(generated.public_key_openssh.ends_with(" reposync@test"));
        let parsed = parse_private_key(&generated.private_key_openssh, None).unwrap();
        assert_eq!(parsed.fingerprint, generated.fingerprint);
        assert_eq!(parsed.public_key_openssh, generated.public_key_openssh);
    }

    #[test]
    fn debug_hides_the_private_key() {
        let generated = generate_ed25519("c").unwrap();
        let debug = format!("{generated:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn algorithm_display_names_label_and_bits() {
        assert_eq!(SshKeyAlgorithm::Rsa { bits: 3072 }.to_string(), "RSA 3072");
        assert_eq!(
            SshKeyAlgorithm::Ecdsa {
                curve: EcdsaCurve::NistP384
            }
            .to_string(),
            "ECDSA 384"
        );
        assert_eq!(SshKeyAlgorithm::Ed25519.to_string(), "ED25519 256");
    }

    #[test]
    fn pkcs8_with_excessive_pbkdf2_iterations_is_refused_before_deriving() {
        use base64::Engine;
        use pkcs8::der::Encode;

        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes128cbc(
            50_000_000, &[1; 16], &[2; 16],
        )
        .unwrap();
        let info = pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: params.into(),
            encrypted_data: &[3; 48],
        };
        let der = info.to_der().unwrap();
        let pem = format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{}\n-----END ENCRYPTED PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        // Fifty million iterations would take many seconds; this must return at once.
        let err = parse_private_key(&pem, Some(b"passphrase")).unwrap_err();
        assert!(
            matches!(&err, SshKeyError::UnsupportedAlgorithm(what) if what.contains("excessive")),
            "{err:?}"
        );
    }

    #[test]
    fn authorized_keys_line_with_options_is_a_public_key() {
        assert!(looks_like_public_key(
            "no-pty,command=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@host"
        ));
        assert!(!looks_like_public_key("ssh-ed25519 is my favourite"));
    }
}

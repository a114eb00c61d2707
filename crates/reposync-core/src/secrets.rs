//! Secrets as users manage them, from the API or the web UI alike: Encrypted Text (passwords
//! and tokens) and SSH Key Credentials (pasted in any common format, or made here). The store
//! seals every value before it reaches SQL; nothing here ever hands a value back.

use reposync_api::SecretValue;
use reposync_model::{SSH_USER, SecretName};
use reposync_secrets::{SshKeyMaterial, generate_ed25519, parse_private_key};
use reposync_store::{SecretKind, SecretRecord, SshKeyInfo, Store};

use crate::error::CoreError;

/// Longest value accepted, in bytes; tokens and keys are far smaller.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Creates an Encrypted Text secret.
pub async fn create_text(
    store: &Store,
    name: &str,
    value: &SecretValue,
) -> Result<SecretRecord, CoreError> {
    let name = SecretName::parse(name)?;
    let record = store
        .create_secret(&name, SecretKind::Text, text_value(value, "value")?, None)
        .await?;
    tracing::info!(secret = %name, "created text secret");
    Ok(record)
}

/// Creates an SSH Key Credential from a private key (OpenSSH, PKCS#1 or PKCS#8), decrypted
/// with `passphrase` when it has one. The SSH user, when given, must be Bitbucket's `git`.
pub async fn create_ssh(
    store: &Store,
    name: &str,
    private_key: &SecretValue,
    passphrase: Option<&SecretValue>,
    username: Option<&str>,
) -> Result<SecretRecord, CoreError> {
    let name = SecretName::parse(name)?;
    check_ssh_user(username)?;
    let material = parse_key(private_key, passphrase)?;
    store_ssh_key(store, &name, &material, "created SSH key secret").await
}

/// Creates an SSH Key Credential holding a new Ed25519 key made here; its public key is in
/// the record, to give Bitbucket.
pub async fn generate_ssh(store: &Store, name: &str) -> Result<SecretRecord, CoreError> {
    let name = SecretName::parse(name)?;
    let material = generate_ed25519(&format!("reposync:{name}"))?;
    store_ssh_key(store, &name, &material, "generated SSH key secret").await
}

/// Gives a secret a new value of its kind: `value` for a text secret, `private_key` (with its
/// passphrase) for an SSH key.
pub async fn update(
    store: &Store,
    name: &str,
    value: Option<&SecretValue>,
    private_key: Option<&SecretValue>,
    passphrase: Option<&SecretValue>,
) -> Result<SecretRecord, CoreError> {
    let name = SecretName::parse(name)?;
    let record = match (value, private_key) {
        (Some(value), None) => {
            if passphrase.is_some() {
                return Err(CoreError::invalid(
                    "passphrase",
                    "applies only to SSH key secrets",
                ));
            }
            store
                .update_secret(&name, SecretKind::Text, text_value(value, "value")?, None)
                .await?
        }
        (None, Some(key)) => {
            let material = parse_key(key, passphrase)?;
            store
                .update_secret(
                    &name,
                    SecretKind::SshKey,
                    material.private_key_openssh.as_bytes(),
                    Some(&key_info(&material)),
                )
                .await?
        }
        (Some(_), Some(_)) => {
            return Err(CoreError::invalid(
                "value",
                "give either value or private_key, not both",
            ));
        }
        (None, None) => {
            return Err(CoreError::invalid(
                "value",
                "give the new value (or private_key for an SSH key secret)",
            ));
        }
    };
    tracing::info!(secret = %name, "updated secret");
    Ok(record)
}

/// Deletes a secret no connector uses.
pub async fn delete(store: &Store, name: &str) -> Result<SecretName, CoreError> {
    let name = SecretName::parse(name)?;
    store.delete_secret(&name).await?;
    tracing::info!(secret = %name, "deleted secret");
    Ok(name)
}

/// A text secret's value as git will read it: one line, not empty, not huge. Reported
/// against `field`.
pub fn text_value<'a>(value: &'a SecretValue, field: &str) -> Result<&'a [u8], CoreError> {
    let text = value.expose();
    if text.is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if text.len() > MAX_VALUE_BYTES {
        return Err(CoreError::invalid(
            field,
            format!("is longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    // git reads credentials line by line: a line break would cut the token short and turn the
    // rest into fields of its own.
    if text.contains(['\r', '\n', '\0']) {
        return Err(CoreError::invalid(
            field,
            "must be one line: it contains a line break or NUL",
        ));
    }
    Ok(text.as_bytes())
}

fn check_ssh_user(username: Option<&str>) -> Result<(), CoreError> {
    match username {
        None | Some(SSH_USER) => Ok(()),
        Some(other) => Err(CoreError::invalid(
            "username",
            format!(
                "the SSH user must be exactly `{SSH_USER}` (lowercase), as Bitbucket requires; got {other:?}"
            ),
        )),
    }
}

fn parse_key(
    key: &SecretValue,
    passphrase: Option<&SecretValue>,
) -> Result<SshKeyMaterial, CoreError> {
    if key.expose().len() > MAX_VALUE_BYTES {
        return Err(CoreError::invalid(
            "private_key",
            format!("is longer than {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(parse_private_key(
        key.expose(),
        passphrase.map(|p| p.expose().as_bytes()),
    )?)
}

/// Stores a new SSH Key Credential: the normalised key, sealed, and what may be shown of it.
async fn store_ssh_key(
    store: &Store,
    name: &SecretName,
    material: &SshKeyMaterial,
    what: &str,
) -> Result<SecretRecord, CoreError> {
    let record = store
        .create_secret(
            name,
            SecretKind::SshKey,
            material.private_key_openssh.as_bytes(),
            Some(&key_info(material)),
        )
        .await?;
    tracing::info!(secret = %name, fingerprint = %material.fingerprint, "{what}");
    Ok(record)
}

fn key_info(material: &SshKeyMaterial) -> SshKeyInfo {
    SshKeyInfo {
        algorithm: material.algorithm.to_string(),
        fingerprint: material.fingerprint.clone(),
        public_key: material.public_key_openssh.clone(),
    }
}

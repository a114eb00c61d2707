//! Secrets at rest and SSH key handling for reposync.
//!
//! This crate owns three things: the server's master key (loaded from the environment or a
//! 0600 file in the data directory), envelope encryption of individual secret values under
//! that key, and turning whatever SSH private key a user pastes into one normalised,
//! unencrypted OpenSSH key plus the fingerprint and public line to show back. It is a pure
//! library: it must not spawn processes, log, touch the network or hold async state, and no
//! error or `Debug` output may contain key material. Everything that crosses its boundary as
//! text is parsed into a type here, so the rest of the server never sees a raw key string.

mod envelope;
mod master_key;
mod ssh;

pub use envelope::{SealError, SealedValue, open, seal};
pub use master_key::{MASTER_KEY_FILE_NAME, MasterKey, MasterKeyError, MasterKeyOrigin};
pub use ssh::{
    EcdsaCurve, SshKeyAlgorithm, SshKeyError, SshKeyMaterial, generate_ed25519, parse_private_key,
};

//! The master key that wraps every per-secret data key.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Name of the key file that [`MasterKey::load_or_create`] uses inside the data directory.
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

/// Length of the master key in bytes.
const KEY_LEN: usize = 32;

/// The 256-bit key that wraps the data key of every stored secret.
///
/// The bytes are wiped when the value is dropped and never appear in `Debug` output.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; KEY_LEN]);

/// Where [`MasterKey::load_or_create`] found the key, so the server can say so at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeyOrigin {
    /// The key came from the environment value passed in.
    Environment,
    /// The key was read from this existing file.
    ExistingFile(PathBuf),
    /// No key existed, so a new one was generated and written to this file.
    CreatedFile(PathBuf),
}

/// Why a master key could not be parsed, loaded or created.
///
/// No variant ever carries the key text itself: a typo in a key is still mostly the key.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not base64 at all.
    #[error("the master key is not valid base64; expected 32 random bytes encoded as base64")]
    NotBase64,
    /// The text is base64 but does not decode to exactly 32 bytes.
    #[error("the master key must decode to exactly 32 bytes, but it decodes to {got} bytes")]
    WrongLength {
        /// How many bytes the text decoded to.
        got: usize,
    },
    /// The key given through the environment is not a valid key.
    #[error("the master key given in the environment is invalid: {reason}")]
    InvalidEnvironment {
        /// What is wrong with it ([`MasterKeyError::NotBase64`] or [`MasterKeyError::WrongLength`]).
        reason: Box<MasterKeyError>,
    },
    /// The key file exists but does not hold a valid key.
    #[error("the master key file {path} is invalid: {reason}")]
    InvalidFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it ([`MasterKeyError::NotBase64`] or [`MasterKeyError::WrongLength`]).
        reason: Box<MasterKeyError>,
    },
    /// The key file can be read by users other than its owner, so it may have leaked.
    #[error(
        "the master key file {path} is accessible to other users (mode {mode:04o}); \
         run `chmod 600 {path}` and check who may have read it"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file exists but could not be read.
    #[error("could not read the master key file {path}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A new key file could not be written.
    #[error("could not create the master key file {path}")]
    Create {
        /// The file (or directory) that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

impl MasterKey {
    /// Generates a new random master key from the operating system's random source.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    /// Wraps 32 raw bytes as a master key, for callers (and tests) that hold the bytes already.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Parses a base64-encoded 32-byte key, ignoring surrounding whitespace.
    pub fn from_base64(text: &str) -> Result<MasterKey, MasterKeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength { got: decoded.len() })?;
        Ok(MasterKey(bytes))
    }

    /// Encodes the key as base64, the form [`MasterKey::from_base64`] reads.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// Loads the key from `env_value` if given, else from `<data_dir>/master.key`, else creates that file.
    ///
    /// A new key file is written with mode 0600 through a temporary file that is linked into
    /// place only once it is complete and synced, so a crash never leaves a truncated key
    /// behind, and two servers starting at once agree on one key. An existing key file that
    /// other users can read is refused rather than silently used. The data directory is
    /// created if it does not exist.
    pub fn load_or_create(
        data_dir: &Path,
        env_value: Option<&str>,
    ) -> Result<(MasterKey, MasterKeyOrigin), MasterKeyError> {
        if let Some(value) = env_value {
            let key = MasterKey::from_base64(value).map_err(|reason| {
                MasterKeyError::InvalidEnvironment {
                    reason: Box::new(reason),
                }
            })?;
            return Ok((key, MasterKeyOrigin::Environment));
        }

        let path = data_dir.join(MASTER_KEY_FILE_NAME);
        match read_key_file(&path) {
            Ok(key) => return Ok((key, MasterKeyOrigin::ExistingFile(path))),
            Err(MasterKeyError::Read { source, .. })
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }

        fs::create_dir_all(data_dir).map_err(|source| MasterKeyError::Create {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let key = MasterKey::generate();
        match write_new_key_file(data_dir, &path, &key) {
            Ok(()) => Ok((key, MasterKeyOrigin::CreatedFile(path))),
            // Another process created the file between our read and our link; its key is
            // the one every later start will read, so use it rather than ours.
            Err(source) if source.kind() == io::ErrorKind::AlreadyExists => {
                let existing = read_key_file(&path)?;
                Ok((existing, MasterKeyOrigin::ExistingFile(path)))
            }
            Err(source) => Err(MasterKeyError::Create { path, source }),
        }
    }

    /// The raw key bytes, for the envelope code in this crate only.
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Reads and parses an existing key file, refusing one that other users can read.
fn read_key_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    let read_error = |source| MasterKeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    // Check the permissions of the file we opened, not of the path, so a swap between the
    // check and the read cannot slip a different file past it.
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    io::Read::read_to_string(&mut file, &mut text).map_err(read_error)?;
    MasterKey::from_base64(&text).map_err(|reason| MasterKeyError::InvalidFile {
        path: path.to_path_buf(),
        reason: Box::new(reason),
    })
}

/// Writes `key` to `path`, failing with `AlreadyExists` if the file appeared meanwhile.
fn write_new_key_file(data_dir: &Path, path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let temp_name = format!(
        ".{MASTER_KEY_FILE_NAME}.tmp-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let temp_path = data_dir.join(temp_name);

    let result = write_and_link(&temp_path, path, key);
    // The temporary name is only a staging step: once linked (or on failure) it must go, so
    // a second copy of the key never lingers. A failure to remove it changes nothing the
    // caller can act on, hence the ignored result.
    let _ = fs::remove_file(&temp_path);
    result?;

    // Sync the directory so the new name survives a crash right after we return.
    File::open(data_dir)?.sync_all()
}

fn write_and_link(temp_path: &Path, path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp_path)?;
    let mut text = key.to_base64();
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    // A hard link, unlike rename, refuses to replace an existing file: if two servers start
    // on an empty data directory at once, exactly one key wins and the other adopts it.
    match fs::hard_link(temp_path, path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(err),
        // Some file systems have no hard links; fall back to rename, which is still atomic
        // for readers but could replace a key created in the same instant.
        Err(_) => {
            if path.exists() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(temp_path, path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn base64_round_trips() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&format!("  {}\n", key.to_base64().as_str())).unwrap();
        assert_eq!(key.as_bytes(), again.as_bytes());
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            MasterKey::generate().as_bytes(),
            MasterKey::generate().as_bytes()
        );
    }

    #[test]
    fn wrong_length_reports_length_but_not_value() {
        let text = STANDARD.encode([0xAB; 16]);
        let err = MasterKey::from_base64(&text).unwrap_err();
        assert!(matches!(err, MasterKeyError::WrongLength { got: 16 }));
        let message = err.to_string();
        assert!(message.contains("16 bytes"), "{message}");
        assert!(!message.contains(&text), "{message}");
    }

    #[test]
    fn non_base64_is_rejected_without_echoing_it() {
        let err = MasterKey::from_base64("not base64 at all!").unwrap_err();
        assert!(matches!(err, MasterKeyError::NotBase64));
        assert!(!err.to_string().contains("at all"));
    }

    #[test]
    fn environment_value_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let env_key = MasterKey::generate();
        let (key, origin) =
            MasterKey::load_or_create(dir.path(), Some(&env_key.to_base64())).unwrap();
        assert_eq!(origin, MasterKeyOrigin::Environment);
        assert_eq!(key.as_bytes(), env_key.as_bytes());
        assert!(!dir.path().join(MASTER_KEY_FILE_NAME).exists());
    }

    #[test]
    fn invalid_environment_value_says_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let err = MasterKey::load_or_create(dir.path(), Some("AAAA")).unwrap_err();
        assert!(matches!(err, MasterKeyError::InvalidEnvironment { .. }));
        assert!(err.to_string().contains("environment"), "{err}");
        assert!(err.to_string().contains("3 bytes"), "{err}");
    }

    #[test]
    fn creates_a_0600_file_then_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let (created, origin) = MasterKey::load_or_create(&data_dir, None).unwrap();
        let path = data_dir.join(MASTER_KEY_FILE_NAME);
        assert_eq!(origin, MasterKeyOrigin::CreatedFile(path.clone()));
        assert_eq!(mode_of(&path), 0o600);
        // Only the key file is left behind, no temporary copy.
        assert_eq!(fs::read_dir(&data_dir).unwrap().count(), 1);

        let (loaded, origin) = MasterKey::load_or_create(&data_dir, None).unwrap();
        assert_eq!(origin, MasterKeyOrigin::ExistingFile(path));
        assert_eq!(created.as_bytes(), loaded.as_bytes());
    }

    #[test]
    fn refuses_a_group_readable_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE_NAME);
        fs::write(&path, MasterKey::generate().to_base64().as_bytes()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = MasterKey::load_or_create(dir.path(), None).unwrap_err();
        assert!(
            matches!(
                &err,
                MasterKeyError::InsecurePermissions { mode: 0o640, .. }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
    }

    #[test]
    fn corrupt_key_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE_NAME);
        fs::write(&path, "c2hvcnQ=\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = MasterKey::load_or_create(dir.path(), None).unwrap_err();
        assert!(
            matches!(&err, MasterKeyError::InvalidFile { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }

    #[test]
    fn losing_the_creation_race_adopts_the_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE_NAME);
        let winner = MasterKey::generate();
        write_new_key_file(dir.path(), &path, &winner).unwrap();
        let loser = MasterKey::generate();
        let err = write_new_key_file(dir.path(), &path, &loser).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let (key, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
        assert_eq!(key.as_bytes(), winner.as_bytes());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

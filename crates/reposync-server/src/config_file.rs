//! The server's configuration file (`reposync serve --config reposync.toml`): every server
//! setting, each optional, typed.
//!
//! The file is one layer of four: defaults, then this file, then `REPOSYNC_*` variables, then
//! flags. The binary does the layering, since it alone knows which values came from where;
//! this module only reads the file, so that an unknown or misspelt key, or a value of the
//! wrong kind, is refused with its line before the server touches anything.
//!
//! The master key is deliberately not a setting here: it belongs apart from both the store
//! and the files that describe the server (`REPOSYNC_MASTER_KEY`, or the key file in the data
//! directory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `reposync.toml`, as written: each key absent unless the file sets it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// May hold a password (`postgres://user:password@…`), so never shown.
    pub database_url: Option<String>,
    pub poll_interval_seconds: Option<u64>,
    pub delegate_lease_seconds: Option<u64>,
    pub branch_lease_seconds: Option<u64>,
    pub history_retention_days: Option<u32>,
    pub audit_retention_days: Option<u32>,
    #[serde(default)]
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub webhooks: WebhooksSection,
    #[serde(default)]
    pub builtin_delegate: BuiltinDelegateSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[tls]`: both files or neither.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The same syntax as `REPOSYNC_LOG` (`info`, `reposync_sync=debug,info`).
    pub level: Option<String>,
    pub format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line a person reads.
    Text,
    /// One JSON object a line, with the fields of the spans it happened in.
    Json,
}

/// `[limits]`: the largest bodies accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_body_bytes: Option<usize>,
    pub max_import_bytes: Option<usize>,
    pub max_webhook_bytes: Option<usize>,
}

/// `[webhooks]`: the intake's rate limit and its delivery log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    pub rate_limit: Option<f64>,
    pub burst: Option<u32>,
    pub retention_days: Option<u32>,
    pub deliveries_kept: Option<u32>,
}

/// `[builtin_delegate]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinDelegateSection {
    pub enabled: Option<bool>,
    pub selectors: Option<Vec<String>>,
    pub rest_requests_per_hour: Option<u32>,
}

/// `[metrics]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// When set, `/metrics` asks for it as a bearer token; never shown.
    pub token: Option<String>,
}

/// Why the configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {key} {requirement}", path.display())]
    OutOfRange {
        path: PathBuf,
        key: &'static str,
        requirement: &'static str,
    },
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parses `text`; `path` only names the file in errors, which give the line (1-based)
    /// and toml's own words for what is wrong there.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigFileError> {
        let file: ConfigFile = toml::from_str(text).map_err(|error: toml::de::Error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            ConfigFileError::Invalid {
                path: path.to_owned(),
                line,
                message: error.message().to_owned(),
            }
        })?;
        file.check(path)?;
        Ok(file)
    }

    /// The ranges the flags enforce, enforced on the file too.
    fn check(&self, path: &Path) -> Result<(), ConfigFileError> {
        let at_least_one = [
            ("[webhooks] burst", self.webhooks.burst),
            ("[webhooks] retention_days", self.webhooks.retention_days),
            ("[webhooks] deliveries_kept", self.webhooks.deliveries_kept),
            ("history_retention_days", self.history_retention_days),
            ("audit_retention_days", self.audit_retention_days),
            (
                "[builtin_delegate] rest_requests_per_hour",
                self.builtin_delegate.rest_requests_per_hour,
            ),
        ];
        for (key, value) in at_least_one {
            if value == Some(0) {
                return Err(ConfigFileError::OutOfRange {
                    path: path.to_owned(),
                    key,
                    requirement: "must be 1 or more",
                });
            }
        }
        if let Some(rate) = self.webhooks.rate_limit
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(ConfigFileError::OutOfRange {
                path: path.to_owned(),
                key: "[webhooks] rate_limit",
                requirement: "must be a number of deliveries a second, 0 or more (0 turns the limit off)",
            });
        }
        Ok(())
    }
}

/// Shows which secret settings are set, never their values.
fn redacted(value: Option<&String>) -> Option<&'static str> {
    value.map(|_| "<redacted>")
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted(self.database_url.as_ref()))
            .field("poll_interval_seconds", &self.poll_interval_seconds)
            .field("delegate_lease_seconds", &self.delegate_lease_seconds)
            .field("branch_lease_seconds", &self.branch_lease_seconds)
            .field("history_retention_days", &self.history_retention_days)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("tls", &self.tls)
            .field("log", &self.log)
            .field("limits", &self.limits)
            .field("webhooks", &self.webhooks)
            .field("builtin_delegate", &self.builtin_delegate)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl std::fmt::Debug for MetricsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSection")
            .field("token", &redacted(self.token.as_ref()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example shipped in the repository is the documentation of every key; it must parse
    /// and set every one of them.
    #[test]
    fn the_example_file_parses_and_sets_every_setting() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/reposync.toml");
        let file = ConfigFile::read(&path).expect("the example parses");
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("None"),
            "the example leaves a setting out: {shown}"
        );
        assert_eq!(file.log.format, Some(LogFormat::Json));
        assert_eq!(
            file.listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            "{shown}"
        );
    }

    #[test]
    fn secret_settings_are_redacted_in_debug() {
        let file = ConfigFile::parse(
            Path::new("r.toml"),
            "database_url = \"postgres://u:hunter2@db/r\"\n[metrics]\ntoken = \"m-secret\"\n",
        )
        .expect("parses");
        let shown = format!("{file:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("m-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_line() {
        let error = ConfigFile::parse(
            Path::new("/etc/reposync.toml"),
            "listen = \"127.0.0.1:9000\"\n\n[webhooks]\nretention = 3\n",
        )
        .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with("/etc/reposync.toml, line 4: "),
            "{message}"
        );
        assert!(message.contains("retention"), "{message}");
        assert!(
            message.contains("retention_days"),
            "lists the keys it knows: {message}"
        );
    }

    #[test]
    fn a_value_out_of_range_is_refused_naming_its_key() {
        let error =
            ConfigFile::parse(Path::new("r.toml"), "[webhooks]\nburst = 0\n").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "r.toml: [webhooks] burst must be 1 or more"
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused_with_its_line() {
        let error = ConfigFile::parse(Path::new("r.toml"), "\nlisten = \"localhost\"\n")
            .expect_err("refused");
        assert!(error.to_string().starts_with("r.toml, line 2: "), "{error}");
    }
}

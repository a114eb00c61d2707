//! A git client that sees no system, global or user configuration.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::base_env;

/// Author and committer identity for every commit made through [`HermeticGit`].
pub const TEST_USER_NAME: &str = "Reposync Test";
/// Email of [`TEST_USER_NAME`].
pub const TEST_USER_EMAIL: &str = "reposync-test@example.invalid";

/// Configuration passed through `GIT_CONFIG_COUNT`, because `GIT_CONFIG_GLOBAL=/dev/null`
/// means a config file in HOME would be ignored.
const CONFIG: &[(&str, &str)] = &[
    ("user.name", TEST_USER_NAME),
    ("user.email", TEST_USER_EMAIL),
    ("init.defaultBranch", "main"),
    // The repositories may be owned by the `git` user after a push over SSH.
    ("safe.directory", "*"),
    ("advice.detachedHead", "false"),
];

/// A private, hermetic environment for running git in tests (own HOME, no system/global config, identity set).
pub struct HermeticGit {
    home: TempDir,
}

impl fmt::Debug for HermeticGit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HermeticGit")
            .field("home", &self.home.path())
            .finish()
    }
}

impl HermeticGit {
    /// Creates a fresh HOME directory for git to use.
    pub fn new() -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("reposync-git-home-")
            .tempdir()
            .context("cannot create a HOME directory for git")?;
        Ok(Self { home })
    }

    /// The HOME directory every command of this environment gets.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The complete environment of a git child: a fixed PATH, HOME, no system or global
    /// config, no prompts, the C locale and a test identity.
    ///
    /// Useful for callers that spawn git through their own `Command` (after `env_clear()`).
    /// The identity and `safe.directory=*` come through `GIT_CONFIG_COUNT`; a caller that sets
    /// its own `GIT_CONFIG_COUNT` replaces them, so prefer `-c key=value` arguments for extra
    /// configuration. The identity is also set through `GIT_AUTHOR_*`/`GIT_COMMITTER_*`, which
    /// survive such a replacement.
    pub fn env_vars(&self) -> Vec<(OsString, OsString)> {
        let home = self.home.path();
        let mut env = base_env(home);
        let fixed = [
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_ATTR_NOSYSTEM", "1"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_AUTHOR_NAME", TEST_USER_NAME),
            ("GIT_AUTHOR_EMAIL", TEST_USER_EMAIL),
            ("GIT_COMMITTER_NAME", TEST_USER_NAME),
            ("GIT_COMMITTER_EMAIL", TEST_USER_EMAIL),
        ];
        env.extend(fixed.map(|(key, value)| (key.into(), value.into())));
        env.push(("GIT_CONFIG_COUNT".into(), CONFIG.len().to_string().into()));
        env.push(("XDG_CONFIG_HOME".into(), home.join(".config").into()));
        for (index, (key, value)) in CONFIG.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{index}").into(), (*key).into()));
            env.push((format!("GIT_CONFIG_VALUE_{index}").into(), (*value).into()));
        }
        env
    }

    /// `git` with the environment cleared and rebuilt from [`HermeticGit::env_vars`].
    pub fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .env_clear()
            .envs(self.env_vars())
            .stdin(Stdio::null());
        command
    }

    /// Runs git in `dir`, fails with its stderr on a non-zero exit, and returns trimmed stdout.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Result<String> {
        self.run_with_env(dir, args, &[])
    }

    /// Like [`HermeticGit::run`], with extra environment variables (e.g. `GIT_SSH_COMMAND`).
    pub fn run_with_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let output = self.output_with_env(dir, args, env)?;
        if !output.status.success() {
            bail!(
                "git {} (in {}) exited with {}:\n{}",
                args.join(" "),
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Runs git in `dir` with extra environment variables and returns its output whatever the
    /// exit status, for tests that expect a failure and inspect stderr.
    pub fn output_with_env(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Output> {
        self.command()
            .current_dir(dir)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("failed to spawn git {}", args.join(" ")))
    }
}

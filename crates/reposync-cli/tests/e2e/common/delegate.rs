//! A `reposync delegate` process for tests, started the way an operator starts one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestApp;

/// A `reposync delegate` process and its log.
pub struct Delegate {
    pub name: String,
    pub child: Child,
    log: PathBuf,
}

impl Delegate {
    /// Starts a delegate with the token in its environment (never in argv).
    pub fn start(app: &TestApp, name: &str, token: &str, selectors: &[&str]) -> Delegate {
        Delegate::start_with_path(app, name, token, selectors, None)
    }

    pub fn start_with_path(
        app: &TestApp,
        name: &str,
        token: &str,
        selectors: &[&str],
        path: Option<&str>,
    ) -> Delegate {
        Delegate::launch(app, name, name, token, selectors, path)
    }

    /// Starts a delegate named `name` with `work` as its work directory.
    pub fn start_in(app: &TestApp, name: &str, token: &str, work: &std::path::Path) -> Delegate {
        Delegate::spawn(app.dir.path(), &app.url, name, name, token, &[], None, work)
    }

    /// Starts a delegate whose log and work directory are named after `label`, so that two
    /// processes may try the same delegate name.
    pub fn launch(
        app: &TestApp,
        label: &str,
        name: &str,
        token: &str,
        selectors: &[&str],
        path: Option<&str>,
    ) -> Delegate {
        let work = app.dir.path().join(format!("delegate-{label}"));
        Delegate::spawn(
            app.dir.path(),
            &app.url,
            label,
            name,
            token,
            selectors,
            path,
            &work,
        )
    }

    /// Starts a delegate named `name` that talks to `server` (a load balancer, say), its log
    /// and work directory in `dir`.
    pub fn start_at(dir: &Path, server: &str, name: &str, token: &str) -> Delegate {
        let work = dir.join(format!("delegate-{name}"));
        Delegate::spawn(dir, server, name, name, token, &[], None, &work)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        dir: &Path,
        server: &str,
        label: &str,
        name: &str,
        token: &str,
        selectors: &[&str],
        path: Option<&str>,
        work: &std::path::Path,
    ) -> Delegate {
        let log = dir.join(format!("delegate-{label}.log"));
        let mut command = Command::new(super::binary());
        super::hermetic(&mut command, dir);
        if let Some(path) = path {
            command.env("PATH", path);
        }
        command
            .env("REPOSYNC_DELEGATE_TOKEN", token)
            .env("REPOSYNC_LOG", "debug")
            .args(["delegate", "--server", server, "--name", name, "--work-dir"])
            .arg(work);
        for selector in selectors {
            command.args(["--selector", selector]);
        }
        command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            );
        Delegate {
            name: name.to_owned(),
            child: command.spawn().expect("start reposync delegate"),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether a git process runs under this delegate now (it is doing a task's Git work).
    pub fn runs_git(&self) -> bool {
        let processes = super::processes();
        let mut tree = vec![self.child.id()];
        loop {
            let children: Vec<u32> = processes
                .iter()
                .filter(|(pid, parent)| tree.contains(parent) && !tree.contains(pid))
                .map(|(pid, _)| *pid)
                .collect();
            if children.is_empty() {
                break;
            }
            tree.extend(children);
        }
        tree.iter().skip(1).any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.starts_with("git"))
        })
    }

    /// SIGKILLs the delegate (its git children are orphaned, as when a machine dies).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Delegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

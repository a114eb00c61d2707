//! A barrier in a git server's hook, so that tests can stop a push at an exact step.

use std::time::{Duration, Instant};

use super::git_fixture::{Fixture, REPO};

/// A server-side hook that holds a push on demand. Arming it (`arm`) makes the next push that
/// reaches the hook wait until `release`, then end with `code`; pushes that find it unarmed
/// pass. It is a barrier, so tests can kill the server at an exact step of a push.
pub struct Hold {
    dir: std::path::PathBuf,
}

impl Hold {
    pub fn install(f: &Fixture, hook: &str, code: u8) -> Hold {
        let dir = f.app.dir.path().join(format!("hold-{hook}"));
        std::fs::create_dir_all(&dir).expect("hold dir");
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\nd='{d}'\nif [ -e \"$d/armed\" ]; then\n  rm -f \"$d/armed\"\n  touch \"$d/entered\"\n  while [ ! -e \"$d/release\" ]; do sleep 0.02; done\n  rm -f \"$d/release\"\n  touch \"$d/done\"\n  exit {code}\nfi\nexit 0\n",
            d = dir.display()
        );
        f.root.install_hook(REPO, hook, &script).expect("hook");
        Hold { dir }
    }

    pub fn arm(&self) {
        for marker in ["entered", "done"] {
            let _ = std::fs::remove_file(self.dir.join(marker));
        }
        std::fs::write(self.dir.join("armed"), "").expect("arm");
    }

    #[track_caller]
    pub fn wait_for(&self, marker: &str, f: &Fixture) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dir.join(marker).exists() {
            assert!(
                Instant::now() < deadline,
                "the hook never got to {marker}\n{}",
                f.app.server_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets the held push go on; `wait_for("done")` then waits until the hook has ended.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.dir.join("done"));
        std::fs::write(self.dir.join("release"), "").expect("release");
    }
}

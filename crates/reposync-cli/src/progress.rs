//! A spinner for waits longer than half a second, on a terminal only, saying what is awaited
//! and for how long: a Test against a dead host is not 30 s of silence. Scripts and logs
//! (anything but a terminal) get nothing.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs until [`Spinner::finish`] (or its drop), then clears its line.
#[derive(Debug)]
pub struct Spinner {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner about `what` (`waiting for the Test (task …)`).
    pub fn start(what: String) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let frames = ['|', '/', '-', '\\'];
            for frame in frames.iter().cycle() {
                eprint!("\r{frame} {what} ({} s)", started.elapsed().as_secs());
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            // Back to the start of the line, and the line cleared.
            eprint!("\r\x1b[2K");
        });
        Spinner {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the spinner and waits until its line is cleared.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

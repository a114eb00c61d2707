//! A real browser for the UI tests: Debian's headless Chromium, driven through its own
//! chromedriver over W3C WebDriver. Browser tests run one at a time (Chromium and the server
//! fill two cores), and each saves a screenshot of every page it visits under
//! `target/ui-screenshots/`.
//!
//! Without chromedriver a test is skipped with a line saying so, except under CI (`CI` set),
//! where it fails: `scripts/test` installs it, and a missing install step must not pass.

#![allow(dead_code, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// One browser test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A browser session, the chromedriver behind it, and where its screenshots go.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
    test: String,
    taken: usize,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Whether browser tests can run here; `None` means skip (never under CI).
pub fn available(test: &str) -> bool {
    let found = Command::new("chromedriver")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing: scripts/test installs chromium and chromium-driver"
        );
        eprintln!("skipped {test}: chromedriver not installed (scripts/test installs it)");
    }
    found
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session for `test`.
    pub async fn start(test: &str) -> Browser {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2400", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"
            ]}
        });
        let capabilities: fantoccini::wd::Capabilities =
            serde_json::from_value(capabilities).expect("capabilities");
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver answers once it is listening; it takes well under a second.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not start: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Browser {
            client,
            driver,
            shots,
            test: test.to_owned(),
            taken: 0,
            _turn: turn,
        }
    }

    /// Opens a page and saves its screenshot. A page load still under way (the redirect after
    /// a login) can land after the new one and take its place, so the page is opened again
    /// until the browser shows the one asked for.
    pub async fn visit(&mut self, url: &str, label: &str) {
        let wanted = reqwest::Url::parse(url).expect("a URL");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.client.goto(url).await.expect("goto");
            let shown = self.client.current_url().await.expect("current URL");
            if shown.path() == wanted.path() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url}: the browser shows {shown}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.shot(label).await;
    }

    /// Saves a screenshot of the page as it is, numbered in the order taken.
    pub async fn shot(&mut self, label: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.expect("screenshot");
        let file = self
            .shots
            .join(format!("{}-{:02}-{label}.png", self.test, self.taken));
        std::fs::write(file, png).expect("write screenshot");
    }

    /// The element `css` finds, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Types `text` into the field `css` finds, after clearing it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.retry(css, |field| async move {
            field.clear().await?;
            field.send_keys(text).await
        })
        .await;
    }

    /// Picks the option whose value is `value` in the select `css` finds.
    pub async fn select(&self, css: &str, value: &str) {
        self.retry(
            css,
            |field| async move { field.select_by_value(value).await },
        )
        .await;
    }

    /// Clicks what `css` finds.
    pub async fn click(&self, css: &str) {
        self.retry(
            css,
            |element| async move { element.click().await.map(|_| ()) },
        )
        .await;
    }

    /// Does `act` with what `css` finds, finding it again if a page load took it away
    /// meanwhile ("stale"), until it works or 30 seconds have passed.
    async fn retry<F, Fut>(&self, css: &str, act: F)
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let outcome = match self.client.find(Locator::Css(css)).await {
                Ok(element) => act(element).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => return,
                Err(error) => {
                    assert!(Instant::now() < deadline, "{css}: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The text of what `css` finds, found afresh until it reads (see [`Browser::wait_text`]).
    pub async fn text(&self, css: &str) -> String {
        self.wait_text(css, css, |_| true).await
    }

    /// Waits until the text of what `css` finds satisfies `done`, and returns it. The element
    /// is found afresh each time: a click that loads a new page may leave the old page's
    /// element in hand for a moment, gone ("stale") by the time its text is read.
    pub async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if done(&text) {
                    return text;
                }
                last = text;
            }
            assert!(Instant::now() < deadline, "{what}: still {last:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the value of the field `css` finds satisfies `done`, and returns it.
    pub async fn wait_value(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(Some(value)) = element.prop("value").await
            {
                if done(&value) {
                    return value;
                }
                last = value;
            }
            assert!(Instant::now() < deadline, "{what}: still {last:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Presses a key, as a person at the keyboard does, wherever the focus is.
    pub async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let key: char = key.into();
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("keys");
    }

    /// Types text wherever the focus is.
    pub async fn type_here(&self, text: &str) {
        let focused = self.client.active_element().await.expect("focus");
        focused.send_keys(text).await.expect("type");
    }

    /// The id of the focused element (empty when it has none).
    pub async fn focused(&self) -> String {
        self.client
            .execute(
                "return document.activeElement.id || document.activeElement.tagName",
                vec![],
            )
            .await
            .expect("script")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's HTML as the browser holds it.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// Ends the session and its driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

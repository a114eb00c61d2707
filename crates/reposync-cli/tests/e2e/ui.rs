//! The web UI in a real browser (headless Chromium through chromedriver), against the real
//! server binary, a real git server over HTTPS and the Bitbucket emulator: the document's walk
//! from logging in to a pushed change arriving, and the refusals around it.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::time::{Duration, Instant};

use reposync_testkit::{
    BitbucketEmulator, GitHttpsServer, RepoRoot, TestCa, WebhookFormat, WebhookTarget,
};

use crate::common::TestApp;
use crate::common::browser::{self, Browser};
use crate::common::git_fixture::{Fixture, REPO, SHOP, TOKEN, USER, runtime, workflow};

const ADMIN_PASSWORD: &str = "the admin's long password";
const VIEWER_PASSWORD: &str = "the viewer's long password";

/// A server with no connector yet, and a git server over HTTPS holding `acme/config.git`
/// (its CA in `ca`).
fn bare() -> Fixture {
    let rt = runtime();
    let root = RepoRoot::new().expect("repo root");
    root.create_repo(REPO, "main", &[("README.md", "config repository\n")])
        .expect("repo");
    let ca = TestCa::new("reposync UI CA").expect("ca");
    let server = rt
        .block_on(GitHttpsServer::start(&root, &ca, USER, TOKEN))
        .expect("https server");
    let app = TestApp::spawn();
    app.cli(
        &["user", "set-password", "admin", "--password-stdin"],
        Some(&format!("{ADMIN_PASSWORD}\n")),
    )
    .ok();
    Fixture {
        app,
        root,
        server,
        ca,
        rt,
    }
}

/// The Git Sync fixture (an HTTPS connector `git`, an application `Shop`), with the admin's
/// password set for logging in.
fn synced_fixture() -> Fixture {
    let f = Fixture::https(&[("README.md", "config repository\n")]);
    f.app
        .cli(
            &["user", "set-password", "admin", "--password-stdin"],
            Some(&format!("{ADMIN_PASSWORD}\n")),
        )
        .ok();
    f
}

/// The Bitbucket emulator, delivering signed Cloud pushes to the connector `git`'s webhook.
fn emulated_pushes(f: &Fixture) -> BitbucketEmulator {
    let (token, secret) = f.webhook_credentials();
    let emulator =
        f.rt.block_on(BitbucketEmulator::start(&f.root))
            .expect("emulator");
    let hook = format!("{}/api/webhooks/git/{token}", f.app.url);
    emulator
        .add_webhook(
            REPO,
            WebhookTarget::new(hook, WebhookFormat::Cloud).with_secret(secret),
        )
        .expect("webhook");
    emulator
}

async fn log_in(browser: &mut Browser, base: &str, user: &str, password: &str) {
    browser.visit(&format!("{base}/ui/login"), "login").await;
    browser.fill("#user", user).await;
    browser.fill("#password", password).await;
    browser
        .click("form[action='/ui/login'] button[type=submit]")
        .await;
}

/// Fills the Git Connector form for the HTTPS repository, with a new secret made inline.
async fn fill_https_connector(browser: &Browser, f: &Fixture, ca: &TestCa, token: &str) {
    browser.fill("#name", "bitbucket").await;
    browser.fill("#url", &f.server.repo_url(REPO)).await;
    browser.fill("#username", USER).await;
    browser.select("#password_secret", "__new__").await;
    browser.fill("#new_secret_name", "bb-token").await;
    browser.fill("#new_secret_value", token).await;
    browser.fill("#branch", "main").await;
    browser.fill("#author_name", "Sync Bot").await;
    browser.fill("#author_email", "sync-bot@example.com").await;
    browser.click("details summary").await;
    browser.fill("#ca_certificate", &ca.cert_pem()).await;
}

#[test]
fn the_add_a_bitbucket_repo_walk_from_login_to_a_pushed_change() {
    if !browser::available("ui::the_add_a_bitbucket_repo_walk_from_login_to_a_pushed_change") {
        return;
    }
    let f = bare();
    let base = f.app.url.clone();
    let head = f.root.head(REPO, "main").expect("head").expect("a commit");
    let (url, secret) = f.rt.block_on(async {
        let mut b = Browser::start("walk").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        // Setup → Connectors → Source Repo Providers → Add Source Repo Provider.
        b.find("h1").await;
        b.shot("setup").await;
        b.click("main a[href='/ui/setup/connectors/source-repo-providers']")
            .await;
        b.find("main h1").await;
        b.shot("providers-empty").await;
        b.click("a[href='/ui/setup/connectors/source-repo-providers/new']")
            .await;
        b.find("#provider-form").await;
        b.shot("add-form").await;
        // The labels use the document's words, in its order.
        let source = b.source().await;
        let mut at = 0;
        for label in [
            "Display Name",
            "Provider",
            "Git Repo / Git Account",
            "HTTPS / SSH",
            "URL",
            "Username",
            "Select Encrypted Password/Token",
            "SSH Key",
            "Branch Name",
            "Delegate Selector",
            "Generate Webhook URL",
            "Customize Commit Attributes",
            "Author Name",
            "Author Email",
        ] {
            let found = source[at..]
                .find(label)
                .unwrap_or_else(|| panic!("{label} after position {at}"));
            at += found + label.len();
        }
        fill_https_connector(&b, &f, &f.ca, TOKEN).await;
        // Test: OK, with the commit the branch is at.
        b.click("#test-button").await;
        let result = b
            .wait_text("#test-result", "the Test", |t| {
                t.contains("Successful") || t.contains("Failed")
            })
            .await;
        b.shot("tested").await;
        assert!(result.contains("Successful"), "{result}");
        assert!(
            result.contains(&head),
            "the Test names the commit: {result}"
        );
        // Submit: the webhook URL and secret, with what to set in Bitbucket.
        b.click("#submit-button").await;
        let dialog = b.text("dialog").await;
        assert!(dialog.contains("Repository push"), "{dialog}");
        b.shot("webhook-dialog").await;
        let url = b
            .find("#webhook-url")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the URL");
        let secret = b
            .find("#webhook-secret")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the secret");
        b.click("dialog footer a").await;
        let list = b.text("main table").await;
        assert!(
            list.contains("bitbucket") && list.contains("Successful"),
            "{list}"
        );
        b.shot("providers").await;
        b.close().await;
        (url, secret)
    });
    assert!(
        url.starts_with(&format!("{base}/api/webhooks/git/")),
        "{url}"
    );

    // The connector works: an application linked to it is pushed, and a signed push to the
    // webhook URL from the dialog brings a change back.
    f.app.cli(&["app", "create", "Shop"], None).ok();
    f.app
        .cli(
            &[
                "sync",
                "enable",
                "--app",
                "Shop",
                "--connector",
                "bitbucket",
            ],
            None,
        )
        .ok();
    f.wait_pushed();
    let emulator =
        f.rt.block_on(BitbucketEmulator::start(&f.root))
            .expect("emulator");
    emulator
        .add_webhook(
            REPO,
            WebhookTarget::new(url, WebhookFormat::Cloud).with_secret(secret),
        )
        .expect("webhook");
    let path = format!("{SHOP}/Workflows/from git.yaml");
    let yaml = workflow("written in git");
    emulator
        .commit(
            REPO,
            "main",
            &[(path.as_str(), yaml.as_str())],
            "Add a workflow",
        )
        .expect("commit");
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.app.cli(&["get", &path], None).code != 0 {
        assert!(Instant::now() < deadline, "the pushed change never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
    // And the change is in the tree, in the browser.
    f.rt.block_on(async {
        let mut b = Browser::start("walk-tree").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/config-as-code?q=from+git"),
            "tree-search",
        )
        .await;
        b.click("main ul li a").await;
        let content = b
            .find("#content")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the YAML");
        b.shot("file").await;
        assert!(content.contains("written in git"), "{content}");
        b.close().await;
    });
}

#[test]
fn editing_a_file_in_the_tree_commits_it_with_the_connectors_author_and_a_bad_edit_says_where() {
    if !browser::available(
        "ui::editing_a_file_in_the_tree_commits_it_with_the_connectors_author_and_a_bad_edit_says_where",
    ) {
        return;
    }
    let f = synced_fixture();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    let base = f.app.url.clone();
    let service = format!("{SHOP}/Services/cart/Index.yaml");
    f.rt.block_on(async {
        let mut b = Browser::start("edit").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        // Setup/ → Applications/ → Shop/ → Services/ → cart/ → Index.yaml, a folder at a time.
        b.visit(&format!("{base}/ui/setup/config-as-code"), "tree-root")
            .await;
        for folder in ["Applications/", "Shop/", "Services/", "cart/"] {
            b.click(&format!(
                "main ul a[href$='{}']",
                folder.trim_end_matches('/')
            ))
            .await;
            b.find("main h2").await;
        }
        b.shot("tree-folder").await;
        b.click("main ul a[href*='Index.yaml']").await;
        b.find("#content").await;
        // A bad edit: refused, with the line and column, and nothing saved.
        b.fill("#content", "harnessApiVersion: '1.0'\ntype: WIDGET\n")
            .await;
        b.click("#save-button").await;
        let problems = b.text("#problems").await;
        b.shot("bad-edit").await;
        assert!(problems.contains("Index.yaml:2:"), "{problems}");
        // A good one: saved, and Git Sync takes it to the branch.
        b.fill(
            "#content",
            "harnessApiVersion: '1.0'\ntype: SERVICE\ndeploymentType: SSH\n",
        )
        .await;
        b.click("#save-button").await;
        let saved = b.text("#saved").await;
        b.shot("saved").await;
        assert!(saved.contains("Saved"), "{saved}");
        b.close().await;
    });
    let pushed = f.wait_pushed();
    assert_eq!(
        f.git(&["log", "-1", "--format=%an <%ae>", &pushed]),
        "Sync Bot <sync-bot@example.com>"
    );
    let message = f.message(&pushed);
    assert!(message.contains(&format!("MODIFY: {service}")), "{message}");
    assert!(
        message.lines().any(|line| line == "Reposync-User: admin"),
        "{message}"
    );
    let branch = f.root.read_file(REPO, "main", &service).expect("file");
    assert!(branch.contains("deploymentType: SSH"), "{branch}");
    // The browser sent the textarea's lines as CRLF; the file keeps the lines it means.
    assert!(!branch.contains('\r'), "{branch:?}");
}

#[test]
fn a_wrong_token_fails_the_test_beside_the_button_and_saves_nothing() {
    if !browser::available("ui::a_wrong_token_fails_the_test_beside_the_button_and_saves_nothing") {
        return;
    }
    let f = bare();
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("wrong-token").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/new"),
            "add-form",
        )
        .await;
        fill_https_connector(&b, &f, &f.ca, "not-the-token-at-all").await;
        b.click("#test-button").await;
        let result = b
            .wait_text("#test-result", "the Test", |t| {
                t.contains("Successful") || t.contains("Failed")
            })
            .await;
        b.shot("auth-failed").await;
        assert!(
            result.contains("Failed") && result.contains("auth_failed"),
            "{result}"
        );
        b.close().await;
    });
    let listed = f
        .app
        .cli(&["--json", "connector", "list"], None)
        .ok()
        .json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "nothing saved: {listed}"
    );
}

#[test]
fn a_viewer_sees_no_edit_controls_and_forged_or_cross_site_posts_are_refused() {
    if !browser::available(
        "ui::a_viewer_sees_no_edit_controls_and_forged_or_cross_site_posts_are_refused",
    ) {
        return;
    }
    let f = bare();
    let base = f.app.url.clone();
    f.app
        .cli(
            &[
                "user",
                "add",
                "vera",
                "--role",
                "viewer",
                "--password-stdin",
            ],
            Some(&format!("{VIEWER_PASSWORD}\n")),
        )
        .ok();
    f.rt.block_on(async {
        let mut b = Browser::start("viewer").await;
        log_in(&mut b, &base, "vera", VIEWER_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers"),
            "providers",
        )
        .await;
        let source = b.source().await;
        assert!(
            !source.contains("Add Source Repo Provider"),
            "no edit control for a viewer"
        );
        // The form itself is refused, in the API's words.
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/new"),
            "refused",
        )
        .await;
        let refused = b.text("main").await;
        assert!(refused.contains("needs the admin role"), "{refused}");
        // The pages hold no inline script or style, under a strict policy.
        for forbidden in ["<script>", "style=\"", "onclick="] {
            assert!(!source.contains(forbidden), "{forbidden}");
        }
        b.close().await;
    });
    // A forged POST with the viewer's session (a browser would send Sec-Fetch-Site) is refused,
    // and so is the admin's session cookie on a POST another site sent.
    let (forged, cross_site) = f.rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let session = |user: &'static str, password: &'static str| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let response = http
                    .post(format!("{base}/ui/login"))
                    .form(&[
                        ("user", user),
                        ("password", password),
                        ("next", "/ui/setup"),
                    ])
                    .send()
                    .await
                    .expect("login");
                let cookie = response
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .expect("a session cookie")
                    .to_owned();
                cookie.split(';').next().unwrap_or_default().to_owned()
            }
        };
        let form = [
            ("name", "forged"),
            ("url", "https://bitbucket.org/acme/x.git"),
            ("action", "submit"),
        ];
        let target = format!("{base}/ui/setup/connectors/source-repo-providers/new");
        let viewer = session("vera", VIEWER_PASSWORD).await;
        let forged = http
            .post(&target)
            .header("cookie", &viewer)
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
            .await
            .expect("forged")
            .status();
        let admin = session("admin", ADMIN_PASSWORD).await;
        let cross_site = http
            .post(&target)
            .header("cookie", &admin)
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .expect("cross-site")
            .status();
        (forged, cross_site)
    });
    assert_eq!(forged, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(cross_site, reqwest::StatusCode::FORBIDDEN);
    // Every page carries the strict policy, and may not be framed.
    let headers = f.rt.block_on(async {
        reqwest::get(format!("{base}/ui/login"))
            .await
            .expect("login page")
            .headers()
            .clone()
    });
    let policy = headers["content-security-policy"].to_str().expect("csp");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    let listed = f
        .app
        .cli(&["--json", "connector", "list"], None)
        .ok()
        .json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "nothing saved: {listed}"
    );
    let trail = f
        .app
        .cli(&["--json", "audit", "--user", "vera"], None)
        .ok()
        .stdout
        .clone();
    assert!(
        trail.contains("connector.create") && trail.contains("refused"),
        "{trail}"
    );
}

#[test]
fn a_pushed_bad_file_shows_on_the_errors_page_until_discarded() {
    if !browser::available("ui::a_pushed_bad_file_shows_on_the_errors_page_until_discarded") {
        return;
    }
    let f = synced_fixture();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    let emulator = emulated_pushes(&f);
    let bad = format!("{SHOP}/Services/broken/Index.yaml");
    emulator
        .commit(
            REPO,
            "main",
            &[(bad.as_str(), "harnessApiVersion: '1.0'\ntype: WIDGET\n")],
            "A bad service",
        )
        .expect("commit");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let errors = f.app.cli(&["--json", "sync", "errors"], None).ok().json();
        if errors["items"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad file never became an error"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("errors").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/git-sync"), "git-sync").await;
        let links = b.text("main table").await;
        assert!(
            links.contains("app:Shop") && links.contains("Held"),
            "{links}"
        );
        // The commit read from Git shows each file by outcome.
        b.visit(
            &format!("{base}/ui/git-sync/activity?app=Shop&direction=in"),
            "activity-in",
        )
        .await;
        let activity = b.text("main").await;
        assert!(
            activity.contains("broken/Index.yaml (failed)"),
            "{activity}"
        );
        b.visit(&format!("{base}/ui/git-sync/errors"), "errors")
            .await;
        let inbound = b.text("section[aria-labelledby='group-inbound']").await;
        assert!(
            inbound.contains(&bad) && inbound.contains("WIDGET"),
            "{inbound}"
        );
        b.click("button[aria-label^='Discard error for']").await;
        let notice = b.text("#notice").await;
        b.shot("discarded").await;
        assert!(notice.contains("Discarded"), "{notice}");
        let inbound = b.text("section[aria-labelledby='group-inbound']").await;
        assert!(!inbound.contains(&bad), "{inbound}");
        b.close().await;
    });
    let errors = f.app.cli(&["--json", "sync", "errors"], None).ok().json();
    assert_eq!(
        errors["items"].as_array().map(Vec::len),
        Some(0),
        "{errors}"
    );
}

#[test]
fn an_ssh_connector_with_a_key_generated_in_the_form_tests_ok_and_saves() {
    if !browser::available(
        "ui::an_ssh_connector_with_a_key_generated_in_the_form_tests_ok_and_saves",
    ) {
        return;
    }
    reposync_testkit::ensure_git_user().expect("git user");
    let f = bare();
    let base = f.app.url.clone();
    let head = f.root.head(REPO, "main").expect("head").expect("a commit");
    f.rt.block_on(async {
        let mut b = Browser::start("ssh").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/new"),
            "add-form",
        )
        .await;
        b.fill("#name", "bitbucket-ssh").await;
        b.fill("#new_ssh_key_name", "deploy-key").await;
        b.click("#generate-key-button").await;
        let public_key = b
            .find("#public-key-value")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the public key");
        b.shot("key-generated").await;
        assert!(public_key.starts_with("ssh-ed25519 "), "{public_key}");
        // The user adds the public key in Bitbucket: here, to the test sshd.
        let sshd = reposync_testkit::SshServer::start(&f.root, &[public_key])
            .await
            .expect("sshd");
        b.click("input[name=protocol][value=ssh]").await;
        b.fill("#url", &sshd.repo_url(REPO)).await;
        b.fill("#branch", "main").await;
        b.click("details summary").await;
        b.fill("#known_hosts", &sshd.known_hosts_line()).await;
        b.click("#test-button").await;
        let result = b
            .wait_text("#test-result", "the Test", |t| {
                t.contains("Successful") || t.contains("Failed")
            })
            .await;
        b.shot("tested").await;
        assert!(
            result.contains("Successful") && result.contains(&head),
            "{result}"
        );
        b.click("#submit-button").await;
        b.find("dialog").await;
        b.shot("saved").await;
        b.close().await;
    });
    let shown = f
        .app
        .cli(&["--json", "connector", "show", "bitbucket-ssh"], None)
        .ok()
        .json();
    assert_eq!(shown["ssh_key_secret"], "deploy-key", "{shown}");
    assert_eq!(shown["last_test"]["ok"], true, "{shown}");
}

#[test]
fn secrets_are_listed_with_where_they_are_used_and_a_used_one_is_not_deleted() {
    if !browser::available(
        "ui::secrets_are_listed_with_where_they_are_used_and_a_used_one_is_not_deleted",
    ) {
        return;
    }
    let f = synced_fixture();
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("secrets").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/setup/secrets"), "secrets")
            .await;
        let table = b.text("main table").await;
        assert!(
            table.contains("bb-token") && table.contains("git"),
            "used by the connector: {table}"
        );
        b.fill("#text-name", "spare-token").await;
        b.fill("#text-value", "spare-value-123456").await;
        b.click("form[action='/ui/setup/secrets/text'] button")
            .await;
        let notice = b.text("#notice").await;
        assert!(notice.contains("spare-token"), "{notice}");
        b.click("button[aria-label='Delete secret bb-token']").await;
        let refused = b.text("#secret-error").await;
        b.shot("in-use").await;
        assert!(
            refused.contains("git"),
            "names the connector that uses it: {refused}"
        );
        b.click("button[aria-label='Delete secret spare-token']")
            .await;
        let notice = b.text("#notice").await;
        assert!(notice.contains("Deleted"), "{notice}");
        let source = b.source().await;
        assert!(
            !source.contains("spare-value-123456") && !source.contains(TOKEN),
            "no value is ever shown"
        );
        b.close().await;
    });
}

#[test]
fn admins_manage_users_and_everyone_their_own_tokens() {
    if !browser::available("ui::admins_manage_users_and_everyone_their_own_tokens") {
        return;
    }
    let f = bare();
    f.app.cli(&["app", "create", "Shop"], None).ok();
    let base = f.app.url.clone();
    let (link, token) = f.rt.block_on(async {
        let mut b = Browser::start("users").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/users"), "users").await;
        b.fill("#new-name", "sam").await;
        b.select("#new-role", "editor").await;
        b.fill("#new-apps", "Shop").await;
        b.click("form[action='/ui/users'] button").await;
        let link = b
            .find("#password-link-value")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the link");
        b.shot("user-added").await;
        let table = b.text("main table").await;
        assert!(table.contains("editor in Shop"), "{table}");
        // An admin's own tokens.
        b.visit(&format!("{base}/ui/tokens"), "tokens").await;
        b.fill("#token-name", "laptop").await;
        b.click("form[action='/ui/tokens'] button").await;
        let token = b
            .find("#new-token-value")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the token");
        b.shot("token-created").await;
        b.click("button[aria-label='Revoke token laptop']").await;
        let notice = b
            .wait_text("#notice", "the revocation", |t| t.contains("Revoked"))
            .await;
        assert!(notice.contains("Revoked laptop"), "{notice}");
        // Another session of the admin's ends too when they log out everywhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let other = http
            .post(format!("{base}/ui/login"))
            .form(&[
                ("user", "admin"),
                ("password", ADMIN_PASSWORD),
                ("next", "/ui/setup"),
            ])
            .send()
            .await
            .expect("login");
        let other = other.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let page = |cookie: String| {
            let http = http.clone();
            let url = format!("{base}/ui/setup");
            async move {
                http.get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .expect("page")
                    .status()
            }
        };
        assert_eq!(page(other.clone()).await, reqwest::StatusCode::OK);
        b.click("#logout-everywhere").await;
        b.find("form[action='/ui/login']").await;
        assert_eq!(
            page(other).await,
            reqwest::StatusCode::SEE_OTHER,
            "the other session ended"
        );
        b.close().await;
        (link, token)
    });
    assert!(link.contains("/set-password#rspw_"), "{link}");
    assert!(token.starts_with("rsp_"), "{token}");
    let revoked = f.app.cli_as(Some(&token), &["whoami"], None);
    assert_ne!(revoked.code, 0, "the revoked token is refused");
    let sam = f
        .app
        .cli(&["--json", "user", "show", "sam"], None)
        .ok()
        .json();
    assert_eq!(sam["role"], "editor", "{sam}");
    assert_eq!(sam["apps"][0], "Shop", "{sam}");
}

#[test]
fn deliveries_and_delegates_are_shown_and_delegate_tokens_made_and_revoked() {
    if !browser::available(
        "ui::deliveries_and_delegates_are_shown_and_delegate_tokens_made_and_revoked",
    ) {
        return;
    }
    let f = synced_fixture();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    let emulator = emulated_pushes(&f);
    let path = format!("{SHOP}/Workflows/hooked.yaml");
    let yaml = workflow("delivered");
    emulator
        .commit(REPO, "main", &[(path.as_str(), yaml.as_str())], "Hooked")
        .expect("commit");
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.app.cli(&["get", &path], None).code != 0 {
        assert!(Instant::now() < deadline, "the delivery never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("operations").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/webhooks?outcome=queued"), "deliveries")
            .await;
        let log = b.text("main table").await;
        assert!(
            log.contains("git") && log.contains("cloud") && log.contains("queued"),
            "{log}"
        );
        b.visit(&format!("{base}/ui/delegates"), "delegates").await;
        let delegates = b.text("main table").await;
        assert!(
            delegates.contains("builtin") && delegates.contains("Connected"),
            "{delegates}"
        );
        b.fill("#token-name", "eu").await;
        b.fill("#token-selectors", "eu").await;
        b.click("form[action='/ui/delegates/tokens'] button").await;
        let value = b
            .find("#new-token-value")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the token");
        assert!(value.starts_with("rsd_"), "{value}");
        b.shot("delegate-token").await;
        b.click("button[aria-label='Revoke delegate token eu']")
            .await;
        let notice = b.text("#notice").await;
        assert!(notice.contains("Revoked eu"), "{notice}");
        b.close().await;
    });
}

#[test]
fn editing_a_connector_changes_only_what_changed_and_deleting_names_what_stops_it() {
    if !browser::available(
        "ui::editing_a_connector_changes_only_what_changed_and_deleting_names_what_stops_it",
    ) {
        return;
    }
    let f = synced_fixture();
    let before = f
        .app
        .cli(&["--json", "connector", "show", "git"], None)
        .ok()
        .json();
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("edit-connector").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers"),
            "providers",
        )
        .await;
        b.click("a[aria-label='Edit git']").await;
        b.find("#provider-form").await;
        b.shot("edit-form").await;
        b.fill("#author_name", "Release Bot").await;
        b.click("#submit-button").await;
        let notice = b.text("#notice").await;
        assert!(notice.contains("Saved git"), "{notice}");
        b.close().await;
    });
    let after = f
        .app
        .cli(&["--json", "connector", "show", "git"], None)
        .ok()
        .json();
    assert_eq!(after["author_name"], "Release Bot", "{after}");
    for unchanged in [
        "url",
        "username",
        "password_secret",
        "branch",
        "author_email",
        "ca_certificate",
        "generate_webhook_url",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged} is kept");
    }
    // Linked, it cannot go; a connector nothing uses can.
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    f.app
        .cli(
            &[
                "connector",
                "add",
                "--name",
                "spare",
                "--url",
                "https://bitbucket.org/acme/spare.git",
                "--username",
                "jdoe",
                "--password-secret",
                "bb-token",
                "--branch",
                "main",
                "--no-test",
            ],
            None,
        )
        .ok();
    f.rt.block_on(async {
        let mut b = Browser::start("delete-connector").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/git/delete"),
            "blocked",
        )
        .await;
        let blockers = b.text("#blockers").await;
        assert!(
            blockers.contains("app:Shop is synced through it"),
            "{blockers}"
        );
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/spare/delete"),
            "confirm",
        )
        .await;
        b.click("#confirm-delete").await;
        let notice = b.text("#notice").await;
        assert!(notice.contains("Deleted spare"), "{notice}");
        b.close().await;
    });
    let listed = f
        .app
        .cli(&["--json", "connector", "list"], None)
        .ok()
        .json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

#[test]
fn a_scope_is_linked_followed_in_its_activity_and_unlinked_from_the_git_sync_page() {
    if !browser::available(
        "ui::a_scope_is_linked_followed_in_its_activity_and_unlinked_from_the_git_sync_page",
    ) {
        return;
    }
    let f = synced_fixture();
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("git-sync").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/git-sync"), "git-sync-empty")
            .await;
        b.select("#enable-app", "Shop").await;
        b.select("#enable-connector", "git").await;
        b.click("#enable-form button[type=submit]").await;
        let done = b
            .wait_text("main [role=status]", "the enable task", |t| {
                t.contains("Enabled") || t.contains("Not enabled")
            })
            .await;
        b.shot("enabled").await;
        assert!(
            done.contains("Enabled") && done.contains("app:Shop"),
            "{done}"
        );
        assert!(done.contains("first commit"), "{done}");
        b.close().await;
    });
    let pushed = f.wait_pushed();
    f.rt.block_on(async {
        let mut b = Browser::start("git-sync-after").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/git-sync"), "git-sync-linked")
            .await;
        let links = b.text("#links").await;
        assert!(
            links.contains("app:Shop") && links.contains("In sync"),
            "{links}"
        );
        assert!(
            links.contains(&pushed[..12]),
            "the last commit out: {links}"
        );
        b.visit(
            &format!("{base}/ui/git-sync/activity?app=Shop&direction=out"),
            "activity",
        )
        .await;
        let activity = b.text("main").await;
        assert!(activity.contains(&pushed[..12]), "{activity}");
        let source = b.source().await;
        assert!(
            !source.contains("<h2>Git → reposync</h2>"),
            "only the outgoing direction: {activity}"
        );
        b.visit(
            &format!("{base}/ui/git-sync/disable?app=Shop"),
            "disable-confirm",
        )
        .await;
        b.click("#confirm-disable").await;
        let notice = b.text("#notice").await;
        b.shot("disabled").await;
        assert!(notice.contains("disabled"), "{notice}");
        b.close().await;
    });
    let status = f.app.cli(&["--json", "sync", "status"], None).ok().json();
    assert_eq!(
        status["items"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}

#[test]
fn files_are_created_renamed_refused_deleted_and_downloaded_from_the_tree() {
    if !browser::available(
        "ui::files_are_created_renamed_refused_deleted_and_downloaded_from_the_tree",
    ) {
        return;
    }
    let f = synced_fixture();
    let base = f.app.url.clone();
    let pipeline = "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  workflowName: deploy\n";
    let cookie = f.rt.block_on(async {
        let mut b = Browser::start("tree-files").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        for (name, content) in [
            ("Workflows/deploy.yaml", workflow("made in the browser")),
            ("Pipelines/p.yaml", pipeline.to_owned()),
        ] {
            b.visit(
                &format!("{base}/ui/setup/config-as-code?folder=Setup/Applications/Shop"),
                "shop",
            )
            .await;
            b.click("main details summary").await;
            b.fill("#new-file-name", name).await;
            b.fill("#new-file-content", &content).await;
            b.click("form[action='/ui/setup/config-as-code/new'] button")
                .await;
            let saved = b
                .wait_text("#saved", "the new file saved", |t| t.contains("Saved"))
                .await;
            assert!(saved.contains("Saved"), "{saved}");
        }
        // The pipeline refers to the workflow: deleting it is refused, naming the referrer.
        let workflow_page =
            format!("{base}/ui/setup/config-as-code/file?path={SHOP}/Workflows/deploy.yaml");
        b.visit(&workflow_page, "workflow").await;
        b.click("main details summary").await;
        b.click("#delete-button").await;
        let refused = b
            .wait_text("#problems", "the refusal", |t| !t.is_empty())
            .await;
        b.shot("delete-refused").await;
        assert!(
            refused.contains("Pipelines/p.yaml"),
            "names the referrer: {refused}"
        );
        // Renaming it rewrites the reference.
        b.click("main details summary").await;
        b.fill("#rename-to", "release").await;
        b.click("#rename-button").await;
        let notice = b
            .wait_text("#notice", "the rename", |t| !t.is_empty())
            .await;
        assert!(notice.contains("Renamed to release"), "{notice}");
        // Nothing refers to the pipeline: it goes.
        b.visit(
            &format!("{base}/ui/setup/config-as-code/file?path={SHOP}/Pipelines/p.yaml"),
            "pipeline",
        )
        .await;
        b.click("main details summary").await;
        b.click("#delete-button").await;
        let notice = b
            .wait_text("#notice", "the deletion", |t| !t.is_empty())
            .await;
        assert!(notice.contains("Deleted"), "{notice}");
        let cookie = b
            .client
            .get_named_cookie("reposync_session")
            .await
            .expect("the session cookie");
        b.close().await;
        format!("reposync_session={}", cookie.value())
    });
    let trail = f
        .app
        .cli(&["--json", "audit", "--user", "admin"], None)
        .ok()
        .stdout
        .clone();
    assert!(
        trail.contains("tree.rename") && trail.contains("tree.delete"),
        "{trail}"
    );
    // The download is the application's files, in a tar archive.
    let bytes = f.rt.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{base}/ui/setup/config-as-code/download?app=Shop"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.expect("bytes")
    });
    let mut archive = tar::Archive::new(bytes.as_ref());
    let paths: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for expected in ["Services/cart/Index.yaml", "Workflows/release.yaml"] {
        assert!(
            paths.contains(&format!("{SHOP}/{expected}")),
            "{expected} in {paths:?}"
        );
    }
    assert!(
        !paths.iter().any(|p| p.contains("deploy.yaml")),
        "renamed: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("Pipelines")),
        "deleted: {paths:?}"
    );
}

#[test]
fn a_change_the_branch_refused_is_retried_from_the_errors_page_once_the_branch_takes_it() {
    if !browser::available(
        "ui::a_change_the_branch_refused_is_retried_from_the_errors_page_once_the_branch_takes_it",
    ) {
        return;
    }
    let f = synced_fixture();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();
    let hook = f
        .root
        .repo_path(REPO)
        .expect("repo")
        .join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n").expect("hook");
    let mut permissions = std::fs::metadata(&hook).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).expect("chmod");
    let path = format!("{SHOP}/Workflows/w.yaml");
    f.put(&path, &workflow("blocked at first"));
    f.wait_for_errors();
    // The branch takes pushes again; the person retries the change.
    std::fs::remove_file(&hook).expect("unprotect");
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("retry").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.find("h1").await;
        b.visit(&format!("{base}/ui/git-sync/errors"), "errors")
            .await;
        let outbound = b.text("section[aria-labelledby='group-outbound']").await;
        assert!(outbound.contains("push_rejected"), "{outbound}");
        b.click("button[aria-label^='Retry the change']").await;
        let notice = b.wait_text("#notice", "the retry", |t| !t.is_empty()).await;
        b.shot("retried").await;
        assert!(notice.contains("Retrying"), "{notice}");
        b.close().await;
    });
    let pushed = f.wait_pushed();
    let on_branch = f.root.read_file(REPO, "main", &path).expect("pushed");
    assert!(on_branch.contains("blocked at first"), "{on_branch}");
    assert!(f.message(&pushed).contains(&format!("ADD: {path}")));
}

#[test]
fn the_pages_work_from_the_keyboard_and_every_field_has_its_label_and_its_error() {
    if !browser::available(
        "ui::the_pages_work_from_the_keyboard_and_every_field_has_its_label_and_its_error",
    ) {
        return;
    }
    use fantoccini::key::Key;
    let f = bare();
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("keyboard").await;
        b.visit(&format!("{base}/ui/login"), "login").await;
        // Tab: first the skip link, then the fields in order; Enter logs in.
        b.press(Key::Tab).await;
        assert_eq!(b.text("a.skip-link").await, "Skip to main content");
        let mut order = Vec::new();
        for _ in 0..3 {
            b.press(Key::Tab).await;
            order.push(b.focused().await);
        }
        assert_eq!(order, ["user", "password", "BUTTON"], "the tab order");
        b.click("#user").await;
        b.type_here("admin").await;
        b.press(Key::Tab).await;
        b.type_here(ADMIN_PASSWORD).await;
        b.press(Key::Enter).await;
        b.find("form[action='/ui/logout']").await;
        b.shot("logged-in-by-keyboard").await;
        // Every field of the Git Connector form has a label bound to it.
        b.visit(&format!("{base}/ui/setup/connectors/source-repo-providers/new"), "form").await;
        let unlabelled = b
            .client
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
                 .filter(e => e.labels.length === 0).map(e => e.name || e.id)",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(unlabelled, serde_json::json!([]), "fields without a label");
        // A refused field is marked, and points at its message.
        b.fill("#name", "bad/name").await;
        b.fill("#url", "https://bitbucket.org/acme/x.git").await;
        b.click("#submit-button").await;
        // The refused form, not the one that was sent.
        b.find(".error-summary").await;
        let name = b.find("#name").await;
        assert_eq!(name.attr("aria-invalid").await.expect("attr").as_deref(), Some("true"));
        let described = name.attr("aria-describedby").await.expect("attr").expect("described");
        let message = b.text(&format!("#{described}")).await;
        b.shot("field-error").await;
        assert!(message.contains("'/'"), "the model's words: {message}");
        let title = b.client.title().await.expect("title");
        assert!(title.starts_with("Error: "), "{title}");
        b.close().await;
    });
}

#[test]
fn an_ssh_key_is_added_in_the_connector_form_from_a_file_and_a_public_key_is_refused_beside_it() {
    if !browser::available(
        "ui::an_ssh_key_is_added_in_the_connector_form_from_a_file_and_a_public_key_is_refused_beside_it",
    ) {
        return;
    }
    let f = bare();
    let keys = f.app.dir.path().join("keys");
    std::fs::create_dir(&keys).expect("keys dir");
    let key = reposync_testkit::SshKeyFiles::generate_ed25519(&keys, "deploy").expect("key");
    let base = f.app.url.clone();
    f.rt.block_on(async {
        let mut b = Browser::start("ssh-upload").await;
        log_in(&mut b, &base, "admin", ADMIN_PASSWORD).await;
        b.visit(
            &format!("{base}/ui/setup/connectors/source-repo-providers/new"),
            "form",
        )
        .await;
        // A public key pasted where the private key goes: refused beside the field.
        b.fill("#new_ssh_key_name", "pasted").await;
        b.fill("#new_ssh_private_key", &key.public_key).await;
        b.click("#add-key-button").await;
        let error = b
            .wait_text("#new_ssh_private_key-error", "the refusal", |t| {
                !t.is_empty()
            })
            .await;
        b.shot("public-key-refused").await;
        assert!(error.to_lowercase().contains("public key"), "{error}");
        // The private key loaded from its file: added, picked, and its public key shown.
        b.fill("#new_ssh_key_name", "uploaded").await;
        let file = b.find("#new-ssh-key-file").await;
        file.send_keys(key.private_key.to_str().expect("utf-8"))
            .await
            .expect("choose the file");
        // The page's script reads the chosen file into the field.
        b.wait_value(
            "#new_ssh_private_key",
            "the file's text in the field",
            |v| v.contains("BEGIN OPENSSH PRIVATE KEY"),
        )
        .await;
        b.click("#add-key-button").await;
        let public = b
            .find("#public-key-value")
            .await
            .prop("value")
            .await
            .expect("value")
            .expect("the public key");
        b.shot("key-uploaded").await;
        assert_eq!(
            public.split_whitespace().nth(1),
            key.public_key.split_whitespace().nth(1)
        );
        let picked = b
            .find("#ssh_key_secret")
            .await
            .prop("value")
            .await
            .expect("value");
        assert_eq!(picked.as_deref(), Some("uploaded"));
        b.close().await;
    });
}

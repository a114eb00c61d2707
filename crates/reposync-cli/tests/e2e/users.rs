//! Users, roles and the audit trail through the real binary: each person works with their own
//! token within the rights they were given, refusals name the missing grant, revoking a token
//! takes effect at once, the audit trail lists exactly what each tried, and the commit pushed
//! for a person's change names them.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use serde_json::Value;

use crate::common::git_fixture::{Fixture, SHOP, workflow};

/// The value a `token create` (or `admin reset`) printed.
fn shown_token(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Token (shown once): "))
        .expect("the token is shown once")
        .trim()
        .to_owned()
}

/// `(actor, use case, outcome, status, target)` of every audit event, oldest first.
fn trail(f: &Fixture, user: &str) -> Vec<(String, String, String, u64, String)> {
    let listed = f
        .app
        .cli(&["--json", "audit", "--user", user], None)
        .ok()
        .stdout
        .clone();
    let listed: Value = serde_json::from_str(&listed).expect("audit JSON");
    let mut events: Vec<(String, String, String, u64, String)> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["use_case"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_u64().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    events.reverse();
    events
}

fn event(
    actor: &str,
    use_case: &str,
    outcome: &str,
    status: u64,
    target: &str,
) -> (String, String, String, u64, String) {
    (
        actor.into(),
        use_case.into(),
        outcome.into(),
        status,
        target.into(),
    )
}

#[test]
fn people_work_with_their_own_tokens_within_their_grants_and_the_trail_says_who_did_what() {
    let f = Fixture::https(&[("README.md", "config repository\n")]);
    f.app.cli(&["app", "create", "Bank"], None).ok();
    f.app
        .cli(
            &["sync", "enable", "--app", "Shop", "--connector", "git"],
            None,
        )
        .ok();
    f.wait_pushed();

    // An admin makes an editor of Shop only, with an e-mail address, and a viewer with a
    // password; the editor's token is issued by the admin, the viewer logs in.
    let added = f.app.cli(
        &[
            "user",
            "add",
            "sam",
            "--role",
            "editor",
            "--app",
            "Shop",
            "--email",
            "sam@example.com",
        ],
        None,
    );
    assert!(
        added.ok().stdout.contains("editor in Shop"),
        "{}",
        added.stdout
    );
    let viewer_password = "vera's long enough password";
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
            Some(&format!("{viewer_password}\n")),
        )
        .ok();
    let issued = f
        .app
        .cli(&["token", "create", "laptop", "--user", "sam"], None);
    let sam = shown_token(&issued.ok().stdout);
    assert!(sam.starts_with("rsp_"), "recognisable by its prefix: {sam}");
    let login = f.app.cli_as(
        None,
        &["login", "--user", "vera"],
        Some(&format!("{viewer_password}\n")),
    );
    assert!(login.ok().stdout.contains("Logged in"), "{}", login.stdout);
    let whoami = f.app.cli_as(None, &["whoami"], None);
    assert!(whoami.ok().stdout.contains("vera"), "{}", whoami.stdout);

    // The editor changes Shop: accepted, and the commit carries their trailer.
    let path = format!("{SHOP}/Workflows/deploy.yaml");
    let file = f.app.dir.path().join("deploy.yaml");
    std::fs::write(&file, workflow("sam's")).expect("write");
    let file = file.to_str().expect("utf-8");
    f.app
        .cli_as(Some(&sam), &["apply", "--path", &path, "-f", file], None)
        .ok();
    let pushed = f.wait_pushed();
    let message = f.message(&pushed);
    assert!(
        message.lines().any(|line| line == "Reposync-User: sam"),
        "{message}"
    );
    assert_eq!(
        f.git(&["log", "-1", "--format=%an|%cn", &pushed]),
        "Sync Bot|Sync Bot",
        "the author stays the connector's"
    );

    // With --author-from-user, a commit holding one person's change has them as its author,
    // and the connector as its committer.
    f.app
        .cli(&["connector", "update", "git", "--author-from-user"], None)
        .ok();
    std::fs::write(
        f.app.dir.path().join("deploy.yaml"),
        workflow("sam's again"),
    )
    .expect("write");
    f.app
        .cli_as(Some(&sam), &["apply", "--path", &path, "-f", file], None)
        .ok();
    let authored = f.wait_pushed();
    assert_eq!(
        f.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", &authored]),
        "sam <sam@example.com>|Sync Bot <sync-bot@example.com>"
    );

    // The editor's change to another application is refused, naming the missing grant.
    let bank = "Setup/Applications/Bank/Workflows/deploy.yaml";
    let refused = f
        .app
        .cli_as(Some(&sam), &["apply", "--path", bank, "-f", file], None);
    assert_ne!(refused.code, 0);
    for words in [
        "needs the editor role in application \"Bank\"",
        "sam is a viewer there (editor only in Shop)",
        "reposync user set-role sam editor --app \"Bank\"",
    ] {
        assert!(
            refused.stderr.contains(words),
            "{words}: {}",
            refused.stderr
        );
    }
    // The viewer reads, and cannot write.
    let read = f.app.cli_as(None, &["get", &path], None);
    assert!(read.ok().stdout.contains("sam's again"), "{}", read.stdout);
    let denied = f.app.cli_as(None, &["app", "create", "Vault"], None);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("needs the editor role"),
        "{}",
        denied.stderr
    );

    // A second token of the editor's works until revoked, and not one request after.
    let second = shown_token(
        &f.app
            .cli_as(
                Some(&sam),
                &["token", "create", "ci", "--expires", "7d"],
                None,
            )
            .ok()
            .stdout,
    );
    f.app.cli_as(Some(&second), &["get", &path], None).ok();
    f.app
        .cli_as(Some(&sam), &["token", "revoke", "ci"], None)
        .ok();
    let revoked = f.app.cli_as(Some(&second), &["get", &path], None);
    assert_ne!(revoked.code, 0);
    assert!(
        revoked.stderr.contains("invalid API token"),
        "{}",
        revoked.stderr
    );
    let listed = f.app.cli_as(Some(&sam), &["token", "list"], None);
    let names: Vec<&str> = listed
        .ok()
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(names, ["laptop"], "{}", listed.stdout);
    assert!(!listed.stdout.contains(&sam), "a list never shows a value");

    // The trail lists exactly what each of them tried, accepted and refused.
    assert_eq!(
        trail(&f, "sam"),
        [
            event("sam", "tree.apply", "accepted", 200, &path),
            event("sam", "tree.apply", "accepted", 200, &path),
            event("sam", "tree.apply", "refused", 403, bank),
            event("sam", "token.create", "accepted", 201, "ci"),
            event("sam", "token.revoke", "accepted", 200, "ci"),
        ]
    );
    assert_eq!(
        trail(&f, "vera"),
        [
            event("vera", "login", "accepted", 201, "vera"),
            event("vera", "app.create", "refused", 403, "Vault"),
        ]
    );
    let admin = trail(&f, "admin");
    for expected in [
        event("admin", "user.create", "accepted", 201, "sam"),
        event("admin", "user.create", "accepted", 201, "vera"),
        event("admin", "user.token.create", "accepted", 201, "sam"),
    ] {
        assert!(admin.contains(&expected), "{expected:?} in {admin:#?}");
    }
    // Changes of rights say what they asked for, and never a password.
    let wide = f
        .app
        .cli(&["--json", "audit", "--user", "admin"], None)
        .ok()
        .stdout
        .clone();
    assert!(
        wide.contains("role=\\\"editor\\\" apps=[\\\"Shop\\\"]"),
        "{wide}"
    );
    assert!(wide.contains("password=set"), "{wide}");

    // No password or token value is in the trail, the log or the database.
    f.app
        .assert_not_logged_or_stored(&[viewer_password, &sam, &second]);
    let everything = f
        .app
        .cli(&["--json", "audit", "--limit", "1000"], None)
        .ok()
        .stdout
        .clone();
    for secret in [
        viewer_password,
        sam.as_str(),
        second.as_str(),
        f.app.token.as_str(),
    ] {
        assert!(
            !everything.contains(secret),
            "a secret value is in the audit trail"
        );
    }
}

#[test]
fn admin_reset_issues_a_new_admin_token_from_the_data_directory_and_revokes_the_old() {
    let mut app = crate::common::TestApp::spawn();
    let old = app.token.clone();
    // With the server running: the reset goes to the store the server uses.
    let reset = app.cli(
        &[
            "admin",
            "reset",
            "--data-dir",
            app.data_dir().to_str().expect("utf-8"),
        ],
        None,
    );
    let new = shown_token(&reset.ok().stdout);
    assert!(new.starts_with("rsp_") && new != old);
    let refused = app.cli_as(Some(&old), &["whoami"], None);
    assert_ne!(refused.code, 0, "the old token is revoked");
    let me = app.cli_as(Some(&new), &["whoami"], None);
    assert!(me.ok().stdout.contains("admin"), "{}", me.stdout);
    let token_file = std::fs::read_to_string(app.data_dir().join("admin.token")).expect("file");
    assert_eq!(
        token_file.trim(),
        new,
        "the local CLI's token file holds the new token"
    );
    let trail = app.cli_as(
        Some(&new),
        &["--json", "audit", "--user", "reposync admin reset"],
        None,
    );
    assert!(
        trail.ok().stdout.contains("admin.reset"),
        "{}",
        trail.stdout
    );
    // And with it stopped; a user who is not an admin is refused by name.
    app.stop();
    let dir = app.data_dir().to_str().expect("utf-8").to_owned();
    let again = app.cli(&["admin", "reset", "--data-dir", &dir], None);
    assert!(
        again.ok().stdout.contains("Token (shown once): rsp_"),
        "{}",
        again.stdout
    );
    let nobody = app.cli(&["admin", "reset", "nobody", "--data-dir", &dir], None);
    assert_ne!(nobody.code, 0);
    assert!(
        nobody.stderr.contains("user \"nobody\" does not exist"),
        "{}",
        nobody.stderr
    );
}

#[test]
fn a_one_time_link_sets_a_password_once_and_the_password_logs_in() {
    let app = crate::common::TestApp::spawn();
    let added = app.cli(&["user", "add", "pat", "--role", "viewer"], None);
    assert!(
        added.ok().stdout.contains("user password-link pat"),
        "{}",
        added.stdout
    );
    let made = app.cli(&["user", "password-link", "pat"], None);
    let link = made
        .ok()
        .stdout
        .lines()
        .find(|line| line.contains("/set-password#rspw_"))
        .expect("the link")
        .trim()
        .to_owned();
    let password = "pat's own long password";
    let set = app.cli_as(
        None,
        &["set-password", "--link", &link],
        Some(&format!("{password}\n")),
    );
    assert!(set.ok().stdout.contains("Password set"), "{}", set.stdout);
    let again = app.cli_as(
        None,
        &["set-password", "--link", &link],
        Some("another long password\n"),
    );
    assert_ne!(again.code, 0, "a link works once");
    assert!(
        again.stderr.contains("unknown, used or expired"),
        "{}",
        again.stderr
    );
    let login = app.cli_as(
        None,
        &["login", "--user", "pat"],
        Some(&format!("{password}\n")),
    );
    assert!(login.ok().stdout.contains("Logged in"), "{}", login.stdout);
    let token = link
        .rsplit_once('#')
        .map(|(_, t)| t.to_owned())
        .expect("token");
    app.assert_not_logged_or_stored(&[password, &token]);
    let trail = app.cli(&["--json", "audit", "--user", "pat"], None);
    assert!(
        trail.ok().stdout.contains("password.set_by_link"),
        "{}",
        trail.stdout
    );
}

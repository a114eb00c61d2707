//! Webhook normalisation, signatures and clone-URL matching.
//!
//! The payloads are written here in the shapes Bitbucket sends (see `shared/fixtures/bitbucket`
//! for real ones), trimmed to the fields that matter plus some that do not, so that the parser
//! is seen to skip them.

use reposync_bitbucket::{
    ChangeKind, Delivery, DeliveryKind, PayloadError, RefChange, RefKind, Repository,
    SignatureError, WebhookFormat, normalise, sign, verify_signature,
};
use serde_json::{Value, json};

const C1: &str = "709d658dc5b6d6afcd46049c2f332ee3f515a67d";
const C2: &str = "1e65c05c1d5171631d92438a13901ca7dae9618c";
const C3: &str = "f09c8889a2d234985734958795a31589cd91ffda";
const C4: &str = "22671f0349857934857983457983475ec39f196b";
const C5: &str = "836d9f1f2fa7fea7831ceddcd85f0fbf1b9f8f60";
const C6: &str = "c985ccefce4df3b0ddc45a885c4881bfd8d24a47";
const ZEROS: &str = "0000000000000000000000000000000000000000";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `normalise` with these headers (looked up case-insensitively, as an HTTP layer would).
fn run(headers: &[(&str, &str)], body: &Value) -> Result<Delivery, PayloadError> {
    run_raw(headers, body.to_string().as_bytes())
}

fn run_raw(headers: &[(&str, &str)], body: &[u8]) -> Result<Delivery, PayloadError> {
    let lookup = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| (*v).to_owned())
    };
    normalise(&lookup, body)
}

fn push_of(delivery: &Delivery) -> (&Repository, &[RefChange]) {
    match &delivery.kind {
        DeliveryKind::Push {
            repository,
            changes,
        } => (repository, changes),
        other => panic!("expected a push, got {other:?}"),
    }
}

fn change(
    ref_name: &str,
    kind: RefKind,
    change: ChangeKind,
    old: Option<&str>,
    new: Option<&str>,
) -> RefChange {
    RefChange {
        ref_name: ref_name.into(),
        kind,
        change,
        old: old.map(str::to_owned),
        new: new.map(str::to_owned),
    }
}

fn error_message(headers: &[(&str, &str)], body: &Value) -> String {
    match run(headers, body) {
        Ok(delivery) => panic!("the body should be refused, got {delivery:?}"),
        Err(err) => err.to_string(),
    }
}

const CLOUD: &[(&str, &str)] = &[
    ("X-Event-Key", "repo:push"),
    ("X-Request-UUID", "8a4a6a4e-8f3b-4bd4-9ac2-3c7bd8e1ab01"),
    ("X-Hook-UUID", "{0c4d1a48-5d7c-4a7e-9a55-1a0d2b4d3c11}"),
    ("X-Attempt-Number", "1"),
    ("User-Agent", "Bitbucket-Webhooks/2.0"),
];

const SERVER: &[(&str, &str)] = &[
    ("X-Event-Key", "repo:refs_changed"),
    ("X-Request-Id", "d2ad7c7e-4b27-4c42-9a35-9b7f7a6e5f10"),
];

const PLUGIN: &[(&str, &str)] = &[("X-Event-Key", "repo:push"), ("X-Bitbucket-Type", "server")];

/// A Cloud `new`/`old` side: a ref with its target commit and the usual decorations.
fn cloud_side(kind: &str, name: &str, hash: &str) -> Value {
    json!({
        "type": kind,
        "name": name,
        "target": {
            "type": "commit",
            "hash": hash,
            "message": "change things\n",
            "date": "2026-03-09T03:34:49+00:00",
            "author": {"type": "author", "raw": "Emma <emma@example.com>"},
            "parents": [{"type": "commit", "hash": C6}],
            "links": {"html": {"href": "https://bitbucket.org/acme/config/commits/x"}}
        },
        "links": {"html": {"href": "https://bitbucket.org/acme/config/branch/x"}}
    })
}

fn cloud_change(new: Value, old: Value, created: bool, closed: bool, forced: bool) -> Value {
    json!({
        "new": new,
        "old": old,
        "created": created,
        "closed": closed,
        "forced": forced,
        "truncated": false,
        "commits": [],
        "links": {"diff": {"href": "https://api.bitbucket.org/2.0/repositories/not/this/diff/x"}}
    })
}

fn cloud_body(changes: Vec<Value>) -> Value {
    json!({
        "actor": {"display_name": "Emma", "uuid": "{a54f16da-24e9-4d7f-a3a7-b1ba2cd98aa3}"},
        "repository": {
            "type": "repository",
            "full_name": "acme/config",
            "name": "Config",
            "uuid": "{673a6070-3421-46c9-9d48-90745f7bfe8e}",
            "scm": "git",
            "is_private": true,
            "workspace": {"type": "workspace", "slug": "acme", "name": "Acme"},
            "project": {"type": "project", "key": "OPS", "name": "Operations"},
            // Links are deliberately wrong: identity must come from full_name.
            "links": {"html": {"href": "https://bitbucket.org/someone-else/elsewhere"}}
        },
        "push": {"changes": changes}
    })
}

/// A Server `changes[]` entry.
fn server_change(ref_id: &str, ref_type: &str, kind: &str, from: &str, to: &str) -> Value {
    let display = ref_id
        .strip_prefix("refs/heads/")
        .or_else(|| ref_id.strip_prefix("refs/tags/"))
        .unwrap_or(ref_id);
    json!({
        "ref": {"id": ref_id, "displayId": display, "type": ref_type},
        "refId": ref_id,
        "fromHash": from,
        "toHash": to,
        "type": kind
    })
}

fn server_repository(key: &str, slug: &str) -> Value {
    json!({
        "slug": slug,
        "id": 656,
        "name": "Config Repo",
        "scmId": "git",
        "state": "AVAILABLE",
        "forkable": true,
        "project": {"key": key, "id": 389, "name": "Platform", "type": "NORMAL"},
        "public": false,
        "links": {
            "clone": [
                {"href": "ssh://git@bitbucket.example.com:7999/wrong/links.git", "name": "ssh"},
                {"href": "https://bitbucket.example.com/scm/wrong/links.git", "name": "http"}
            ]
        }
    })
}

fn server_body(key: &str, slug: &str, changes: Vec<Value>) -> Value {
    json!({
        "eventKey": "repo:refs_changed",
        "date": "2026-03-09T19:37:57+1000",
        "actor": {"name": "john", "id": 500, "displayName": "John", "type": "NORMAL"},
        "repository": server_repository(key, slug),
        "changes": changes
    })
}

/// A plugin `new`/`old` side (the plugin sends only type, name and target.hash).
fn plugin_side(kind: &str, name: &str, hash: &str) -> Value {
    json!({"type": kind, "name": name, "target": {"type": "commit", "hash": hash}})
}

fn plugin_repository() -> Value {
    json!({
        "scmId": "git",
        "project": {"key": "PLAT", "name": "Platform"},
        "slug": "config",
        "links": {"self": [{"href": "http://bitbucket.example.com:7990/projects/PLAT/repos/config/browse"}]},
        "public": false,
        "owner": {"username": "PLAT", "displayName": "PLAT"},
        "fullName": "PLAT/config",
        "ownerName": "PLAT"
    })
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Cloud

#[test]
fn cloud_push_with_create_update_delete_force_and_tag() {
    let body = cloud_body(vec![
        cloud_change(
            cloud_side("branch", "feature/new", C1),
            Value::Null,
            true,
            false,
            false,
        ),
        cloud_change(
            cloud_side("branch", "main", C2),
            cloud_side("branch", "main", C3),
            false,
            false,
            false,
        ),
        cloud_change(
            Value::Null,
            cloud_side("branch", "old-work", C4),
            false,
            true,
            false,
        ),
        cloud_change(
            cloud_side("branch", "rewrite", C5),
            cloud_side("branch", "rewrite", C6),
            false,
            false,
            true,
        ),
        cloud_change(
            cloud_side("tag", "v1.2.0", C1),
            Value::Null,
            true,
            false,
            false,
        ),
    ]);
    let delivery = run(CLOUD, &body).unwrap();

    assert_eq!(delivery.format, Some(WebhookFormat::Cloud));
    assert_eq!(delivery.event, "repo:push");
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("8a4a6a4e-8f3b-4bd4-9ac2-3c7bd8e1ab01")
    );
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository, &Repository::new("acme", "config"));
    assert_eq!(repository.full_name, "acme/config");
    assert_eq!(
        changes,
        [
            change(
                "refs/heads/feature/new",
                RefKind::Branch,
                ChangeKind::Create,
                None,
                Some(C1)
            ),
            change(
                "refs/heads/main",
                RefKind::Branch,
                ChangeKind::Update,
                Some(C3),
                Some(C2)
            ),
            change(
                "refs/heads/old-work",
                RefKind::Branch,
                ChangeKind::Delete,
                Some(C4),
                None
            ),
            change(
                "refs/heads/rewrite",
                RefKind::Branch,
                ChangeKind::Force,
                Some(C6),
                Some(C5)
            ),
            change(
                "refs/tags/v1.2.0",
                RefKind::Tag,
                ChangeKind::Create,
                None,
                Some(C1)
            ),
        ]
    );
    assert_eq!(changes[0].branch(), Some("feature/new"));
    assert_eq!(changes[4].branch(), None);
    assert_eq!(changes[4].tag(), Some("v1.2.0"));
}

#[test]
fn cloud_push_in_the_documented_single_commit_shape() {
    // The shape of Atlassian's documented example: one update, `old` and `new` both present.
    let mut body = cloud_body(vec![cloud_change(
        cloud_side("branch", "name-of-branch", C1),
        cloud_side("branch", "name-of-branch", C2),
        false,
        false,
        false,
    )]);
    body["repository"] = json!({
        "links": {"self": {"href": "https://api.bitbucket.org/api/2.0/repositories/bitbucket/bitbucket"}},
        "uuid": "{673a6070-3421-46c9-9d48-90745f7bfe8e}",
        "full_name": "team_name/repo_name",
        "name": "repo_name",
        "scm": "git",
        "is_private": true
    });
    let delivery = run(CLOUD, &body).unwrap();
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository.owner, "team_name");
    assert_eq!(repository.slug, "repo_name");
    assert_eq!(
        changes,
        [change(
            "refs/heads/name-of-branch",
            RefKind::Branch,
            ChangeKind::Update,
            Some(C2),
            Some(C1)
        )]
    );
}

#[test]
fn cloud_push_with_no_changes_is_an_empty_push() {
    let delivery = run(CLOUD, &cloud_body(vec![])).unwrap();
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository.full_name, "acme/config");
    assert!(changes.is_empty());
}

#[test]
fn cloud_branch_and_tag_with_the_same_name_are_different_refs() {
    let body = cloud_body(vec![
        cloud_change(
            cloud_side("branch", "x", C1),
            Value::Null,
            true,
            false,
            false,
        ),
        cloud_change(cloud_side("tag", "x", C1), Value::Null, true, false, false),
    ]);
    let delivery = run(CLOUD, &body).unwrap();
    let (_, changes) = push_of(&delivery);
    assert_eq!(changes[0].ref_name, "refs/heads/x");
    assert_eq!(changes[0].kind, RefKind::Branch);
    assert_eq!(changes[1].ref_name, "refs/tags/x");
    assert_eq!(changes[1].kind, RefKind::Tag);
    assert_ne!(changes[0], changes[1]);
}

#[test]
fn cloud_named_branch_is_a_branch_and_bookmarks_are_left_out() {
    let body = cloud_body(vec![
        cloud_change(
            cloud_side("bookmark", "stable", C1),
            cloud_side("bookmark", "stable", C2),
            false,
            false,
            false,
        ),
        cloud_change(
            cloud_side("named_branch", "default", C3),
            cloud_side("named_branch", "default", C4),
            false,
            false,
            false,
        ),
    ]);
    let delivery = run(CLOUD, &body).unwrap();
    let (_, changes) = push_of(&delivery);
    assert_eq!(
        changes,
        [change(
            "refs/heads/default",
            RefKind::Branch,
            ChangeKind::Update,
            Some(C4),
            Some(C3)
        )]
    );
}

#[test]
fn cloud_commit_ids_are_lower_cased() {
    let body = cloud_body(vec![cloud_change(
        cloud_side("branch", "main", &C1.to_uppercase()),
        cloud_side("branch", "main", C2),
        false,
        false,
        false,
    )]);
    let delivery = run(CLOUD, &body).unwrap();
    assert_eq!(push_of(&delivery).1[0].new.as_deref(), Some(C1));
}

#[test]
fn cloud_change_without_flags_is_judged_by_which_side_is_null() {
    // Only `new` and `old` are strictly needed; the booleans may be absent.
    let body = cloud_body(vec![
        json!({"new": cloud_side("branch", "a", C1), "old": null}),
        json!({"new": null, "old": cloud_side("branch", "b", C2)}),
        json!({"new": cloud_side("branch", "c", C3), "old": cloud_side("branch", "c", C4)}),
    ]);
    let delivery = run(CLOUD, &body).unwrap();
    let kinds: Vec<ChangeKind> = push_of(&delivery).1.iter().map(|c| c.change).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Create, ChangeKind::Delete, ChangeKind::Update]
    );
}

#[test]
fn cloud_repository_falls_back_to_workspace_and_slug_without_full_name() {
    let mut body = cloud_body(vec![]);
    body["repository"] = json!({
        "type": "repository",
        "name": "Config",
        "slug": "config",
        "workspace": {"slug": "acme"}
    });
    let delivery = run(CLOUD, &body).unwrap();
    assert_eq!(push_of(&delivery).0, &Repository::new("acme", "config"));
}

#[test]
fn cloud_push_is_recognised_by_its_body_without_headers() {
    let delivery = run(&[], &cloud_body(vec![])).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::Cloud));
    assert_eq!(delivery.event, "repo:push");
    assert_eq!(delivery.delivery_id, None);
}

#[test]
fn headers_are_looked_up_whatever_their_case() {
    let headers = [("x-event-key", "repo:push"), ("x-request-uuid", "abc-123")];
    let delivery = run(&headers, &cloud_body(vec![])).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::Cloud));
    assert_eq!(delivery.delivery_id.as_deref(), Some("abc-123"));
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Server / Data Center, native webhooks

#[test]
fn server_refs_changed_with_add_update_delete_and_tag() {
    let body = server_body(
        "PLAT",
        "config",
        vec![
            server_change("refs/heads/feature/new", "BRANCH", "ADD", ZEROS, C1),
            server_change("refs/heads/main", "BRANCH", "UPDATE", C3, C4),
            server_change("refs/heads/old-work", "BRANCH", "DELETE", C2, ZEROS),
            server_change("refs/tags/v2", "TAG", "ADD", ZEROS, C5),
        ],
    );
    let delivery = run(SERVER, &body).unwrap();

    assert_eq!(delivery.format, Some(WebhookFormat::ServerNative));
    assert_eq!(delivery.event, "repo:refs_changed");
    assert_eq!(
        delivery.delivery_id.as_deref(),
        Some("d2ad7c7e-4b27-4c42-9a35-9b7f7a6e5f10")
    );
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository, &Repository::new("PLAT", "config"));
    assert_eq!(
        changes,
        [
            change(
                "refs/heads/feature/new",
                RefKind::Branch,
                ChangeKind::Create,
                None,
                Some(C1)
            ),
            change(
                "refs/heads/main",
                RefKind::Branch,
                ChangeKind::Update,
                Some(C3),
                Some(C4)
            ),
            change(
                "refs/heads/old-work",
                RefKind::Branch,
                ChangeKind::Delete,
                Some(C2),
                None
            ),
            change(
                "refs/tags/v2",
                RefKind::Tag,
                ChangeKind::Create,
                None,
                Some(C5)
            ),
        ]
    );
    assert_eq!(changes[1].branch(), Some("main"));
}

#[test]
fn server_personal_repository_keeps_its_tilde_key() {
    let body = server_body(
        "~JOHN",
        "sandbox",
        vec![server_change("refs/heads/main", "BRANCH", "UPDATE", C1, C2)],
    );
    let delivery = run(SERVER, &body).unwrap();
    let (repository, _) = push_of(&delivery);
    assert_eq!(repository.owner, "~JOHN");
    assert_eq!(repository.full_name, "~JOHN/sandbox");
    assert!(repository.matches_clone_url("https://bitbucket.example.com/scm/~john/sandbox.git"));
}

#[test]
fn server_push_is_recognised_by_the_body_event_key_without_headers() {
    let body = server_body(
        "PLAT",
        "config",
        vec![server_change("refs/heads/main", "BRANCH", "UPDATE", C1, C2)],
    );
    let delivery = run(&[], &body).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::ServerNative));
    assert_eq!(delivery.event, "repo:refs_changed");
    assert_eq!(push_of(&delivery).1.len(), 1);
}

#[test]
fn server_change_with_only_ref_id_is_accepted() {
    let body = server_body(
        "PLAT",
        "config",
        vec![json!({"refId": "refs/heads/main", "fromHash": C1, "toHash": C2, "type": "UPDATE"})],
    );
    let delivery = run(SERVER, &body).unwrap();
    assert_eq!(push_of(&delivery).1[0].ref_name, "refs/heads/main");
}

#[test]
fn server_refs_other_than_branches_and_tags_are_left_out() {
    let body = server_body(
        "PLAT",
        "config",
        vec![
            server_change("refs/notes/commits", "NOTE", "UPDATE", C1, C2),
            server_change("refs/heads/main", "BRANCH", "UPDATE", C3, C4),
        ],
    );
    let delivery = run(SERVER, &body).unwrap();
    let refs: Vec<&str> = push_of(&delivery)
        .1
        .iter()
        .map(|c| c.ref_name.as_str())
        .collect();
    assert_eq!(refs, ["refs/heads/main"]);
}

#[test]
fn server_ref_type_that_contradicts_the_ref_id_is_refused() {
    let body = server_body(
        "PLAT",
        "config",
        vec![server_change("refs/heads/v1", "TAG", "ADD", ZEROS, C1)],
    );
    let err = run(SERVER, &body).unwrap_err();
    assert_eq!(err.path(), Some("changes[0].ref.type"));
    assert_eq!(
        err.to_string(),
        "changes[0].ref.type is \"TAG\" but changes[0].ref.id \"refs/heads/v1\" is a branch"
    );
}

#[test]
fn server_update_to_all_zeros_is_refused_naming_the_field() {
    let body = server_body(
        "PLAT",
        "config",
        vec![
            server_change("refs/heads/main", "BRANCH", "UPDATE", C1, C2),
            server_change("refs/heads/dev", "BRANCH", "UPDATE", C1, ZEROS),
        ],
    );
    assert_eq!(
        error_message(SERVER, &body),
        "changes[1].toHash must name a commit for an UPDATE, not all zeros"
    );
}

#[test]
fn server_unknown_change_type_is_refused() {
    let body = server_body(
        "PLAT",
        "config",
        vec![server_change("refs/heads/main", "BRANCH", "MERGE", C1, C2)],
    );
    assert_eq!(
        error_message(SERVER, &body),
        "changes[0].type must be ADD, UPDATE or DELETE, not \"MERGE\""
    );
}

#[test]
fn server_short_ref_id_is_refused() {
    let body = server_body(
        "PLAT",
        "config",
        vec![server_change("main", "BRANCH", "UPDATE", C1, C2)],
    );
    let err = run(SERVER, &body).unwrap_err();
    assert_eq!(err.path(), Some("changes[0].ref.id"));
    assert!(err.to_string().contains("must be a full ref name"), "{err}");
}

#[test]
fn server_mirror_synchronisation_is_ignored_with_a_reason() {
    let headers = [
        ("X-Event-Key", "mirror:repo_synchronized"),
        ("X-Request-Id", "m-1"),
    ];
    let delivery = run(&headers, &json!({"eventKey": "mirror:repo_synchronized"})).unwrap();
    assert_eq!(delivery.format, None);
    assert_eq!(delivery.delivery_id.as_deref(), Some("m-1"));
    let DeliveryKind::Ignored { reason } = &delivery.kind else {
        panic!("expected Ignored, got {:?}", delivery.kind);
    };
    assert!(reason.contains("mirror:repo_synchronized"), "{reason}");
    assert!(reason.contains("repo:refs_changed"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// "Post Webhooks for Bitbucket" plugin

#[test]
fn plugin_push_with_create_update_delete_and_tag() {
    let body = json!({
        "actor": {"username": "admin", "displayName": "Administrator"},
        "repository": plugin_repository(),
        "push": {"changes": [
            {"created": true, "closed": false, "new": plugin_side("branch", "feature/new", C1), "old": null},
            {"created": false, "closed": false,
             "new": plugin_side("branch", "main", C5), "old": plugin_side("branch", "main", C6)},
            {"created": false, "closed": true, "new": null, "old": plugin_side("branch", "gone", C2)},
            {"created": true, "closed": false, "new": plugin_side("tag", "v3", C3), "old": null}
        ]}
    });
    let delivery = run(PLUGIN, &body).unwrap();

    assert_eq!(delivery.format, Some(WebhookFormat::PostWebhooks));
    assert_eq!(delivery.event, "repo:push");
    assert_eq!(delivery.delivery_id, None);
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository, &Repository::new("PLAT", "config"));
    assert_eq!(
        changes,
        [
            change(
                "refs/heads/feature/new",
                RefKind::Branch,
                ChangeKind::Create,
                None,
                Some(C1)
            ),
            change(
                "refs/heads/main",
                RefKind::Branch,
                ChangeKind::Update,
                Some(C6),
                Some(C5)
            ),
            change(
                "refs/heads/gone",
                RefKind::Branch,
                ChangeKind::Delete,
                Some(C2),
                None
            ),
            change(
                "refs/tags/v3",
                RefKind::Tag,
                ChangeKind::Create,
                None,
                Some(C3)
            ),
        ]
    );
}

#[test]
fn plugin_push_is_recognised_by_its_repository_without_x_bitbucket_type() {
    let body = json!({
        "repository": plugin_repository(),
        "push": {"changes": [{"created": false, "closed": false,
            "new": plugin_side("BRANCH", "main", C5), "old": plugin_side("BRANCH", "main", C6)}]}
    });
    let delivery = run(&[("X-Event-Key", "repo:push")], &body).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::PostWebhooks));
    assert_eq!(push_of(&delivery).0.full_name, "PLAT/config");
    assert_eq!(push_of(&delivery).1[0].change, ChangeKind::Update);
}

#[test]
fn old_plugin_body_without_push_reads_its_ref_changes() {
    let body = json!({
        "actor": {"username": "admin"},
        "repository": plugin_repository(),
        "refChanges": [
            {"refId": "refs/heads/main", "fromHash": C1, "toHash": C2, "type": "UPDATE"},
            {"refId": "refs/tags/v1", "fromHash": ZEROS, "toHash": C3, "type": "ADD"}
        ]
    });
    let delivery = run(PLUGIN, &body).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::PostWebhooks));
    assert_eq!(
        push_of(&delivery).1,
        [
            change(
                "refs/heads/main",
                RefKind::Branch,
                ChangeKind::Update,
                Some(C1),
                Some(C2)
            ),
            change(
                "refs/tags/v1",
                RefKind::Tag,
                ChangeKind::Create,
                None,
                Some(C3)
            ),
        ]
    );
}

#[test]
fn old_plugin_body_without_push_or_ref_changes_is_an_empty_push() {
    let body = json!({"actor": {"username": "admin"}, "repository": plugin_repository()});
    let delivery = run(PLUGIN, &body).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::PostWebhooks));
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository.full_name, "PLAT/config");
    assert!(changes.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Post-Receive hook (refChanges, no headers)

#[test]
fn post_receive_ref_changes_without_headers() {
    let body = json!({
        "repository": {
            "slug": "config",
            "id": 84,
            "name": "config",
            "scmId": "git",
            "state": "AVAILABLE",
            "project": {"key": "PLAT", "id": 84, "name": "Platform", "public": false, "type": "NORMAL"},
            "public": false
        },
        "refChanges": [
            {"refId": "refs/heads/main", "fromHash": C1, "toHash": C2, "type": "UPDATE"},
            {"refId": "refs/heads/topic", "fromHash": C3, "toHash": ZEROS, "type": "DELETE"},
            {"refId": "refs/tags/v9", "fromHash": ZEROS, "toHash": C4, "type": "ADD"}
        ],
        "changesets": {
            "size": 1, "limit": 100, "isLastPage": true, "start": 0,
            "values": [{"toCommit": {"id": C2, "displayId": "1e65c05"},
                        "changes": {"values": [{"path": {"toString": "Setup/a.yaml"}}]}}]
        }
    });
    let delivery = run(&[], &body).unwrap();

    assert_eq!(delivery.format, Some(WebhookFormat::PostReceive));
    assert_eq!(delivery.event, "repo:push");
    assert_eq!(delivery.delivery_id, None);
    let (repository, changes) = push_of(&delivery);
    assert_eq!(repository, &Repository::new("PLAT", "config"));
    assert_eq!(
        changes,
        [
            change(
                "refs/heads/main",
                RefKind::Branch,
                ChangeKind::Update,
                Some(C1),
                Some(C2)
            ),
            change(
                "refs/heads/topic",
                RefKind::Branch,
                ChangeKind::Delete,
                Some(C3),
                None
            ),
            change(
                "refs/tags/v9",
                RefKind::Tag,
                ChangeKind::Create,
                None,
                Some(C4)
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Pings and ignored events

#[test]
fn server_test_connection_is_a_ping() {
    let headers = [("X-Event-Key", "diagnostics:ping"), ("X-Request-Id", "p-1")];
    let delivery = run(&headers, &json!({"test": true})).unwrap();
    assert_eq!(
        delivery,
        Delivery {
            format: None,
            event: "diagnostics:ping".into(),
            delivery_id: Some("p-1".into()),
            kind: DeliveryKind::Ping,
        }
    );
}

#[test]
fn ping_named_by_its_header_needs_no_body() {
    let delivery = run_raw(&[("X-Event-Key", "diagnostics:ping")], b"").unwrap();
    assert_eq!(delivery.kind, DeliveryKind::Ping);
}

#[test]
fn test_body_without_headers_is_a_ping() {
    let delivery = run(&[], &json!({"test": true})).unwrap();
    assert_eq!(delivery.kind, DeliveryKind::Ping);
    assert_eq!(delivery.event, "diagnostics:ping");
    assert_eq!(delivery.format, None);
}

#[test]
fn cloud_pull_request_is_ignored_with_a_reason() {
    let headers = [
        ("X-Event-Key", "pullrequest:created"),
        ("X-Request-UUID", "pr-uuid"),
    ];
    let body = json!({"pullrequest": {"id": 7}, "repository": {"full_name": "acme/config"}});
    let delivery = run(&headers, &body).unwrap();
    assert_eq!(
        delivery,
        Delivery {
            format: None,
            event: "pullrequest:created".into(),
            delivery_id: Some("pr-uuid".into()),
            kind: DeliveryKind::Ignored {
                reason: "event pullrequest:created is not a push".into()
            },
        }
    );
}

#[test]
fn server_pull_request_named_only_in_the_body_is_ignored() {
    let body = json!({"eventKey": "pr:merged", "pullRequest": {"id": 3}});
    let delivery = run(&[], &body).unwrap();
    assert_eq!(delivery.event, "pr:merged");
    assert_eq!(
        delivery.kind,
        DeliveryKind::Ignored {
            reason: "event pr:merged is not a push".into()
        }
    );
}

#[test]
fn plugin_pull_request_is_ignored_even_with_a_body_that_is_not_json() {
    let headers = [("X-Event-Key", "pr:opened"), ("X-Bitbucket-Type", "server")];
    let delivery = run_raw(&headers, b"<html>").unwrap();
    assert!(matches!(delivery.kind, DeliveryKind::Ignored { .. }));
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies

#[test]
fn missing_commit_hash_is_reported_with_its_path() {
    let mut broken = cloud_change(
        cloud_side("branch", "dev", C1),
        cloud_side("branch", "dev", C2),
        false,
        false,
        false,
    );
    broken["new"]["target"]
        .as_object_mut()
        .unwrap()
        .remove("hash");
    let body = cloud_body(vec![
        cloud_change(
            cloud_side("branch", "main", C3),
            cloud_side("branch", "main", C4),
            false,
            false,
            false,
        ),
        broken,
    ]);
    let err = run(CLOUD, &body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "push.changes[1].new.target.hash is missing"
    );
    assert_eq!(err.path(), Some("push.changes[1].new.target.hash"));
    assert!(!err.is_not_json());
}

#[test]
fn commit_hash_that_is_not_a_full_commit_id_is_refused() {
    let body = cloud_body(vec![cloud_change(
        cloud_side("branch", "main", "709d658"),
        cloud_side("branch", "main", C2),
        false,
        false,
        false,
    )]);
    assert_eq!(
        error_message(CLOUD, &body),
        "push.changes[0].new.target.hash must be a full commit id (40 or 64 hex digits), \
         not \"709d658\""
    );
}

#[test]
fn flag_of_the_wrong_type_is_refused() {
    let mut body = cloud_body(vec![cloud_change(
        cloud_side("branch", "main", C1),
        cloud_side("branch", "main", C2),
        false,
        false,
        false,
    )]);
    body["push"]["changes"][0]["forced"] = json!("yes");
    assert_eq!(
        error_message(CLOUD, &body),
        "push.changes[0].forced must be true or false, not a string"
    );
}

#[test]
fn change_with_neither_new_nor_old_is_refused() {
    let body = cloud_body(vec![json!({"new": null, "old": null, "created": false})]);
    let err = run(CLOUD, &body).unwrap_err();
    assert_eq!(err.path(), Some("push.changes[0]"));
    assert!(err.to_string().contains("has neither new nor old"), "{err}");
}

#[test]
fn created_flag_on_a_deletion_is_refused() {
    let body = cloud_body(vec![cloud_change(
        Value::Null,
        cloud_side("branch", "main", C2),
        true,
        false,
        false,
    )]);
    assert_eq!(
        error_message(CLOUD, &body),
        "push.changes[0].created is true but new is null"
    );
}

#[test]
fn unknown_cloud_ref_type_is_refused() {
    let body = cloud_body(vec![cloud_change(
        cloud_side("commit", "main", C1),
        Value::Null,
        true,
        false,
        false,
    )]);
    assert_eq!(
        error_message(CLOUD, &body),
        "push.changes[0].new.type must be branch, tag, named_branch or bookmark, not \"commit\""
    );
}

#[test]
fn push_without_changes_list_is_refused() {
    let mut body = cloud_body(vec![]);
    body["push"] = json!({});
    assert_eq!(error_message(CLOUD, &body), "push.changes is missing");

    body["push"] = json!({"changes": {"0": {}}});
    assert_eq!(
        error_message(CLOUD, &body),
        "push.changes must be an array, not an object"
    );
}

#[test]
fn cloud_push_without_repository_is_refused() {
    let body = json!({"push": {"changes": []}});
    assert_eq!(error_message(CLOUD, &body), "repository is missing");
}

#[test]
fn cloud_full_name_without_a_slash_is_refused() {
    let mut body = cloud_body(vec![]);
    body["repository"]["full_name"] = json!("acme");
    assert_eq!(
        error_message(CLOUD, &body),
        "repository.full_name must be workspace/slug, not \"acme\""
    );
}

#[test]
fn server_repository_without_project_key_or_with_null_slug_is_refused() {
    let mut body = server_body("PLAT", "config", vec![]);
    body["repository"]["project"]
        .as_object_mut()
        .unwrap()
        .remove("key");
    assert_eq!(
        error_message(SERVER, &body),
        "repository.project.key is missing"
    );

    let mut body = server_body("PLAT", "config", vec![]);
    body["repository"]["slug"] = Value::Null;
    assert_eq!(error_message(SERVER, &body), "repository.slug is null");
}

#[test]
fn body_that_is_not_json_is_told_apart() {
    let err = run_raw(CLOUD, b"payload=%7B%22push%22%3A%7B%7D%7D").unwrap_err();
    assert!(err.is_not_json());
    assert!(err.to_string().starts_with("the body is not JSON"), "{err}");

    let err = run_raw(CLOUD, b"  \n").unwrap_err();
    assert!(err.is_not_json());
    assert_eq!(err.to_string(), "the body is not JSON (it is empty)");

    let err = run_raw(&[], &[0xff, 0xfe, 0x00]).unwrap_err();
    assert!(err.is_not_json());
}

#[test]
fn json_that_is_not_an_object_is_refused_but_is_json() {
    let err = run(CLOUD, &json!([{"push": {}}])).unwrap_err();
    assert_eq!(err, PayloadError::NotAnObject { found: "an array" });
    assert!(!err.is_not_json());
    assert_eq!(
        err.to_string(),
        "the body must be a JSON object, not an array"
    );

    let err = run(&[], &json!("repo:push")).unwrap_err();
    assert_eq!(err, PayloadError::NotAnObject { found: "a string" });
}

#[test]
fn body_of_no_known_shape_without_headers_is_unrecognised() {
    let err = run(&[], &json!({"hello": "world", "test": false})).unwrap_err();
    assert_eq!(err, PayloadError::Unrecognised);
    assert!(err.to_string().contains("X-Event-Key"), "{err}");
}

#[test]
fn utf8_byte_order_mark_is_tolerated() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(cloud_body(vec![]).to_string().as_bytes());
    let delivery = run_raw(CLOUD, &body).unwrap();
    assert_eq!(delivery.format, Some(WebhookFormat::Cloud));
}

// ---------------------------------------------------------------------------------------------
// Signatures

const SECRET: &[u8] = b"s3cret-webhook-key";

#[test]
fn signature_matches_the_published_hmac_sha256_test_vector() {
    // RFC 4231, test case 2.
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn signature_of_the_raw_body_verifies() {
    let body = br#"{"test": true}"#;
    let header = sign(SECRET, body);
    assert_eq!(verify_signature(SECRET, body, Some(&header)), Ok(()));
    // Upper-case hex and surrounding whitespace are still the same signature.
    let shouted = format!("  sha256={}  ", header["sha256=".len()..].to_uppercase());
    assert_eq!(verify_signature(SECRET, body, Some(&shouted)), Ok(()));
}

#[test]
fn signature_missing() {
    assert_eq!(
        verify_signature(SECRET, b"{}", None),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify_signature(SECRET, b"{}", Some("   ")),
        Err(SignatureError::Missing)
    );
}

#[test]
fn signature_malformed() {
    let good = sign(SECRET, b"{}");
    let hex = &good["sha256=".len()..];
    for header in [
        hex.to_owned(),                     // no algorithm
        format!("sha1={}", &hex[..40]),     // another algorithm
        format!("sha256={}", &hex[..63]),   // too short
        format!("sha256={hex}00"),          // too long
        format!("sha256={}zz", &hex[..62]), // not hex
        "sha256=".to_owned(),               // nothing after the prefix
        format!("sha256:{hex}"),            // wrong separator
    ] {
        assert_eq!(
            verify_signature(SECRET, b"{}", Some(&header)),
            Err(SignatureError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn signature_mismatch() {
    let body = br#"{"push": {"changes": []}}"#;
    let header = sign(SECRET, body);
    assert_eq!(
        verify_signature(b"another-secret", body, Some(&header)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(SECRET, br#"{"push": {"changes": [] }}"#, Some(&header)),
        Err(SignatureError::Mismatch)
    );
}

// ---------------------------------------------------------------------------------------------
// Clone URLs

#[test]
fn clone_urls_of_a_cloud_repository_match() {
    let repo = Repository::new("acme", "config");
    for url in [
        "https://bitbucket.org/acme/config.git",
        "https://bitbucket.org/acme/config",
        "https://bitbucket.org/acme/config/",
        "https://emma@bitbucket.org/acme/config.git",
        "git@bitbucket.org:acme/config.git",
        "git@bitbucket.org:acme/config",
        "ssh://git@bitbucket.org/acme/config.git",
        "https://Bitbucket.org/ACME/Config.GIT",
        "https://127.0.0.1:41234/acme/config.git",
    ] {
        assert!(repo.matches_clone_url(url), "{url}");
    }
}

#[test]
fn clone_urls_of_a_server_repository_match_whatever_the_case_of_the_key() {
    let repo = Repository::new("PLAT", "config");
    for url in [
        "ssh://git@bitbucket.example.com:7999/plat/config.git",
        "https://bitbucket.example.com/scm/plat/config.git",
        "https://bitbucket.example.com/bitbucket/scm/plat/config.git",
        "https://john@bitbucket.example.com:8443/scm/PLAT/config.git",
        "https://127.0.0.1:8443/PLAT/config.git",
    ] {
        assert!(repo.matches_clone_url(url), "{url}");
    }
}

#[test]
fn clone_urls_of_a_personal_server_repository_match() {
    let repo = Repository::new("~JOHN", "sandbox");
    for url in [
        "https://bitbucket.example.com/scm/~john/sandbox.git",
        "https://bitbucket.example.com/scm/%7Ejohn/sandbox.git",
        "ssh://git@bitbucket.example.com:7999/~john/sandbox.git",
    ] {
        assert!(repo.matches_clone_url(url), "{url}");
    }
    assert!(!repo.matches_clone_url("https://bitbucket.example.com/scm/john/sandbox.git"));
}

#[test]
fn clone_urls_of_other_repositories_do_not_match() {
    let repo = Repository::new("acme", "config");
    for url in [
        "https://bitbucket.org/other/config.git",      // other owner
        "https://bitbucket.org/acme/other.git",        // other slug
        "https://bitbucket.org/acme/config-old.git",   // slug prefix
        "https://bitbucket.org/acme/conf.git",         // slug is a prefix of ours
        "https://bitbucket.org/acme-ops/config.git",   // owner prefix
        "https://bitbucket.org/acme",                  // owner only
        "https://bitbucket.org/config.git",            // slug only
        "https://bitbucket.org/acme/config/src/main/", // a browse URL
        "/srv/git/acme/config.git",                    // a local path
        "acme/config",                                 // not a URL
        "",
    ] {
        assert!(!repo.matches_clone_url(url), "{url}");
    }
    let old = Repository::new("acme", "config-old");
    assert!(!old.matches_clone_url("https://bitbucket.org/acme/config.git"));
    assert!(old.matches_clone_url("https://bitbucket.org/acme/config-old.git"));
}

#[test]
fn slug_ending_in_dot_git_matches_with_or_without_the_suffix() {
    let repo = Repository::new("acme", "site.git");
    assert!(repo.matches_clone_url("https://bitbucket.org/acme/site.git"));
    assert!(repo.matches_clone_url("https://bitbucket.org/acme/site.git.git"));
    assert!(
        !Repository::new("acme", "site")
            .matches_clone_url("https://bitbucket.org/acme/site.git.git")
    );
}

#[test]
fn repository_from_a_delivery_is_matched_by_structured_fields_not_links() {
    // The Cloud body's links point at someone-else/elsewhere; identity comes from full_name.
    let delivery = run(CLOUD, &cloud_body(vec![])).unwrap();
    let (repository, _) = push_of(&delivery);
    assert!(repository.matches_clone_url("git@bitbucket.org:acme/config.git"));
    assert!(!repository.matches_clone_url("https://bitbucket.org/someone-else/elsewhere.git"));

    // The Server body's clone links say wrong/links; identity comes from project.key + slug.
    let body = server_body("PLAT", "config", vec![]);
    let delivery = run(SERVER, &body).unwrap();
    let (repository, _) = push_of(&delivery);
    assert!(repository.matches_clone_url("https://bitbucket.example.com/scm/plat/config.git"));
    assert!(!repository.matches_clone_url("https://bitbucket.example.com/scm/wrong/links.git"));
}

// ---------------------------------------------------------------------------------------------
// Wire format (what `reposync webhook inspect` prints)

#[test]
fn delivery_json_shape_is_frozen() {
    let body = server_body(
        "PLAT",
        "config",
        vec![
            server_change("refs/heads/main", "BRANCH", "UPDATE", C1, C2),
            server_change("refs/tags/v1", "TAG", "ADD", ZEROS, C3),
        ],
    );
    let delivery = run(SERVER, &body).unwrap();
    let printed = serde_json::to_value(&delivery).unwrap();
    assert_eq!(
        printed,
        json!({
            "format": "server_native",
            "event": "repo:refs_changed",
            "delivery_id": "d2ad7c7e-4b27-4c42-9a35-9b7f7a6e5f10",
            "kind": "push",
            "repository": {"owner": "PLAT", "slug": "config", "full_name": "PLAT/config"},
            "changes": [
                {"ref": "refs/heads/main", "kind": "branch", "change": "update", "old": C1, "new": C2},
                {"ref": "refs/tags/v1", "kind": "tag", "change": "create", "old": null, "new": C3}
            ]
        })
    );
    let back: Delivery = serde_json::from_value(printed).unwrap();
    assert_eq!(back, delivery);

    let ignored = run(&[("X-Event-Key", "pullrequest:updated")], &json!({})).unwrap();
    assert_eq!(
        serde_json::to_value(&ignored).unwrap(),
        json!({
            "format": null,
            "event": "pullrequest:updated",
            "delivery_id": null,
            "kind": "ignored",
            "reason": "event pullrequest:updated is not a push"
        })
    );
    let ping = run(
        &[("X-Event-Key", "diagnostics:ping")],
        &json!({"test": true}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&ping).unwrap(),
        json!({"format": null, "event": "diagnostics:ping", "delivery_id": null, "kind": "ping"})
    );
}

#[test]
fn forced_update_is_printed_as_force() {
    let body = cloud_body(vec![cloud_change(
        cloud_side("branch", "main", C1),
        cloud_side("branch", "main", C2),
        false,
        false,
        true,
    )]);
    let delivery = run(CLOUD, &body).unwrap();
    let printed = serde_json::to_value(&delivery).unwrap();
    assert_eq!(printed["format"], "cloud");
    assert_eq!(printed["changes"][0]["change"], "force");
    assert_eq!(printed["changes"][0]["kind"], "branch");
    assert_eq!(printed["changes"][0]["ref"], "refs/heads/main");
}

//! The examples of the OpenAPI document, one function per view, so that a view that holds
//! another (a saved connector holds the connector, the activity its changesets) shows the same
//! example of it. Tests check every one against its schema.

use serde_json::{Value, json};

/// An example of `VersionView`.
pub fn version() -> Value {
    json!({
        "version": "0.1.0",
        "git_commit": "5ebd373",
        "build_date": "2026-12-07",
        "schema_version": 12
    })
}

/// An example of `SecretView`.
pub fn secret() -> Value {
    json!({
        "name": "bb-token",
        "kind": "text",
        "used_by": [
            "Config"
        ],
        "created_at": "2026-11-25T10:00:00.123Z",
        "updated_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `SecretView`.
pub fn secret_2() -> Value {
    json!({
        "name": "deploy-key",
        "kind": "ssh_key",
        "ssh": {
            "username": "git",
            "algorithm": "ssh-ed25519",
            "fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGSh3d7xYMJahgvgIZhegQiM9AMv2eDxe5ZXE7PezNOs reposync:deploy-key"
        },
        "used_by": [],
        "created_at": "2026-11-25T10:00:00.123Z",
        "updated_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `ConnectorView`.
pub fn connector() -> Value {
    json!({
        "name": "Config",
        "provider": "bitbucket-cloud",
        "scope": "repo",
        "protocol": "https",
        "url": "https://bitbucket.org/acme/config.git",
        "username": "jdoe",
        "password_secret": "bb-token",
        "branch": "main",
        "selectors": [
            "eu"
        ],
        "generate_webhook_url": true,
        "webhook_url": "https://reposync.example.com/api/webhooks/git/q1Xx7Jk2Vb0cN4mR8sT6uW3yZ5aD9fG1",
        "author_name": "reposync",
        "author_email": "git-sync@reposync.invalid",
        "author_from_user": false,
        "last_test": test_result(),
        "created_at": "2026-11-25T10:00:00.123Z",
        "updated_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `ConnectorSaved`.
pub fn connector_saved() -> Value {
    json!({
        "connector": connector(),
        "webhook": {
            "url": "https://reposync.example.com/api/webhooks/git/q1Xx7Jk2Vb0cN4mR8sT6uW3yZ5aD9fG1",
            "secret": "7c1e0f3a9b2d4c6e8f0a1b3c5d7e9f11"
        }
    })
}

/// An example of `WebhookView`.
pub fn webhook() -> Value {
    json!({
        "url": "https://reposync.example.com/api/webhooks/git/q1Xx7Jk2Vb0cN4mR8sT6uW3yZ5aD9fG1",
        "secret": "7c1e0f3a9b2d4c6e8f0a1b3c5d7e9f11",
        "unauthenticated": unauthenticated()
    })
}

/// An example of `UnauthenticatedView`.
pub fn unauthenticated() -> Value {
    json!({
        "connector": "Config",
        "count": 2,
        "last_at": "2026-11-25T10:00:00.123Z",
        "last_reason": "the signature does not match"
    })
}

/// An example of `TestResult`.
pub fn test_result() -> Value {
    json!({
        "ok": true,
        "url": "https://bitbucket.org/acme/config.git",
        "branch": "main",
        "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "delegate": "builtin",
        "duration_ms": 412,
        "tested_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `TestResult`.
pub fn test_result_2() -> Value {
    json!({
        "ok": false,
        "url": "https://bitbucket.org/acme/config.git",
        "branch": "main",
        "code": "auth_failed",
        "message": "Bitbucket refused the credentials of jdoe",
        "delegate": "builtin",
        "duration_ms": 230,
        "tested_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `FetchRequest`.
pub fn fetch_request() -> Value {
    json!({
        "ref": "release/2026.11",
        "paths": ["deploy/manifests", "deploy/values.yaml"]
    })
}

/// An example of `TaskView`.
pub fn task() -> Value {
    json!({
        "id": "0193a6e2-7f00-7000-8000-000000000001",
        "kind": "test_connection",
        "status": "succeeded",
        "delegate": "builtin",
        "attempts": 1,
        "created_at": "2026-11-25T10:00:00.123Z",
        "queued_ms": 12,
        "finished_at": "2026-11-25T10:00:00.123Z",
        "result": test_result()
    })
}

/// An example of `TreeProblemView`.
pub fn tree_problem() -> Value {
    json!({
        "path": "Setup/Cloud Providers/eks-prod.yaml",
        "line": 2,
        "column": 7,
        "message": "unknown type WIDGET"
    })
}

/// An example of `ImportReport`.
pub fn import_report() -> Value {
    json!({
        "dry_run": false,
        "applied": true,
        "created": 3,
        "changed": 1,
        "unchanged": 12,
        "deleted": 0,
        "ignored": 0,
        "problems": []
    })
}

/// An example of `ExportResponse`.
pub fn export_response() -> Value {
    json!({
        "files": [
            {
                "path": "Setup/Cloud Providers/eks-prod.yaml",
                "content": "aGFybmVzc0FwaVZlcnNpb246ICcxLjAnCnR5cGU6IEtVQkVSTkVURVNfQ0xVU1RFUgo="
            }
        ]
    })
}

/// An example of `EntityView`.
pub fn entity() -> Value {
    json!({
        "path": "Setup/Cloud Providers/eks-prod.yaml",
        "kind": "KUBERNETES_CLUSTER",
        "content": "harnessApiVersion: '1.0'\ntype: KUBERNETES_CLUSTER\n",
        "revision": 2,
        "updated_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `AppView`.
pub fn app() -> Value {
    json!({
        "name": "Shop",
        "files": 9,
        "services": 2,
        "environments": 2,
        "workflows": 1,
        "pipelines": 1,
        "description": "The web shop",
        "sync": {
            "connector": "Config",
            "url": "https://bitbucket.org/acme/config.git",
            "branch": "main"
        }
    })
}

/// An example of `RefreshedBranch`.
pub fn refreshed_branch() -> Value {
    json!({
        "scopes": [
            "account",
            "app:Shop"
        ],
        "url": "https://bitbucket.org/acme/config.git",
        "branch": "main"
    })
}

/// An example of `SyncLinkView`.
pub fn sync_link() -> Value {
    json!({
        "id": "0193a6e2-7f00-7000-8000-0000000000b2",
        "scope": "app:Shop",
        "app": "Shop",
        "connector": "Config",
        "repo": null,
        "branch": "main",
        "url": "https://bitbucket.org/acme/config.git",
        "base_commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "waiting": 0,
        "errors": 0,
        "created_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `ChangesetView`.
pub fn changeset() -> Value {
    json!({
        "id": "0193a6e2-7f00-7000-8000-0000000000c5",
        "scope": "account",
        "status": "waiting",
        "files": [
            {
                "op": "MODIFY",
                "path": "Setup/Cloud Providers/eks-prod.yaml"
            }
        ],
        "attempt_id": null,
        "commit_id": null,
        "error": null,
        "created_at": "2026-11-25T10:00:00.123Z",
        "updated_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `CommitAttemptView`.
pub fn commit_attempt() -> Value {
    json!({
        "id": "0193a6e2-7f00-7000-8000-0000000000a7",
        "scope": "account",
        "status": "pushed",
        "delegate": "builtin",
        "changesets": [
            "0193a6e2-7f00-7000-8000-0000000000c4"
        ],
        "files": [
            {
                "op": "MODIFY",
                "path": "Setup/Cloud Providers/eks-prod.yaml"
            }
        ],
        "commit_id": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "error": null,
        "started_at": "2026-11-25T10:00:00.123Z",
        "finished_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `SyncActivity`.
pub fn sync_activity() -> Value {
    json!({
        "changesets": [
            changeset()
        ],
        "attempts": [
            commit_attempt()
        ],
        "inbound": [
            inbound_commit()
        ],
        "reads": [
            read()
        ]
    })
}

/// An example of `ReadView`: an incremental read that fell back to git.
pub fn read() -> Value {
    json!({
        "branch": "main",
        "kind": "incremental",
        "head": "1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c",
        "method": "git",
        "reason": "REST refused; git reads every platform",
        "fallback_from": "cloud-rest",
        "fallback_reason": "Bitbucket answered 429 Too Many Requests",
        "requests": 3,
        "bytes": 48213,
        "duration_ms": 1240,
        "read_at": "2026-11-25T10:00:00.123Z",
        "delegate": "builtin"
    })
}

/// An example of `InboundCommitView`.
pub fn inbound_commit() -> Value {
    json!({
        "commit_id": "1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c",
        "branch": "main",
        "status": "applied",
        "files": [
            {
                "op": "MODIFY",
                "path": "Setup/Cloud Providers/eks-prod.yaml"
            }
        ],
        "errors": 0,
        "author": "Jane Doe <jane@acme.example>",
        "subject": "Raise the shop's replica count",
        "applied_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `SyncErrorView`.
pub fn sync_error() -> Value {
    json!({
        "id": "0193a6e2-7f00-7000-8000-0000000000e3",
        "scope": "account",
        "attempt_id": null,
        "commit_id": "1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c",
        "path": "Setup/Cloud Providers/eks-prod.yaml",
        "code": "invalid_yaml",
        "message": "line 3: mapping values are not allowed here",
        "ours": null,
        "theirs": null,
        "created_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `DeliveryLog`.
pub fn delivery_log() -> Value {
    json!({
        "items": [
            {
                "id": "0193a6e2-7f00-7000-8000-0000000000d1",
                "connector": "Config",
                "received_at": "2026-11-25T10:00:00.123Z",
                "event": "repo:push",
                "delivery_id": "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
                "format": "cloud",
                "signature": "valid",
                "outcome": "queued",
                "reason": null,
                "matched": [
                    "app:Shop"
                ],
                "payload": {
                    "format": "cloud",
                    "event": "repo:push",
                    "repository": "acme/config",
                    "changes": [
                        {
                            "ref": "refs/heads/main",
                            "kind": "branch",
                            "new": "9fceb02d0ae598e95dc970b74767f19372d61af8"
                        }
                    ]
                }
            }
        ],
        "unauthenticated": [
            unauthenticated()
        ]
    })
}

/// An example of `DelegateView`.
pub fn delegate() -> Value {
    json!({
        "name": "eu-1",
        "selectors": [
            "eu",
            "eu-1"
        ],
        "version": "0.1.0",
        "hostname": "eu-1",
        "git_version": "2.47.0",
        "ssh_version": "OpenSSH_9.9p1",
        "token": "eu",
        "last_heartbeat": "2026-11-25T10:00:00.123Z",
        "connected": true,
        "tasks_run": 10,
        "tasks_succeeded": 9,
        "tasks_failed": 1
    })
}

/// An example of `DelegateTokenView`.
pub fn delegate_token() -> Value {
    json!({
        "name": "eu",
        "selectors": [
            "eu"
        ],
        "created_at": "2026-11-25T10:00:00.123Z",
        "revoked_at": null,
        "token": "rsd_Qm9yZWFsaXMtZXUtMS10b2tlbi12YWx1ZQ"
    })
}

/// An example of `UserView`.
pub fn user() -> Value {
    json!({
        "name": "alice",
        "email": "alice@example.com",
        "role": "editor",
        "apps": ["Shop"],
        "has_password": true,
        "disabled": false,
        "created_at": "2026-11-25T10:00:00.123Z"
    })
}

/// An example of `TokenView`.
pub fn user_token() -> Value {
    json!({
        "name": "laptop",
        "user": "alice",
        "role": null,
        "created_at": "2026-11-25T10:00:00.123Z",
        "expires_at": "2027-02-23T10:00:00.123Z",
        "last_used_at": "2026-11-26T08:12:44.051Z",
        "token": "rsp_bGFwdG9wLXRva2VuLW9mLWFsaWNlLWV4YW1wbGU"
    })
}

/// An example of `MeView`.
pub fn me() -> Value {
    json!({
        "user": "alice",
        "email": "alice@example.com",
        "role": "editor",
        "apps": ["Shop"],
        "token": "laptop"
    })
}

/// An example of `AuditEventView`.
pub fn audit_event() -> Value {
    json!({
        "id": "01936a2e-7b1c-7d4e-9f00-3c5e8a2b1d47",
        "at": "2026-11-25T10:00:00.123Z",
        "actor_kind": "user",
        "actor": "alice",
        "token": "laptop",
        "client_addr": "192.0.2.10",
        "use_case": "app.rename",
        "target": "Shop",
        "app": "Shop",
        "outcome": "refused",
        "status": 403,
        "detail": "needs editor in application Shop"
    })
}

/// An example of `PasswordLinkView`.
pub fn password_link() -> Value {
    json!({
        "user": "alice",
        "url": "https://reposync.example.com/set-password#rspw_b25lLXRpbWUtbGluay1mb3ItYWxpY2UtZXhhbXBsZQ",
        "expires_at": "2026-11-26T10:00:00.123Z"
    })
}

//! import, export, get and delete of the configuration tree through the real binary.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use std::path::{Path, PathBuf};

use common::TestApp;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reposync-model/tests/corpus")
}

/// Copies the corpus.
fn copy_tree(from: &Path, to: &Path) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copied.extend(copy_tree(&path, &target));
        } else {
            std::fs::copy(&path, &target).expect("copy");
            copied.push(target);
        }
    }
    copied
}

/// Writes `text` to `root/path`, creating the folders.
fn write_file(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
}

/// The secrets the corpus's Source Repo Providers name.
fn with_corpus_secrets(app: &TestApp) {
    app.cli(
        &["secret", "create", "platform-git-token", "--value-stdin"],
        Some("token-value-123456"),
    )
    .ok();
    let (key, _) = common::ssh_keygen(app.dir.path(), "legacy", &["-t", "ed25519"], "");
    app.cli(
        &[
            "secret",
            "create-ssh",
            "legacy-deploy-key",
            "--key-file",
            key.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
}

/// `import DIR` sends only `DIR/Setup`: a repository's other files (here more than the
/// server takes in one request) stay home, and a directory without `Setup/` is refused before
/// anything is sent.
#[test]
fn import_sends_only_setup_and_refuses_a_directory_without_it() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("repo");
    std::fs::create_dir_all(source.join("target")).expect("mkdir");
    std::fs::write(source.join("target/big.bin"), vec![0u8; 2 << 20]).expect("big file");
    let source_arg = source.to_str().expect("utf-8");
    let refused = app.cli(&["import", source_arg], None);
    assert!(
        refused.fails().stderr.contains("holds no Setup/ folder"),
        "{}",
        refused.stderr
    );

    std::fs::create_dir_all(source.join("Setup/Applications/Shop")).expect("mkdir");
    std::fs::write(
        source.join("Setup/Applications/Shop/Index.yaml"),
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    )
    .expect("write");
    app.cli(&["import", source_arg], None).ok();
    assert!(app.cli(&["app", "list"], None).ok().stdout.contains("Shop"));
}

#[test]
fn import_is_all_or_nothing_idempotent_and_export_gives_the_same_bytes_back() {
    let app = TestApp::spawn();
    with_corpus_secrets(&app);
    let source = app.dir.path().join("source");
    let files = copy_tree(&corpus(), &source);
    let source_arg = source.to_str().expect("utf-8");

    let dry = app.cli(&["--json", "import", source_arg, "--dry-run"], None);
    let report = dry.ok().json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["applied"], false);
    assert!(
        report["created"].as_u64().expect("created") > 40,
        "{report}"
    );
    let empty = app.dir.path().join("empty");
    app.cli(&["export", empty.to_str().expect("utf-8")], None)
        .ok();
    assert!(
        !empty.join("Setup/Applications").exists(),
        "a dry run writes nothing"
    );

    let first = app.cli(&["import", source_arg], None);
    assert!(
        first.ok().stderr.contains(" created, 0 changed"),
        "{}",
        first.stderr
    );
    let second = app.cli(&["import", source_arg], None);
    assert!(
        second.ok().stderr.starts_with("nothing to change"),
        "{}",
        second.stderr
    );

    let out = app.dir.path().join("exported");
    app.cli(&["export", out.to_str().expect("utf-8")], None)
        .ok();
    for file in &files {
        let relative = file.strip_prefix(&source).expect("inside source");
        let exported = std::fs::read(out.join(relative))
            .unwrap_or_else(|_| panic!("{} not exported", relative.display()));
        assert_eq!(
            exported,
            std::fs::read(file).expect("read"),
            "{} differs",
            relative.display()
        );
    }

    // The Source Repo Provider files became connectors, and came back byte for byte above.
    let connector = app.cli(&["--json", "connector", "show", "Platform Git"], None);
    let connector = connector.ok().json();
    assert_eq!(connector["scope"], "account", "{connector}");
    assert_eq!(connector["username"], "harness-sync", "{connector}");
    let provider_file = out.join("Setup/Source Repo Providers/Platform Git.yaml");
    let connector_file = std::fs::read_to_string(&provider_file).expect("connector file");
    assert!(
        connector_file.contains("password: safeharness:platform-git-token\n"),
        "{connector_file}"
    );
    assert!(
        !connector_file.contains("token-value-123456"),
        "never a secret value"
    );
    let shown = app.cli(
        &["get", "Setup/Source Repo Providers/Platform Git.yaml"],
        None,
    );
    assert_eq!(shown.ok().stdout, connector_file);
    let back = app.cli(&["import", out.to_str().expect("utf-8")], None);
    assert!(
        back.ok().stderr.starts_with("nothing to change"),
        "{}",
        back.stderr
    );

    // Changing the file changes the connector; a secret that does not exist is refused at
    // its line, and nothing changes.
    std::fs::write(
        &provider_file,
        connector_file.replace("username: harness-sync", "username: someone-else"),
    )
    .expect("edit");
    let changed = app.cli(&["--json", "import", out.to_str().expect("utf-8")], None);
    assert_eq!(changed.ok().json()["changed"], 1);
    let connector = app.cli(&["--json", "connector", "show", "Platform Git"], None);
    assert_eq!(connector.ok().json()["username"], "someone-else");
    std::fs::write(
        &provider_file,
        connector_file.replace("safeharness:platform-git-token", "reposync:nowhere"),
    )
    .expect("edit");
    let refused = app.cli(&["import", out.to_str().expect("utf-8")], None);
    assert!(
        refused.fails().stdout.contains(
            "Setup/Source Repo Providers/Platform Git.yaml:11:11: password: secret \"nowhere\" does not exist"
        ),
        "{}",
        refused.stdout
    );

    // Renaming the connector rewrites every file that names it.
    app.cli(
        &[
            "connector",
            "update",
            "Platform Git",
            "--name",
            "Platform Repo",
        ],
        None,
    )
    .ok();
    let index = app.cli(&["get", "Setup/Applications/Payments/Index.yaml"], None);
    assert!(
        index.ok().stdout.contains("gitConnector: Platform Repo\n"),
        "{}",
        index.stdout
    );
    let trigger = app.cli(
        &[
            "get",
            "Setup/Applications/Payments/Triggers/on git push.yaml",
        ],
        None,
    );
    assert!(
        trigger
            .ok()
            .stdout
            .contains("gitConnectorName: Platform Repo\n"),
        "{}",
        trigger.stdout
    );
    let renamed = app.cli(
        &["get", "Setup/Source Repo Providers/Platform Repo.yaml"],
        None,
    );
    assert!(
        renamed.ok().stdout.contains("username: someone-else\n"),
        "{}",
        renamed.stdout
    );

    let one_app = app.dir.path().join("payments");
    app.cli(
        &[
            "export",
            one_app.to_str().expect("utf-8"),
            "--app",
            "Payments",
        ],
        None,
    )
    .ok();
    assert!(
        one_app
            .join("Setup/Applications/Payments/Index.yaml")
            .exists()
    );
    assert!(
        !one_app.join("Setup/Cloud Providers").exists(),
        "only the application's files"
    );

    let run = app.cli(&["connector", "delete", "Platform Repo", "--yes"], None);
    assert!(
        run.fails()
            .stderr
            .contains("Setup/Applications/Payments/Index.yaml"),
        "an application names it: {}",
        run.stderr
    );

    let run = app.cli(
        &[
            "delete",
            "Setup/Source Repo Providers/Legacy SSH.yaml",
            "--yes",
        ],
        None,
    );
    run.ok();
    app.cli(&["connector", "show", "Legacy SSH"], None).fails();
}

#[test]
fn a_broken_tree_lists_every_failing_file_and_imports_nothing() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("source");
    let write = |path: &str, text: &str| write_file(&source, path, text);
    write(
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    write(
        "Setup/Applications/Shop/Services/cart/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: SERVICE\n",
    );
    write(
        "Setup/Applications/Shop/Workflows/bad.yaml",
        "harnessApiVersion: '1.0'\ntype: CANARY\nkey: 1\nkey: 2\n",
    );
    write(
        "Setup/Applications/Shop/Pipelines/p.yaml",
        "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  workflowName: nowhere\n",
    );
    let run = app.cli(&["import", source.to_str().expect("utf-8")], None);
    run.fails();
    assert!(
        run.stdout
            .contains("Setup/Applications/Shop/Workflows/bad.yaml:4:1: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Setup/Applications/Shop/Pipelines/p.yaml:5:17: pipelineStages[0].workflowName refers to workflow \"nowhere\""), "{}", run.stdout);
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
    let export = app.cli(
        &[
            "export",
            app.dir.path().join("out").to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(export.ok().stderr.contains("exported 0 files"));
}

#[test]
fn deleting_a_referenced_entity_is_refused_naming_the_referrers() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("source");
    let write = |path: &str, text: &str| write_file(&source, path, text);
    write(
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    write(
        "Setup/Applications/Shop/Workflows/w.yaml",
        "harnessApiVersion: '1.0'\ntype: BUILD\n",
    );
    write(
        "Setup/Applications/Shop/Pipelines/p.yaml",
        "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  workflowName: w\n",
    );
    app.cli(&["import", source.to_str().expect("utf-8")], None)
        .ok();
    let run = app.cli(
        &[
            "delete",
            "Setup/Applications/Shop/Workflows/w.yaml",
            "--yes",
        ],
        None,
    );
    assert!(
        run.fails()
            .stderr
            .contains("Setup/Applications/Shop/Pipelines/p.yaml"),
        "{}",
        run.stderr
    );
    app.cli(
        &[
            "delete",
            "Setup/Applications/Shop/Pipelines/p.yaml",
            "--yes",
        ],
        None,
    )
    .ok();
    app.cli(
        &[
            "delete",
            "Setup/Applications/Shop/Workflows/w.yaml",
            "--yes",
        ],
        None,
    )
    .ok();
    let run = app.cli(&["get", "Setup/Applications/Shop/Workflows/w.yaml"], None);
    assert!(
        run.fails().stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn applications_are_created_listed_renamed_and_deleted_with_their_folders() {
    let app = TestApp::spawn();
    app.cli(
        &[
            "app",
            "create",
            "Shop",
            "--description",
            "yes: the web shop",
        ],
        None,
    )
    .ok();
    let run = app.cli(&["app", "create", "Shop"], None);
    assert!(
        run.fails().stderr.contains("already exists"),
        "{}",
        run.stderr
    );
    let run = app.cli(&["app", "create", "bad/name"], None);
    assert!(run.fails().stderr.contains("name"), "{}", run.stderr);
    let index = app.cli(&["get", "Setup/Applications/Shop/Index.yaml"], None);
    assert_eq!(
        index.ok().stdout,
        "harnessApiVersion: '1.0'\ntype: APPLICATION\ndescription: 'yes: the web shop'\n"
    );
    let shown = app.cli(&["app", "show", "Shop"], None).ok().stdout.clone();
    assert!(
        shown.contains("Description   yes: the web shop")
            && shown.contains("Git Sync      not synced"),
        "{shown}"
    );

    // apply: create a service and a workflow that references it, then change the workflow.
    let file = app.dir.path().join("svc.yaml");
    std::fs::write(&file, "harnessApiVersion: '1.0'\ntype: SERVICE\n").expect("write");
    app.cli(
        &[
            "apply",
            "--path",
            "Setup/Applications/Shop/Services/cart/Index.yaml",
            "-f",
            file.to_str().expect("utf-8"),
        ],
        None,
    )
    .ok();
    let workflow = "Setup/Applications/Shop/Workflows/deploy.yaml";
    std::fs::write(
        &file,
        "harnessApiVersion: '1.0'\ntype: BUILD\nphases:\n- type: KUBERNETES\n  serviceName: nope\n",
    )
    .expect("write");
    let run = app.cli(
        &[
            "apply",
            "--path",
            workflow,
            "-f",
            file.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(
        run.fails()
            .stderr
            .contains("phases[0].serviceName refers to service \"nope\""),
        "{}",
        run.stderr
    );
    std::fs::write(
        &file,
        "harnessApiVersion: '1.0'\ntype: BUILD\nphases:\n- type: KUBERNETES\n  serviceName: cart\n",
    )
    .expect("write");
    let run = app.cli(
        &[
            "apply",
            "--path",
            workflow,
            "-f",
            file.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(run.ok().stderr.contains("created"), "{}", run.stderr);
    let run = app.cli(
        &[
            "apply",
            "--path",
            workflow,
            "-f",
            file.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(run.ok().stderr.contains("unchanged"), "{}", run.stderr);

    let list = app.cli(&["--json", "app", "list"], None);
    let items = list.ok().json()["items"].clone();
    assert_eq!(items[0]["name"], "Shop");
    assert_eq!(items[0]["services"], 1);
    assert_eq!(items[0]["workflows"], 1);

    app.cli(&["app", "rename", "Shop", "Store"], None).ok();
    assert!(
        app.cli(
            &["get", "Setup/Applications/Store/Workflows/deploy.yaml"],
            None
        )
        .ok()
        .stdout
        .contains("serviceName: cart")
    );
    app.cli(&["get", "Setup/Applications/Shop/Index.yaml"], None)
        .fails();

    app.cli(&["app", "delete", "Store", "--yes"], None).ok();
    let list = app.cli(&["--json", "app", "list"], None);
    assert_eq!(list.ok().json()["items"], serde_json::json!([]));
}

#[test]
fn renaming_a_service_or_environment_moves_its_folder_and_rewrites_references() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("source");
    let write = |path: &str, text: &str| write_file(&source, path, text);
    write(
        "Setup/Cloud Providers/k8s.yaml",
        "harnessApiVersion: '1.0'\ntype: KUBERNETES_CLUSTER\n",
    );
    write(
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    write(
        "Setup/Applications/Shop/Services/cart/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: SERVICE\n",
    );
    write(
        "Setup/Applications/Shop/Services/cart/Manifests/Files/values.yaml",
        "replicas: 2\n",
    );
    write(
        "Setup/Applications/Shop/Environments/qa/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: ENVIRONMENT\nenvironmentType: NON_PROD\n",
    );
    write(
        "Setup/Applications/Shop/Environments/qa/Infrastructure Definitions/eks.yaml",
        "harnessApiVersion: '1.0'\ntype: INFRA_DEFINITION\ninfrastructure:\n- type: DIRECT_KUBERNETES\n  cloudProviderName: k8s\n",
    );
    write(
        "Setup/Applications/Shop/Workflows/deploy.yaml",
        "harnessApiVersion: '1.0'\ntype: CANARY\nenvName: qa\nphases:\n- type: KUBERNETES\n  infraDefinitionName: eks\n  serviceName: cart\n",
    );
    app.cli(&["import", source.to_str().expect("utf-8")], None)
        .ok();

    app.cli(
        &[
            "rename",
            "Setup/Applications/Shop/Services/cart/Index.yaml",
            "basket",
        ],
        None,
    )
    .ok();
    let manifest = app.cli(
        &[
            "get",
            "Setup/Applications/Shop/Services/basket/Manifests/Files/values.yaml",
        ],
        None,
    );
    assert_eq!(manifest.ok().stdout, "replicas: 2\n", "the folder moved");
    app.cli(
        &["get", "Setup/Applications/Shop/Services/cart/Index.yaml"],
        None,
    )
    .fails();

    app.cli(
        &[
            "rename",
            "Setup/Applications/Shop/Environments/qa/Index.yaml",
            "staging",
        ],
        None,
    )
    .ok();
    let workflow = app.cli(
        &["get", "Setup/Applications/Shop/Workflows/deploy.yaml"],
        None,
    );
    assert_eq!(
        workflow.ok().stdout,
        "harnessApiVersion: '1.0'\ntype: CANARY\nenvName: staging\nphases:\n- type: KUBERNETES\n  infraDefinitionName: eks\n  serviceName: basket\n"
    );
    app.cli(
        &[
            "get",
            "Setup/Applications/Shop/Environments/staging/Infrastructure Definitions/eks.yaml",
        ],
        None,
    )
    .ok();

    app.cli(
        &["rename", "Setup/Cloud Providers/k8s.yaml", "prod k8s"],
        None,
    )
    .ok();
    let infra = app.cli(
        &[
            "get",
            "Setup/Applications/Shop/Environments/staging/Infrastructure Definitions/eks.yaml",
        ],
        None,
    );
    assert!(
        infra.ok().stdout.contains("cloudProviderName: prod k8s\n"),
        "{}",
        infra.stdout
    );
    // With everything renamed, the references still hold: deleting the cloud provider is refused.
    let run = app.cli(
        &["delete", "Setup/Cloud Providers/prod k8s.yaml", "--yes"],
        None,
    );
    assert!(run.fails().stderr.contains("eks.yaml"), "{}", run.stderr);
}

/// A Source Repo Provider as Harness wrote it for a repository on another secret manager,
/// without `branch:`.
const GCPKMS_CONNECTOR: &str = "harnessApiVersion: '1.0'\ntype: GIT\nkeyAuth: false\npassword: gcpkms:db-password\nproviderType: GIT\nurl: https://git.example.com/acme/config.git\nurlType: REPO\nusername: jdoe\n";

/// `import --map-secret-manager gcpkms` reads `gcpkms:db-password` as reposync's secret
/// `db-password`, which must exist; each mapping is reported, and the stored file names
/// `reposync:db-password`, so that whoever reads the tree next needs no option (issue 13).
#[test]
fn import_maps_another_secret_manager_reports_it_and_stores_reposyncs_reference() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("source");
    let source_arg = source.to_str().expect("utf-8");
    let path = "Setup/Source Repo Providers/Git.yaml";
    write_file(&source, path, GCPKMS_CONNECTOR);

    let refused = app.cli(&["import", source_arg], None);
    assert!(
        refused.fails().stdout.contains(
            "Setup/Source Repo Providers/Git.yaml:4:11: password: names a secret in secret manager \"gcpkms\";"
        ),
        "{}",
        refused.stdout
    );
    let missing = app.cli(
        &["import", source_arg, "--map-secret-manager", "gcpkms"],
        None,
    );
    assert!(
        missing.fails().stdout.contains(
            "Setup/Source Repo Providers/Git.yaml:4:11: password: secret \"db-password\" does not exist; create it first with `reposync secret create` (the file's gcpkms:db-password was read as reposync's secret \"db-password\" through --map-secret-manager)"
        ),
        "{}",
        missing.stdout
    );

    app.cli(
        &["secret", "create", "db-password", "--value-stdin"],
        Some("token-value-123456"),
    )
    .ok();
    let imported = app.cli(
        &["import", source_arg, "--map-secret-manager", "gcpkms"],
        None,
    );
    assert!(
        imported.ok().stderr.contains(
            "mapped: Setup/Source Repo Providers/Git.yaml:4: password: gcpkms:db-password is reposync's secret \"db-password\"\n"
        ),
        "{}",
        imported.stderr
    );
    assert!(imported.stderr.contains("1 created"), "{}", imported.stderr);
    let stored = app.cli(&["get", path], None);
    assert_eq!(
        stored.ok().stdout,
        GCPKMS_CONNECTOR.replace("gcpkms:db-password", "reposync:db-password")
    );

    // The API's answer carries the mapping and the warning about the branch.
    let again = app.cli(
        &[
            "--json",
            "import",
            source_arg,
            "--map-secret-manager",
            "gcpkms",
            "--dry-run",
        ],
        None,
    );
    let report = again.ok().json();
    assert_eq!(
        report["mapped_secrets"],
        serde_json::json!([{
            "path": path, "line": 4, "key": "password",
            "reference": "gcpkms:db-password", "secret": "db-password",
        }])
    );
    assert_eq!(report["warnings"][0]["path"], path);
    assert!(
        report["warnings"][0]["message"]
            .as_str()
            .expect("message")
            .starts_with(
                "branch: not set, so this connector follows the repository's default branch"
            )
    );
}

/// Unknown keys are kept and reported with their line and the key they may mean; names mixing
/// look-alike scripts are reported; neither stops the import, from a tree or one file
/// (issue 13).
#[test]
fn import_and_apply_warn_of_unknown_keys_and_mixed_script_names_and_keep_the_keys() {
    let app = TestApp::spawn();
    let source = app.dir.path().join("source");
    let source_arg = source.to_str().expect("utf-8");
    let index = "Setup/Applications/Shop/Index.yaml";
    let index_text =
        "harnessApiVersion: '1.0'\ntype: APPLICATION\nbranchNmae: main\ndescription: shop\n";
    write_file(&source, index, index_text);
    write_file(
        &source,
        "Setup/Applications/Shop/Services/c\u{0430}rt/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: SERVICE\n",
    );
    let imported = app.cli(&["import", source_arg], None);
    let warnings: Vec<&str> = imported
        .ok()
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: Setup/Applications/Shop/Index.yaml:3:1: unknown key branchNmae: reposync keeps it as written but does not read it; did you mean branchName?",
            "warning: Setup/Applications/Shop/Services/c\u{0430}rt/Index.yaml:1:1: the name \"c\u{0430}rt\" mixes Latin and Cyrillic letters ('\u{0430}', U+0430, is Cyrillic): it can pass for another name that looks the same; if that is not meant, type the name again in one script",
        ],
        "{}",
        imported.stderr
    );
    assert!(imported.stderr.contains("2 created"), "{}", imported.stderr);
    assert_eq!(app.cli(&["get", index], None).ok().stdout, index_text);

    // One file through `apply`: the API's answer holds the warning, and the CLI prints it.
    let file = app.dir.path().join("index.yaml");
    std::fs::write(&file, index_text.replace("description", "descripton")).expect("write");
    let applied = app.cli(
        &[
            "apply",
            "--path",
            index,
            "-f",
            file.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(
        applied.ok().stderr.contains(
            "warning: Setup/Applications/Shop/Index.yaml:4:1: unknown key descripton: reposync keeps it as written but does not read it; did you mean description?"
        ),
        "{}",
        applied.stderr
    );
    assert!(
        app.cli(&["get", index], None)
            .ok()
            .stdout
            .contains("descripton: shop\n")
    );

    // An application created through the API with a mixed-script name.
    let created = app.cli(&["app", "create", "T\u{043E}do"], None);
    assert!(
        created.ok().stderr.contains(
            "warning: Setup/Applications/T\u{043E}do/Index.yaml:1:1: the name \"T\u{043E}do\" mixes Latin and Cyrillic letters"
        ),
        "{}",
        created.stderr
    );
    let secret = app.cli(
        &["secret", "create", "t\u{03BF}ken", "--value-stdin"],
        Some("token-value-123456"),
    );
    assert!(
        secret.ok().stderr.contains(
            "warning: the name \"t\u{03BF}ken\" mixes Latin and Greek letters ('\u{03BF}', U+03BF, is Greek)"
        ),
        "{}",
        secret.stderr
    );
    let connector = app.cli(
        &[
            "connector",
            "add",
            "--name",
            "G\u{0456}t",
            "--url",
            "https://git.example.com/acme/config.git",
            "--username",
            "jdoe",
            "--password-secret",
            "t\u{03BF}ken",
            "--branch",
            "main",
            // git.example.com does not exist: only the name matters here.
            "--no-test",
        ],
        None,
    );
    assert!(
        connector.ok().stderr.contains(
            "warning: the name \"G\u{0456}t\" mixes Latin and Cyrillic letters ('\u{0456}', U+0456, is Cyrillic)"
        ),
        "{}",
        connector.stderr
    );
    // Renamed to a name in one script, there is nothing to say.
    let renamed = app.cli(
        &["connector", "update", "G\u{0456}t", "--name", "Git"],
        None,
    );
    assert!(
        !renamed.ok().stderr.contains("warning"),
        "{}",
        renamed.stderr
    );
    let renamed = app.cli(&["connector", "update", "Git", "--name", "\u{0421}I"], None);
    assert!(
        renamed.ok().stderr.contains(
            "warning: the name \"\u{0421}I\" mixes Cyrillic and Latin letters ('I', U+0049, is Latin)"
        ),
        "{}",
        renamed.stderr
    );
}

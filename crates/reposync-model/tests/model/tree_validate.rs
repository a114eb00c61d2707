//! The whole-tree checks (`reposync validate`) over the corpus and over broken trees.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use std::path::Path;

use reposync_model::validate::validate_tree;
use reposync_model::yaml::Limits;

fn corpus() -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("relative")
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read(&path).expect("read")));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

fn messages(files: &[(String, Vec<u8>)]) -> Vec<String> {
    validate_tree(files, &Limits::default())
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Paths that differ only in letter case within one folder are refused: on a
/// case-insensitive checkout they are one file, or one folder.
#[test]
fn names_that_differ_only_in_letter_case_are_refused() {
    let app = file(
        "Setup/Applications/Shop/Index.yaml",
        "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
    );
    let service = |path: &str| file(path, "harnessApiVersion: '1.0'\ntype: SERVICE\n");
    let case_problems = |files: &[(String, Vec<u8>)], elsewhere: &[&str]| -> Vec<String> {
        let elsewhere = elsewhere.iter().map(|p| (*p).to_owned()).collect();
        reposync_model::validate::validate_tree_with(files, &Limits::default(), &elsewhere)
            .problems
            .iter()
            .map(ToString::to_string)
            .filter(|m| m.contains("differs only in letter case"))
            .collect()
    };
    let files = [
        app.clone(),
        service("Setup/Applications/Shop/Services/Web/Index.yaml"),
        service("Setup/Applications/Shop/Services/web/Index.yaml"),
    ];
    let problems = case_problems(&files, &[]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("Setup/Applications/Shop/Services/web differs only in letter case from Setup/Applications/Shop/Services/Web"),
        "{problems:#?}"
    );
    // Against what exists already: the file that arrives is the one refused.
    let problems = case_problems(
        &[
            app.clone(),
            service("Setup/Applications/Shop/Services/API/Index.yaml"),
        ],
        &["Setup/Applications/Shop/Services/api/Index.yaml"],
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("Setup/Applications/Shop/Services/API/Index.yaml"),
        "{problems:#?}"
    );
    // The same spelling is no collision.
    assert!(case_problems(&[app], &["Setup/Applications/Shop/Index.yaml"]).is_empty());
}

#[test]
fn the_corpus_is_a_valid_tree() {
    let files = corpus();
    assert!(files.len() > 40, "corpus too small: {}", files.len());
    assert_eq!(messages(&files), Vec::<String>::new());
}

/// Harness's own files hold no key its format does not define: the corpus, taken from real
/// exports, raises no warning, so a warning is worth reading.
#[test]
fn the_corpus_raises_no_warning() {
    let report = validate_tree(&corpus(), &Limits::default());
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings, Vec::<String>::new());
}

/// Warnings name the file and line; they never make a tree fail.
#[test]
fn unknown_keys_and_mixed_script_names_are_warnings_with_file_and_line() {
    let files = [
        file(
            "Setup/Applications/T\u{043E}do/Index.yaml",
            "harnessApiVersion: '1.0'\ntype: APPLICATION\nbranchNme: main\n",
        ),
        file(
            "Setup/Applications/T\u{043E}do/Services/web/Index.yaml",
            "harnessApiVersion: '1.0'\ntype: SERVICE\n",
        ),
    ];
    let report = validate_tree(&files, &Limits::default());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "Setup/Applications/T\u{043E}do/Index.yaml:1:1: the name \"T\u{043E}do\" mixes Latin and Cyrillic letters ('\u{043E}', U+043E, is Cyrillic): it can pass for another name that looks the same; if that is not meant, type the name again in one script".to_owned(),
            "Setup/Applications/T\u{043E}do/Index.yaml:3:1: unknown key branchNme: reposync keeps it as written but does not read it; did you mean branchName?".to_owned(),
        ]
    );
}

fn file(path: &str, text: &str) -> (String, Vec<u8>) {
    (path.to_owned(), text.as_bytes().to_vec())
}

#[test]
fn a_broken_reference_names_what_is_missing_with_its_position() {
    let files = vec![
        file(
            "Setup/Applications/Shop/Index.yaml",
            "harnessApiVersion: '1.0'\ntype: APPLICATION\n",
        ),
        file(
            "Setup/Applications/Shop/Pipelines/Release.yaml",
            "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  name: deploy\n  workflowName: Deploy cart\n",
        ),
    ];
    assert_eq!(
        messages(&files),
        [
            "Setup/Applications/Shop/Pipelines/Release.yaml:6:17: pipelineStages[0].workflowName refers to workflow \"Deploy cart\", which is not in the tree (Setup/Applications/Shop/Workflows/Deploy cart.yaml)"
        ]
    );
}

#[test]
fn kind_rules_unknown_paths_yaml_errors_and_missing_parents_are_all_reported() {
    let files = vec![
        file(
            "Setup/Cloud Providers/k8s.yaml",
            "harnessApiVersion: '1.0'\ntype: KUBERNETES_CLUSTER\n",
        ),
        file(
            "Setup/Source Repo Providers/bb.yaml",
            "harnessApiVersion: '1.0'\ntype: GITHUB\nurl: https://x\n",
        ),
        file("Setup/Nonsense/x.yaml", "a: 1\n"),
        file(
            "Setup/Tags.yaml",
            "harnessApiVersion: '1.0'\ntype: TAG\ntype: TAG\n",
        ),
        file(
            "Setup/Applications/Ghost/Workflows/w.yaml",
            "harnessApiVersion: '1.0'\ntype: CANARY\n",
        ),
        file("README.md", "# not ours\n"),
        file(
            "Setup/Source Repo Providers/account.yaml",
            "harnessApiVersion: '1.0'\ntype: GIT\nkeyAuth: false\npassword: vault:x\nurl: https://bitbucket.org/acme\nurlType: ACCOUNT\nusername: u\n",
        ),
    ];
    let found = messages(&files);
    let expect = [
        "Setup/Source Repo Providers/bb.yaml:2:7: type \"GITHUB\" is not valid",
        "Setup/Nonsense/x.yaml:1:1: unknown path",
        "Setup/Tags.yaml:3:1:",
        "Setup/Applications/Ghost/Workflows/w.yaml:1:1: its application has no Setup/Applications/Ghost/Index.yaml",
        "Setup/Source Repo Providers/account.yaml:4:11: password: names a secret in secret manager \"vault\"",
    ];
    for expected in expect {
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn isolating_failures_keeps_what_does_not_depend_on_them() {
    use std::collections::HashSet;

    use reposync_model::validate::{isolate_failures, read_files};

    let app = "Setup/Applications/Shop";
    let file = |path: &str, text: &str| (format!("{app}/{path}"), text.as_bytes().to_vec());
    let files = vec![
        // A service whose YAML is broken…
        file(
            "Services/api/Index.yaml",
            "harnessApiVersion: '1.0'\ntype: [\n",
        ),
        // …a file in its folder, a workflow that names it, a pipeline that names the workflow.
        file("Services/api/Manifests/Files/values.yaml", "replicas: 2\n"),
        file(
            "Workflows/deploy api.yaml",
            "harnessApiVersion: '1.0'\ntype: BASIC\nphases:\n- type: KUBERNETES\n  serviceName: api\n",
        ),
        file(
            "Pipelines/release.yaml",
            "harnessApiVersion: '1.0'\ntype: PIPELINE\npipelineStages:\n- type: ENV_STATE\n  name: deploy\n  workflowName: deploy api\n",
        ),
        // Independent files, one relying on a service that exists outside the batch.
        file(
            "Services/web/Index.yaml",
            "harnessApiVersion: '1.0'\ntype: SERVICE\n",
        ),
        file(
            "Workflows/deploy cart.yaml",
            "harnessApiVersion: '1.0'\ntype: BASIC\nphases:\n- type: KUBERNETES\n  serviceName: cart\n",
        ),
    ];
    let elsewhere: HashSet<String> = [
        format!("{app}/Index.yaml"),
        format!("{app}/Services/cart/Index.yaml"),
    ]
    .into_iter()
    .collect();
    let mut report = read_files(&files, &Limits::default());
    isolate_failures(&mut report, &elsewhere);
    let mut kept: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        [
            format!("{app}/Services/web/Index.yaml").as_str(),
            format!("{app}/Workflows/deploy cart.yaml").as_str(),
        ]
    );
    let failed = |path: &str| {
        report
            .problems
            .iter()
            .filter(|p| p.path == format!("{app}/{path}"))
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(!failed("Services/api/Index.yaml").is_empty());
    assert!(
        failed("Services/api/Manifests/Files/values.yaml")
            .contains(&format!("{app}/Services/api/Index.yaml")),
        "{report:?}"
    );
    assert!(
        failed("Workflows/deploy api.yaml").contains("Services/api/Index.yaml"),
        "{report:?}"
    );
    assert!(
        failed("Pipelines/release.yaml").contains("Workflows/deploy api.yaml"),
        "a chain: {report:?}"
    );
}

mod paths_reposync_can_represent {
    use proptest::prelude::*;
    use reposync_model::tree::{PathClass, classify};
    use reposync_model::validate::validate_tree;
    use reposync_model::yaml::Limits;
    use reposync_model::{EntityName, PathProblem, RepoPath, escape_path};

    #[test]
    fn ordinary_paths_are_accepted_as_written() {
        for path in [
            "Setup/Applications/Shop/Index.yaml",
            "Setup/Template Library/Shared/Http Check.yaml",
            "Setup/Applications/Shop/Services/cart/Manifests/Files/.gitignore",
            "Setup/Governance/.git.yaml",
            "Setup/Governance/git/x.yaml",
            "Setup/Governance/.github/x.yaml",
            "Setup/Applications/été/Index.yaml",
            "README.md",
        ] {
            assert_eq!(
                RepoPath::parse(path).map(|p| p.into_string()),
                Ok(path.into())
            );
        }
    }

    #[test]
    fn each_shape_is_refused_with_its_reason() {
        let git = |c: &str| PathProblem::GitComponent {
            component: c.into(),
        };
        let dot = |c: &str| PathProblem::DotComponent {
            component: c.into(),
        };
        let cases: Vec<(&str, PathProblem)> = vec![
            ("", PathProblem::Empty),
            ("/Setup/a.yaml", PathProblem::EmptyComponent),
            ("Setup//a.yaml", PathProblem::EmptyComponent),
            ("Setup/a/", PathProblem::EmptyComponent),
            ("Setup/../a.yaml", dot("..")),
            ("Setup/./a.yaml", dot(".")),
            (".git/config", git(".git")),
            ("Setup/.GIT/x", git(".GIT")),
            ("Setup/.Git/x", git(".Git")),
            // What Windows and macOS read as `.git`.
            ("Setup/.git./x", git(".git.")),
            ("Setup/.git /x", git(".git ")),
            ("Setup/.git. . /x", git(".git. . ")),
            ("Setup/GIT~1/x", git("GIT~1")),
            (
                "Setup/.git::$INDEX_ALLOCATION/x",
                git(".git::$INDEX_ALLOCATION"),
            ),
            ("Setup/.g\u{200c}it/x", git(".g\u{200c}it")),
            ("Setup/\u{feff}.GIT/x", git("\u{feff}.GIT")),
            (
                "Setup/a\u{1}b.yaml",
                PathProblem::ControlCharacter { character: '\u{1}' },
            ),
            (
                "Setup/a\nb.yaml",
                PathProblem::ControlCharacter { character: '\n' },
            ),
            (
                "Setup/a\u{85}.yaml",
                PathProblem::ControlCharacter {
                    character: '\u{85}',
                },
            ),
            ("Setup\\a.yaml", PathProblem::Backslash),
        ];
        for (path, problem) in cases {
            assert_eq!(RepoPath::parse(path), Err(problem), "{path:?}");
        }
        assert_eq!(
            RepoPath::from_bytes(b"Setup/\xff.yaml"),
            Err(PathProblem::NotUtf8)
        );
        assert_eq!(
            PathProblem::NotUtf8.to_string(),
            "its name is not valid UTF-8"
        );
        assert!(
            git(".GIT").to_string().contains("`.GIT`"),
            "{}",
            git(".GIT")
        );
    }

    #[test]
    fn names_that_git_reads_as_its_own_folder_are_refused() {
        for name in [".git", ".GIT", "git~1", ".git.", ".git::$DATA"] {
            let error = EntityName::parse(name).expect_err(name);
            assert!(error.message.contains("not allowed"), "{name}: {error}");
        }
        assert!(EntityName::parse(".github").is_ok());
    }

    /// Names that deceive are refused wherever a path names an entity, so a file read from
    /// Git is refused as the API refuses the name.
    #[test]
    fn paths_naming_an_entity_with_a_bidirectional_or_invisible_character_are_refused() {
        for path in [
            "Setup/Applications/To\u{200B}do/Index.yaml",
            "Setup/Applications/Shop/Services/web\u{202E}lmay/Index.yaml",
            "Setup/Source Repo Providers/git\u{2066}.yaml",
        ] {
            let error = classify(path).expect_err(path);
            assert!(
                error.message.contains("bidirectional") || error.message.contains("invisible"),
                "{path:?}: {error}"
            );
        }
        assert!(classify("Setup/Applications/Todo/Index.yaml").is_ok());
    }

    #[test]
    fn classify_refuses_them_in_every_free_form_folder_and_ignores_the_outside() {
        let folders = [
            "Setup/Template Library",
            "Setup/Governance",
            "Setup/Applications/Shop/Template Library",
            "Setup/Applications/Shop/Services/cart/Config Files",
            "Setup/Applications/Shop/Services/cart/Values",
            "Setup/Applications/Shop/Services/cart/Manifests/Files",
            "Setup/Applications/Shop/Environments/prod/Values",
        ];
        for folder in folders {
            assert!(
                matches!(
                    classify(&format!("{folder}/ok/x.yaml")),
                    Ok(PathClass::Entity(_))
                ),
                "{folder}"
            );
            for component in [".git", ".GIT", "..", ".", "a\u{7f}b", "git~1"] {
                let path = format!("{folder}/{component}/x.yaml");
                let error = classify(&path).expect_err(&path);
                assert_eq!(error.field, escape_path(path.as_bytes()));
                assert!(
                    error
                        .message
                        .starts_with("not a path reposync can represent: "),
                    "{path:?}: {}",
                    error.message
                );
            }
        }
        // reposync neither reads nor writes outside `Setup/`.
        assert_eq!(classify(".git/config"), Ok(PathClass::Ignored));
        // A whole tree reports the path as a problem of that file.
        let report = validate_tree(
            &[("Setup/Governance/.GIT/x.yaml".into(), b"a: 1\n".to_vec())],
            &Limits::default(),
        );
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].path, "Setup/Governance/.GIT/x.yaml");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Escaping names every path apart: two different byte strings never look the same.
        #[test]
        fn escaping_is_one_to_one(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(escape_path(&a), escape_path(&b));
        }

        /// A path reposync can represent is its own escaped name, so its sync errors and those
        /// of entries it cannot represent never share a key.
        #[test]
        fn a_representable_path_escapes_to_itself(path in "[a-zA-Z0-9 ._\\-/\u{e9}\\\\\u{1}]{1,16}") {
            if let Ok(parsed) = RepoPath::parse(&path) {
                prop_assert_eq!(escape_path(parsed.as_str().as_bytes()), path);
            } else {
                let escaped = escape_path(path.as_bytes());
                prop_assert!(escaped == path || RepoPath::parse(&escaped).is_err());
            }
        }
    }
}

//! The Bitbucket REST emulator, Cloud and Data Center, checked over real HTTPS against a real
//! repository: a folder with a space, a link, an executable, a binary file, a submodule, a
//! branch named `feature/x`, and a `main` that moved on after the branch was cut.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reposync_testkit::{
    ApiAuth, ApiFault, ApiFlavour, BitbucketApi, BitbucketEmulator, RawEntry, RepoRoot, TestCa,
    WebhookFormat, WebhookTarget,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::{Value, json};

use crate::bitbucket::Receiver;

const REPO: &str = "acme/config.git";
const EMAIL: &str = "deploy@example.com";
const TOKEN: &str = "api-t0ken";
const ACCESS_TOKEN: &str = "access-t0ken";
const SUBMODULE: &str = "1111111111111111111111111111111111111111";
const README: &str = "# Setup\n\nEverything the pipelines need.\nOne line more.\n";

/// The commits of the test repository.
struct Commits {
    /// Where `feature/x` was cut from `main`.
    base: String,
    /// `feature/x`: adds `Setup/pipelines/deploy.yaml`, changes `aws.yaml`, then moves
    /// `Setup/README.md` to `Setup/docs.md`.
    feature: String,
    /// The first of the two feature commits.
    feature_work: String,
    /// `main` after it moved on: `config.yaml` says `replicas: 2`.
    main: String,
}

/// Builds the repository with `RepoRoot` and plumbing.
fn repository(root: &RepoRoot) -> Result<Commits> {
    root.create_repo(
        REPO,
        "main",
        &[
            ("config.yaml", "replicas: 1\n"),
            ("Setup/Cloud Providers/aws.yaml", "region: eu-west-1\n"),
            ("Setup/Cloud Providers/gcp.yaml", "region: europe-west4\n"),
            ("Setup/pipelines/build.yaml", "steps: []\n"),
            ("Setup/README.md", README),
        ],
    )?;
    root.commit_raw(
        REPO,
        "main",
        &[
            (
                b"Setup/link.yaml".as_slice(),
                RawEntry::Symlink("../config.yaml".into()),
            ),
            (
                b"Setup/logo.png".as_slice(),
                RawEntry::File(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
            ),
            (
                b"Setup/vendored".as_slice(),
                RawEntry::Submodule(SUBMODULE.into()),
            ),
        ],
        "Add a link, a picture and a submodule",
    )?;
    let base = commit_executable(root, "main", "Setup/run.sh", "#!/bin/sh\necho deploy\n")?;
    let repo = root.repo_path(REPO)?;
    root.git()
        .run(&repo, &["update-ref", "refs/heads/feature/x", &base])?;
    let feature_work = root.commit(
        REPO,
        "feature/x",
        &[
            ("Setup/pipelines/deploy.yaml", "steps: [deploy]\n"),
            ("Setup/Cloud Providers/aws.yaml", "region: us-east-1\n"),
        ],
        "Deploy from the feature",
    )?;
    let readme = root.read_file(REPO, "feature/x", "Setup/README.md")? + "\n";
    let feature = root.commit_raw(
        REPO,
        "feature/x",
        &[
            (b"Setup/README.md".as_slice(), RawEntry::Delete),
            (
                b"Setup/docs.md".as_slice(),
                RawEntry::File(readme.into_bytes()),
            ),
        ],
        "Rename the README",
    )?;
    let main = root.commit(
        REPO,
        "main",
        &[("config.yaml", "replicas: 2\n")],
        "Scale up",
    )?;
    Ok(Commits {
        base,
        feature,
        feature_work,
        main,
    })
}

/// Commits an executable file (mode 100755) on `branch` with plumbing, as `RepoRoot` only
/// writes regular files.
fn commit_executable(root: &RepoRoot, branch: &str, path: &str, content: &str) -> Result<String> {
    let repo = root.repo_path(REPO)?;
    let git = root.git();
    let parent = root.head(REPO, branch)?.context("the branch must exist")?;
    let scratch = tempfile::tempdir()?;
    let index = scratch.path().join("index");
    let env = [("GIT_INDEX_FILE", index.to_str().context("index path")?)];
    git.run_with_env(&repo, &["read-tree", &parent], &env)?;
    let blob = git.run_with_input(&repo, &["hash-object", "-w", "--stdin"], content.as_bytes())?;
    let blob = String::from_utf8(blob)?.trim().to_owned();
    let cacheinfo = format!("100755,{blob},{path}");
    git.run_with_env(
        &repo,
        &["update-index", "--add", "--cacheinfo", &cacheinfo],
        &env,
    )?;
    let tree = git.run_with_env(&repo, &["write-tree"], &env)?;
    let commit = git.run(
        &repo,
        &["commit-tree", &tree, "-p", &parent, "-m", "Add a script"],
    )?;
    git.run(
        &repo,
        &[
            "update-ref",
            &format!("refs/heads/{branch}"),
            &commit,
            &parent,
        ],
    )?;
    Ok(commit)
}

/// An API over the test repository and a client that trusts its CA.
struct Fixture {
    root: RepoRoot,
    commits: Commits,
    api: BitbucketApi,
    http: reqwest::Client,
}

impl Fixture {
    async fn start(flavour: ApiFlavour) -> Result<Self> {
        let root = RepoRoot::new()?;
        let commits = repository(&root)?;
        let ca = TestCa::new("bitbucket api test CA")?;
        let auth = ApiAuth {
            basic: Some((EMAIL.to_owned(), TOKEN.to_owned())),
            bearer: Some(ACCESS_TOKEN.to_owned()),
        };
        let api = BitbucketApi::start(&root, &ca, flavour, auth).await?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(api.ca_pem().as_bytes())?)
            .tls_built_in_root_certs(false)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            root,
            commits,
            api,
            http,
        })
    }

    async fn cloud() -> Result<Self> {
        Self::start(ApiFlavour::Cloud).await
    }

    async fn data_center() -> Result<Self> {
        Self::start(ApiFlavour::DataCenter {
            version: "8.19.1".into(),
            context: Some("bitbucket".into()),
        })
        .await
    }

    /// A URL below the REST base, or an absolute one (a `next` link).
    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.api.base_url())
        }
    }

    /// GET with the right Basic credentials.
    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        Ok(self
            .http
            .get(self.url(path))
            .basic_auth(EMAIL, Some(TOKEN))
            .send()
            .await?)
    }

    /// GET and parse the answer as JSON, whatever the status.
    async fn json(&self, path: &str) -> Result<(StatusCode, Value)> {
        let response = self.get(path).await?;
        let status = response.status();
        let text = response.text().await?;
        let value = serde_json::from_str(&text)
            .with_context(|| format!("GET {path} -> {status}: not JSON: {text}"))?;
        Ok((status, value))
    }

    /// GET, insisting on `200`.
    async fn ok_json(&self, path: &str) -> Result<Value> {
        let (status, value) = self.json(path).await?;
        ensure!(
            status == StatusCode::OK,
            "GET {path} -> {status}: {value}\n{}",
            self.api.log()
        );
        Ok(value)
    }

    /// GET bytes, insisting on `200`.
    async fn ok_bytes(&self, path: &str) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let response = self.get(path).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        ensure!(
            status == StatusCode::OK,
            "GET {path} -> {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok((headers, body))
    }

    /// `/repositories/acme/config` + `rest`, on Cloud.
    fn cloud_repo(rest: &str) -> String {
        format!("/repositories/acme/config{rest}")
    }

    /// `/projects/ACME/repos/config` + `rest`, on DC.
    fn dc_repo(rest: &str) -> String {
        format!("/projects/ACME/repos/config{rest}")
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: impl reqwest::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

fn strings(values: &Value, field: &str) -> Vec<String> {
    values
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|value| value[field].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Follows a Cloud listing's `next` links from `path`, returning every page.
async fn cloud_pages(fixture: &Fixture, path: &str) -> Result<Vec<Value>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(url) = next {
        let page = fixture.ok_json(&url).await?;
        next = page["next"].as_str().map(str::to_owned);
        pages.push(page);
        ensure!(pages.len() < 50, "paging does not end");
    }
    Ok(pages)
}

/// Follows a DC listing's `nextPageStart` from `path` (which has a query already).
async fn dc_pages(fixture: &Fixture, path: &str, field: &str) -> Result<Vec<Value>> {
    let mut pages = Vec::new();
    let mut start = 0;
    loop {
        let page = fixture.ok_json(&format!("{path}&start={start}")).await?;
        let page = if field.is_empty() {
            page
        } else {
            page[field].clone()
        };
        let last = page["isLastPage"].as_bool().context("isLastPage")?;
        pages.push(page.clone());
        if last {
            ensure!(
                page.get("nextPageStart").is_none(),
                "a last page with a next one"
            );
            return Ok(pages);
        }
        start = page["nextPageStart"].as_u64().context("nextPageStart")?;
        ensure!(pages.len() < 50, "paging does not end");
    }
}

// ---------------------------------------------------------------------------------------
// Cloud
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cloud_branch_with_a_slash_is_found_through_an_encoded_segment() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let commits = &fixture.commits;

    let branch = fixture
        .ok_json(&Fixture::cloud_repo("/refs/branches/feature%2Fx"))
        .await?;

    assert_eq!(branch["name"], "feature/x");
    assert_eq!(branch["type"], "branch");
    let target = &branch["target"];
    assert_eq!(target["hash"], commits.feature.as_str());
    assert_eq!(target["type"], "commit");
    assert_eq!(target["message"], "Rename the README\n");
    assert_eq!(
        target["author"]["raw"],
        "Reposync Test <reposync-test@example.invalid>"
    );
    assert_eq!(target["parents"][0]["hash"], commits.feature_work.as_str());
    assert_eq!(target["parents"][0]["type"], "commit");
    assert!(
        target["date"]
            .as_str()
            .unwrap_or_default()
            .ends_with("+00:00"),
        "{target}"
    );
    assert_eq!(target["repository"]["full_name"], "acme/config");
    let origin = fixture.api.origin();
    assert_eq!(
        branch["links"]["self"]["href"],
        format!("{origin}/2.0/repositories/acme/config/refs/branches/feature%2Fx")
    );
    assert!(
        target["links"]["self"]["href"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&origin)
    );

    let main = fixture
        .ok_json(&Fixture::cloud_repo("/refs/branches/main"))
        .await?;
    assert_eq!(main["target"]["hash"], commits.main.as_str());

    let (status, missing) = fixture
        .json(&Fixture::cloud_repo("/refs/branches/nope"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["type"], "error");
    assert!(missing["error"]["message"].is_string());

    let (status, no_repo) = fixture
        .json("/repositories/acme/x/refs/branches/main")
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(no_repo["error"]["message"], "Repository acme/x not found");
    Ok(())
}

#[tokio::test]
async fn cloud_commit_is_found_by_full_or_short_id_and_unknown_ones_are_404() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let main = &fixture.commits.main;

    let commit = fixture
        .ok_json(&Fixture::cloud_repo(&format!("/commit/{main}")))
        .await?;
    assert_eq!(commit["hash"], main.as_str());
    assert_eq!(commit["message"], "Scale up\n");
    assert_eq!(commit["parents"][0]["hash"], fixture.commits.base.as_str());

    let short = fixture
        .ok_json(&Fixture::cloud_repo(&format!("/commit/{}", &main[..12])))
        .await?;
    assert_eq!(short["hash"], main.as_str());

    let (status, missing) = fixture
        .json(&Fixture::cloud_repo("/commit/0123456789abcdef"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["type"], "error");
    Ok(())
}

#[tokio::test]
async fn cloud_src_lists_a_folder_page_by_page_through_opaque_next_links() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let main = &fixture.commits.main;

    let pages = cloud_pages(
        &fixture,
        &Fixture::cloud_repo(&format!("/src/{main}/Setup/?pagelen=3")),
    )
    .await?;

    assert_eq!(pages.len(), 3, "7 entries in pages of 3");
    let entries: Vec<Value> = pages
        .iter()
        .flat_map(|page| page["values"].as_array().cloned().unwrap_or_default())
        .collect();
    let paths: Vec<&str> = entries
        .iter()
        .map(|entry| entry["path"].as_str().unwrap_or_default())
        .collect();
    // Directories first, then files, each in git's order, named by their full path.
    assert_eq!(
        paths,
        [
            "Setup/Cloud Providers",
            "Setup/pipelines",
            "Setup/README.md",
            "Setup/link.yaml",
            "Setup/logo.png",
            "Setup/run.sh",
            "Setup/vendored",
        ]
    );
    for page in &pages {
        assert_eq!(page["pagelen"], 3);
    }
    assert!(pages[2].get("next").is_none());
    let next = pages[0]["next"].as_str().unwrap_or_default();
    let cursor = next.rsplit("page=").next().unwrap_or_default();
    assert!(
        !cursor.is_empty() && !cursor.bytes().all(|b| b.is_ascii_digit()),
        "the cursor must be opaque: {next}"
    );

    let by_path = |path: &str| {
        entries
            .iter()
            .find(|entry| entry["path"] == path)
            .cloned()
            .unwrap_or_default()
    };
    let folder = by_path("Setup/Cloud Providers");
    assert_eq!(folder["type"], "commit_directory");
    assert_eq!(folder["commit"]["hash"], main.as_str());
    let href = folder["links"]["self"]["href"].as_str().unwrap_or_default();
    assert!(href.ends_with("/Setup/Cloud%20Providers/"), "{href}");
    assert_eq!(
        by_path("Setup/link.yaml")["attributes"],
        serde_json::json!(["link"])
    );
    assert_eq!(
        by_path("Setup/run.sh")["attributes"],
        serde_json::json!(["executable"])
    );
    assert_eq!(
        by_path("Setup/logo.png")["attributes"],
        serde_json::json!(["binary"])
    );
    assert_eq!(by_path("Setup/logo.png")["mimetype"], "image/png");
    assert_eq!(
        by_path("Setup/vendored")["attributes"],
        serde_json::json!(["subrepository"])
    );
    let readme = by_path("Setup/README.md");
    assert_eq!(readme["type"], "commit_file");
    assert_eq!(readme["attributes"], serde_json::json!([]));
    assert_eq!(readme["size"], README.len());
    assert_eq!(readme["mimetype"], "text/markdown");

    // The folder with a space, addressed by its encoded name, without a trailing slash.
    let providers = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/src/{main}/Setup/Cloud%20Providers"
        )))
        .await?;
    assert_eq!(
        strings(&providers["values"], "path"),
        [
            "Setup/Cloud Providers/aws.yaml",
            "Setup/Cloud Providers/gcp.yaml"
        ]
    );
    assert_eq!(providers["values"][0]["mimetype"], Value::Null);
    assert!(providers.get("next").is_none());

    // A page number is not a cursor.
    let (status, refused) = fixture
        .json(&Fixture::cloud_repo(&format!("/src/{main}/Setup/?page=2")))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["message"], "Invalid page");
    Ok(())
}

#[tokio::test]
async fn cloud_src_max_depth_lists_breadth_first_and_times_out_when_too_deep() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let main = &fixture.commits.main;

    let root = fixture
        .ok_json(&Fixture::cloud_repo(&format!("/src/{main}/")))
        .await?;
    assert_eq!(strings(&root["values"], "path"), ["Setup", "config.yaml"]);

    let deep = cloud_pages(
        &fixture,
        &Fixture::cloud_repo(&format!("/src/{main}/?max_depth=3&pagelen=100")),
    )
    .await?;
    assert_eq!(deep.len(), 1);
    assert_eq!(
        strings(&deep[0]["values"], "path"),
        [
            "Setup",
            "config.yaml",
            "Setup/Cloud Providers",
            "Setup/pipelines",
            "Setup/README.md",
            "Setup/link.yaml",
            "Setup/logo.png",
            "Setup/run.sh",
            "Setup/vendored",
            "Setup/Cloud Providers/aws.yaml",
            "Setup/Cloud Providers/gcp.yaml",
            "Setup/pipelines/build.yaml",
        ]
    );

    let response = fixture
        .get(&Fixture::cloud_repo(&format!("/src/{main}/?max_depth=50")))
        .await?;
    assert_eq!(response.status().as_u16(), 555);
    let body: Value = response.json().await?;
    assert_eq!(body["type"], "error");
    Ok(())
}

#[tokio::test]
async fn cloud_src_serves_raw_files_and_metadata_but_not_branches_with_a_slash() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let main = &fixture.commits.main;

    let (headers, body) = fixture
        .ok_bytes(&Fixture::cloud_repo(&format!(
            "/src/{main}/Setup/Cloud%20Providers/aws.yaml"
        )))
        .await?;
    assert_eq!(body, b"region: eu-west-1\n");
    assert_eq!(header(&headers, &CONTENT_TYPE), "text/plain");
    assert_eq!(
        header(&headers, &CONTENT_DISPOSITION),
        "attachment; filename=\"aws.yaml\""
    );

    let (headers, picture) = fixture
        .ok_bytes(&Fixture::cloud_repo("/src/main/Setup/logo.png"))
        .await?;
    assert_eq!(picture, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    assert_eq!(header(&headers, &CONTENT_TYPE), "image/png");

    // A branch name without a slash works as the revision.
    let (_, config) = fixture
        .ok_bytes(&Fixture::cloud_repo("/src/main/config.yaml"))
        .await?;
    assert_eq!(config, b"replicas: 2\n");

    let meta = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/src/{main}/Setup/run.sh?format=meta"
        )))
        .await?;
    assert_eq!(meta["path"], "Setup/run.sh");
    assert_eq!(meta["type"], "commit_file");
    assert_eq!(meta["size"], 22);
    assert_eq!(meta["attributes"], serde_json::json!(["executable"]));
    assert_eq!(meta["commit"]["hash"], main.as_str());

    let (status, missing) = fixture
        .json(&Fixture::cloud_repo(&format!(
            "/src/{main}/Setup/nope.yaml"
        )))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["error"]["message"],
        "No such file or directory: Setup/nope.yaml"
    );

    // Cloud cannot address `feature/x` inside `src`, encoded or not.
    for path in [
        "/src/feature%2Fx/Setup/docs.md",
        "/src/feature/x/Setup/docs.md",
    ] {
        let (status, refused) = fixture.json(&Fixture::cloud_repo(path)).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(refused["type"], "error", "{path}");
    }
    // Resolved to its commit first, the branch's files are there.
    let (_, docs) = fixture
        .ok_bytes(&Fixture::cloud_repo(&format!(
            "/src/{}/Setup/docs.md",
            fixture.commits.feature
        )))
        .await?;
    assert!(docs.starts_with(b"# Setup"));
    Ok(())
}

#[tokio::test]
async fn cloud_diffstat_reads_new_dot_dot_old_and_defaults_to_the_merge_base() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let Commits {
        base,
        feature,
        main,
        ..
    } = &fixture.commits;
    let statuses = |page: &Value| -> BTreeSet<(String, String, String)> {
        page["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|value| {
                (
                    value["status"].as_str().unwrap_or_default().to_owned(),
                    value["old"]["path"].as_str().unwrap_or("-").to_owned(),
                    value["new"]["path"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect()
    };
    let set = |items: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        items
            .iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    };

    // new..old: what turns the base into the feature.
    let forward = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/diffstat/{feature}..{base}?topic=false"
        )))
        .await?;
    assert_eq!(
        statuses(&forward),
        set(&[
            ("added", "-", "Setup/pipelines/deploy.yaml"),
            (
                "modified",
                "Setup/Cloud Providers/aws.yaml",
                "Setup/Cloud Providers/aws.yaml"
            ),
            ("renamed", "Setup/README.md", "Setup/docs.md"),
        ])
    );
    assert_eq!(forward["size"], 3);
    assert_eq!(forward["pagelen"], 500);
    let added = forward["values"]
        .as_array()
        .and_then(|values| values.iter().find(|value| value["status"] == "added"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(added["type"], "diffstat");
    assert_eq!(added["old"], Value::Null);
    assert_eq!(added["lines_added"], 1);
    assert_eq!(added["lines_removed"], 0);
    let modified = forward["values"]
        .as_array()
        .and_then(|values| values.iter().find(|value| value["status"] == "modified"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            modified["lines_added"].as_u64(),
            modified["lines_removed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        modified["new"]["escaped_path"],
        "Setup/Cloud Providers/aws.yaml"
    );

    // The other way round, the same file is removed.
    let backward = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/diffstat/{base}..{feature}?topic=false"
        )))
        .await?;
    assert!(statuses(&backward).contains(&(
        "removed".to_owned(),
        "Setup/pipelines/deploy.yaml".to_owned(),
        "-".to_owned()
    )));

    // Against main, which moved on: without topic=false Cloud diffs from the merge base, so
    // main's own change does not show; with it, it does.
    let topic = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/diffstat/{feature}..{main}"
        )))
        .await?;
    assert_eq!(statuses(&topic), statuses(&forward));
    let plain = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/diffstat/{feature}..{main}?topic=false"
        )))
        .await?;
    assert!(statuses(&plain).contains(&(
        "modified".to_owned(),
        "config.yaml".to_owned(),
        "config.yaml".to_owned()
    )));
    assert_eq!(plain["size"], 4);

    // One commit: against its first parent.
    let single = fixture
        .ok_json(&Fixture::cloud_repo(&format!("/diffstat/{feature}")))
        .await?;
    assert_eq!(
        statuses(&single),
        set(&[("renamed", "Setup/README.md", "Setup/docs.md")])
    );

    // Numeric pages, with a next link.
    let first = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/diffstat/{feature}..{base}?topic=false&pagelen=2"
        )))
        .await?;
    assert_eq!(first["values"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().context("a next link")?;
    let second = fixture.ok_json(next).await?;
    assert_eq!(second["page"], 2);
    assert_eq!(second["values"].as_array().map(Vec::len), Some(1));
    assert!(second.get("next").is_none());
    Ok(())
}

#[tokio::test]
async fn cloud_post_src_commits_sends_a_webhook_and_refuses_a_stale_parent() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let old_tip = fixture.commits.main.clone();
    let emulator = BitbucketEmulator::start(&fixture.root).await?;
    let receiver = Receiver::start().await?;
    emulator.add_webhook(
        REPO,
        WebhookTarget::new(receiver.url(), WebhookFormat::Cloud),
    )?;

    let form = [
        ("message", "Add a provider"),
        ("author", "Ada Lovelace <ada@example.com>"),
        ("branch", "main"),
        ("parents", old_tip.as_str()),
        ("/Setup/Cloud Providers/azure.yaml", "region: westeurope\n"),
        ("files", "config.yaml"),
    ];
    let response = fixture
        .http
        .post(fixture.url(&Fixture::cloud_repo("/src")))
        .basic_auth(EMAIL, Some(TOKEN))
        .form(&form)
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        fixture.api.log()
    );
    let location = header(response.headers(), &LOCATION).to_owned();
    assert!(response.bytes().await?.is_empty());

    let new_tip = fixture.root.head(REPO, "main")?.context("main")?;
    assert_ne!(new_tip, old_tip);
    assert_eq!(
        location,
        format!(
            "{}/2.0/repositories/acme/config/commit/{new_tip}",
            fixture.api.origin()
        )
    );
    assert_eq!(
        fixture
            .root
            .read_file(REPO, "main", "Setup/Cloud Providers/azure.yaml")?,
        "region: westeurope"
    );
    assert!(
        fixture.root.read_file(REPO, "main", "config.yaml").is_err(),
        "config.yaml was listed in files without content, so it is deleted"
    );
    let repo = fixture.root.repo_path(REPO)?;
    let git = fixture.root.git();
    assert_eq!(
        git.run(
            &repo,
            &["log", "-1", "--format=%an <%ae>|%cn|%P|%B", &new_tip]
        )?,
        format!("Ada Lovelace <ada@example.com>|Ada Lovelace|{old_tip}|Add a provider")
    );
    // The rest of the tree is the parent's.
    assert_eq!(
        fixture.root.read_file(REPO, "main", "Setup/run.sh")?,
        "#!/bin/sh\necho deploy"
    );

    // The commit is announced like a push.
    emulator.wait_idle(Duration::from_secs(20)).await?;
    let deliveries = receiver.requests();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let payload: Value = serde_json::from_slice(&deliveries[0].body)?;
    let change = &payload["push"]["changes"][0];
    assert_eq!(change["new"]["target"]["hash"], new_tip.as_str());
    assert_eq!(change["old"]["target"]["hash"], old_tip.as_str());

    // Based on the old tip again: the branch has moved, so 409 and nothing changes.
    let stale = fixture
        .http
        .post(fixture.url(&Fixture::cloud_repo("/src")))
        .basic_auth(EMAIL, Some(TOKEN))
        .form(&[
            ("message", "Late edit"),
            ("branch", "main"),
            ("parents", old_tip.as_str()),
            ("config.yaml", "replicas: 9\n"),
        ])
        .send()
        .await?;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let body: Value = stale.json().await?;
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("moved")
    );
    assert_eq!(
        fixture.root.head(REPO, "main")?.as_deref(),
        Some(new_tip.as_str())
    );

    // A new branch from a parent, written as multipart with binary content.
    let boundary = "reposync-boundary";
    let mut body = Vec::new();
    for (name, value) in [
        ("branch", b"topic".as_slice()),
        ("parents", new_tip.as_bytes()),
        ("message", b"Binary".as_slice()),
        ("bin/blob.dat", b"\0\x01\r\n\x02".as_slice()),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let multipart = fixture
        .http
        .post(fixture.url(&Fixture::cloud_repo("/src")))
        .bearer_auth(ACCESS_TOKEN)
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await?;
    assert_eq!(
        multipart.status(),
        StatusCode::CREATED,
        "{}",
        fixture.api.log()
    );
    let topic = fixture
        .root
        .head(REPO, "topic")?
        .context("topic was created")?;
    let blob = git.run_with_input(
        &repo,
        &["cat-file", "blob", &format!("{topic}:bin/blob.dat")],
        b"",
    )?;
    assert_eq!(blob, b"\0\x01\r\n\x02");
    Ok(())
}

#[tokio::test]
async fn cloud_refuses_bad_credentials_with_plain_text_and_counts_every_request() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let path = fixture.url(&Fixture::cloud_repo("/refs/branches/main"));

    let anonymous = fixture.http.get(&path).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(header(anonymous.headers(), &CONTENT_TYPE).starts_with("text/plain"));
    let text = anonymous.text().await?;
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(text.contains("Login failed"), "{text}");

    let wrong = fixture
        .http
        .get(&path)
        .basic_auth(EMAIL, Some("wrong"))
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(header(wrong.headers(), &CONTENT_TYPE).starts_with("text/plain"));

    let bearer = fixture
        .http
        .get(&path)
        .bearer_auth(ACCESS_TOKEN)
        .send()
        .await?;
    assert_eq!(bearer.status(), StatusCode::OK);
    let bearer_len = bearer.bytes().await?.len();
    let bad_bearer = fixture.http.get(&path).bearer_auth("nope").send().await?;
    assert_eq!(bad_bearer.status(), StatusCode::UNAUTHORIZED);
    let bad_bearer_len = bad_bearer.bytes().await?.len();

    assert_eq!(fixture.api.requests(), 4);
    let log = fixture.api.log();
    assert_eq!(log.matches("-> 401").count(), 3, "{log}");
    logged(
        &fixture.api,
        &format!(
            "GET /2.0/repositories/acme/config/refs/branches/main -> 200 ({bearer_len} bytes)"
        ),
    )?;
    let sent = fixture.api.bytes_sent();
    assert!(
        sent >= u64::try_from(bearer_len + bad_bearer_len)?,
        "{sent}"
    );

    fixture.api.reset_counts();
    assert_eq!((fixture.api.requests(), fixture.api.bytes_sent()), (0, 0));
    let (_, raw) = fixture
        .ok_bytes(&Fixture::cloud_repo("/src/main/config.yaml"))
        .await?;
    assert_eq!(fixture.api.requests(), 1);
    assert_eq!(fixture.api.bytes_sent(), u64::try_from(raw.len())?);
    Ok(())
}

#[tokio::test]
async fn cloud_rate_limit_answers_429_in_plain_text_without_retry_after() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let path = Fixture::cloud_repo("/refs/branches/main");
    fixture.api.set_rate_limit(Some(2));
    fixture.api.set_rate_limit_headers(Some(1000), true);

    for _ in 0..2 {
        let response = fixture.get(&path).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(response.headers(), "x-ratelimit-limit"), "1000");
        assert_eq!(
            header(response.headers(), "x-ratelimit-resource"),
            "api-repo"
        );
        assert_eq!(header(response.headers(), "x-ratelimit-nearlimit"), "true");
    }
    let limited = fixture.get(&path).await?;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get(RETRY_AFTER).is_none());
    assert!(header(limited.headers(), &CONTENT_TYPE).starts_with("text/plain"));
    assert_eq!(
        limited.text().await?,
        "Rate limit for this resource has been exceeded"
    );

    fixture.api.set_rate_limit(None);
    fixture.api.set_rate_limit_headers(None, false);
    let free = fixture.get(&path).await?;
    assert_eq!(free.status(), StatusCode::OK);
    assert!(free.headers().get("x-ratelimit-limit").is_none());
    assert_eq!(fixture.api.requests(), 4);
    Ok(())
}

#[tokio::test]
async fn cloud_injected_faults_answer_repository_requests_in_order() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let path = Fixture::cloud_repo("/commit/main");
    fixture
        .api
        .inject(ApiFault::TooManyRequests { retry_after: None });
    fixture.api.inject(ApiFault::ServerError(503));
    fixture.api.inject(ApiFault::DropConnection);
    fixture.api.inject(ApiFault::TooManyRequests {
        retry_after: Some(7),
    });

    let first = fixture.get(&path).await?;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(first.headers().get(RETRY_AFTER).is_none());
    assert_eq!(
        first.text().await?,
        "Rate limit for this resource has been exceeded"
    );

    let (status, second) = fixture.json(&path).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second["type"], "error");

    let dropped = fixture.get(&path).await;
    assert!(
        dropped.is_err(),
        "the connection should close without an answer"
    );

    let fourth = fixture.get(&path).await?;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(fourth.headers(), &RETRY_AFTER), "7");

    let fifth = fixture.ok_json(&path).await?;
    assert_eq!(fifth["hash"], fixture.commits.main.as_str());
    assert!(
        fixture.api.log().contains("-> hangup"),
        "{}",
        fixture.api.log()
    );
    Ok(())
}

/// A fault meant for a write lets reads pass and answers the next write, which is not carried
/// out (409) or carried out without an answer.
#[tokio::test]
async fn cloud_faults_for_writes_wait_for_a_write() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let old_tip = fixture.commits.main.clone();
    fixture.api.inject(ApiFault::RefuseWrite(409));
    fixture.api.inject(ApiFault::DropAfterHandling);
    let read = fixture
        .ok_json(&Fixture::cloud_repo("/commit/main"))
        .await?;
    assert_eq!(read["hash"], old_tip.as_str(), "reads pass the faults by");

    let post = |parent: String| {
        let form = vec![
            ("message".to_owned(), "A write".to_owned()),
            ("branch".to_owned(), "main".to_owned()),
            ("parents".to_owned(), parent),
            ("Setup/x.yaml".to_owned(), "x: 1\n".to_owned()),
        ];
        fixture
            .http
            .post(fixture.url(&Fixture::cloud_repo("/src")))
            .basic_auth(EMAIL, Some(TOKEN))
            .form(&form)
            .send()
    };
    let refused = post(old_tip.clone()).await?;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        fixture.root.head(REPO, "main")?.as_deref(),
        Some(old_tip.as_str())
    );

    let lost = post(old_tip.clone()).await;
    assert!(lost.is_err(), "the answer never comes");
    let landed = fixture.root.head(REPO, "main")?.context("main")?;
    assert_ne!(landed, old_tip, "but the write landed");
    Ok(())
}

/// `fields=` keeps only the fields asked for, through lists, and `next` links keep it.
#[tokio::test]
async fn cloud_partial_responses_keep_only_the_fields_asked_for() -> Result<()> {
    let fixture = Fixture::cloud().await?;
    let branch = fixture
        .ok_json(&Fixture::cloud_repo(
            "/refs/branches/main?fields=target.hash",
        ))
        .await?;
    assert_eq!(
        branch,
        json!({"target": {"hash": fixture.commits.main.as_str()}})
    );
    let listing = fixture
        .ok_json(&Fixture::cloud_repo(&format!(
            "/src/{}/?pagelen=1&fields=values.path,values.type,next",
            fixture.commits.main
        )))
        .await?;
    let object = listing.as_object().context("an object")?;
    assert!(
        object.keys().all(|key| key == "values" || key == "next"),
        "{listing}"
    );
    let first = &listing["values"][0];
    assert!(
        first.get("path").is_some() && first.get("links").is_none(),
        "{first}"
    );
    assert!(
        listing["next"]
            .as_str()
            .context("next")?
            .contains("fields="),
        "{listing}"
    );
    let repository = fixture
        .ok_json(&Fixture::cloud_repo("?fields=size"))
        .await?;
    assert!(
        repository["size"].as_u64().is_some_and(|size| size > 0),
        "{repository}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Data Center
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dc_serves_under_its_context_and_application_properties_need_no_auth() -> Result<()> {
    let fixture = Fixture::data_center().await?;
    let base = fixture.api.base_url();
    assert_eq!(
        base,
        format!("{}/bitbucket/rest/api/1.0", fixture.api.origin())
    );

    let properties: Value = fixture
        .http
        .get(format!("{base}/application-properties"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(properties["version"], "8.19.1");
    assert_eq!(properties["buildNumber"], "8019001");
    assert_eq!(properties["displayName"], "Bitbucket");

    let refused = fixture
        .http
        .get(fixture.url(&Fixture::dc_repo("/branches")))
        .basic_auth(EMAIL, Some("wrong"))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await?;
    assert_eq!(
        body,
        serde_json::json!({"errors": [{
            "context": null,
            "message": "Authentication failed. Please check your credentials and try again.",
            "exceptionName": "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
        }]})
    );

    let (status, missing) = fixture.json("/projects/ACME/repos/nope/branches").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["errors"][0]["message"],
        "Repository ACME/nope does not exist."
    );
    assert_eq!(
        missing["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.repository.NoSuchRepositoryException"
    );

    // Without the context, nothing is there.
    let outside = fixture
        .http
        .get(format!(
            "{}/rest/api/1.0/application-properties",
            fixture.api.origin()
        ))
        .send()
        .await?;
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn dc_branches_and_commits_describe_the_repository() -> Result<()> {
    let fixture = Fixture::data_center().await?;
    let commits = &fixture.commits;

    let all = fixture.ok_json(&Fixture::dc_repo("/branches")).await?;
    assert_eq!(strings(&all["values"], "displayId"), ["feature/x", "main"]);
    let main = &all["values"][1];
    assert_eq!(main["id"], "refs/heads/main");
    assert_eq!(main["type"], "BRANCH");
    assert_eq!(main["latestCommit"], commits.main.as_str());
    assert_eq!(main["latestChangeset"], commits.main.as_str());
    assert_eq!(main["isDefault"], true);
    assert_eq!(all["values"][0]["isDefault"], false);
    assert_eq!(all["isLastPage"], true);
    assert_eq!(all["limit"], 25);

    let filtered = fixture
        .ok_json(&Fixture::dc_repo("/branches?filterText=FEATURE"))
        .await?;
    assert_eq!(strings(&filtered["values"], "id"), ["refs/heads/feature/x"]);

    let paged = dc_pages(&fixture, &Fixture::dc_repo("/branches?limit=1"), "").await?;
    assert_eq!(paged.len(), 2);
    assert_eq!(paged[0]["nextPageStart"], 1);

    let commit = fixture
        .ok_json(&Fixture::dc_repo("/commits/feature%2Fx"))
        .await?;
    assert_eq!(commit["id"], commits.feature.as_str());
    assert_eq!(commit["displayId"], &commits.feature[..11]);
    assert_eq!(commit["message"], "Rename the README");
    assert_eq!(
        commit["author"]["emailAddress"],
        "reposync-test@example.invalid"
    );
    assert_eq!(commit["parents"][0]["id"], commits.feature_work.as_str());
    let timestamp = commit["authorTimestamp"]
        .as_i64()
        .context("authorTimestamp")?;
    assert!(timestamp > 1_600_000_000_000, "milliseconds: {timestamp}");

    let by_id = fixture
        .ok_json(&Fixture::dc_repo(&format!("/commits/{}", commits.main)))
        .await?;
    assert_eq!(by_id["id"], commits.main.as_str());

    let (status, missing) = fixture
        .json(&Fixture::dc_repo("/commits/doesnotexist"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing,
        serde_json::json!({"errors": [{
            "context": null,
            "message": "Commit 'doesnotexist' does not exist in repository 'config'.",
            "exceptionName": "com.atlassian.bitbucket.commit.NoSuchCommitException",
        }]})
    );
    Ok(())
}

#[tokio::test]
async fn dc_files_lists_every_file_below_a_folder_relative_to_it() -> Result<()> {
    let fixture = Fixture::data_center().await?;

    let pages = dc_pages(
        &fixture,
        &Fixture::dc_repo("/files/Setup?at=refs/heads/main&limit=3"),
        "",
    )
    .await?;
    let files: Vec<String> = pages
        .iter()
        .flat_map(|page| {
            page["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|value| value.as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert_eq!(
        files,
        [
            "Cloud Providers/aws.yaml",
            "Cloud Providers/gcp.yaml",
            "README.md",
            "link.yaml",
            "logo.png",
            "pipelines/build.yaml",
            "run.sh",
        ]
    );
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["size"], 3);
    assert_eq!(pages[0]["limit"], 3);

    let providers = fixture
        .ok_json(&Fixture::dc_repo(
            "/files/Setup/Cloud%20Providers?at=feature/x",
        ))
        .await?;
    assert_eq!(
        providers["values"],
        serde_json::json!(["aws.yaml", "gcp.yaml"])
    );

    let (status, missing) = fixture
        .json(&Fixture::dc_repo("/files/Nope?at=main"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.content.NoSuchPathException"
    );
    Ok(())
}

#[tokio::test]
async fn dc_browse_and_raw_read_folders_and_files() -> Result<()> {
    let fixture = Fixture::data_center().await?;

    let folder = fixture
        .ok_json(&Fixture::dc_repo("/browse/Setup?at=main"))
        .await?;
    assert_eq!(folder["revision"], "main");
    assert_eq!(folder["path"]["toString"], "Setup");
    assert_eq!(folder["path"]["components"], serde_json::json!(["Setup"]));
    let children = folder["children"]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let described: Vec<(String, String)> = children
        .iter()
        .map(|child| {
            (
                child["path"]["toString"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                child["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(described.contains(&("Cloud Providers".to_owned(), "DIRECTORY".to_owned())));
    assert!(described.contains(&("README.md".to_owned(), "FILE".to_owned())));
    assert!(described.contains(&("vendored".to_owned(), "SUBMODULE".to_owned())));
    let readme = children
        .iter()
        .find(|child| child["path"]["name"] == "README.md")
        .context("README.md")?;
    assert_eq!(readme["size"], README.len());
    assert_eq!(readme["path"]["extension"], "md");
    assert!(
        readme["contentId"]
            .as_str()
            .is_some_and(|id| id.len() == 40)
    );

    let file = fixture
        .ok_json(&Fixture::dc_repo("/browse/Setup/README.md?at=main"))
        .await?;
    assert_eq!(
        file["lines"],
        serde_json::json!([
            {"text": "# Setup"},
            {"text": ""},
            {"text": "Everything the pipelines need."},
            {"text": "One line more."},
        ])
    );
    assert_eq!(file["isLastPage"], true);
    let part = fixture
        .ok_json(&Fixture::dc_repo("/browse/Setup/README.md?at=main&limit=2"))
        .await?;
    assert_eq!(part["size"], 2);
    assert_eq!(part["isLastPage"], false);
    assert_eq!(part["nextPageStart"], 2);

    let (headers, raw) = fixture
        .ok_bytes(&Fixture::dc_repo(
            "/raw/Setup/Cloud%20Providers/aws.yaml?at=refs%2Fheads%2Ffeature%2Fx",
        ))
        .await?;
    assert_eq!(raw, b"region: us-east-1\n");
    assert!(header(&headers, &CONTENT_TYPE).starts_with("text/plain"));
    // Without `at`, the default branch.
    let (_, config) = fixture
        .ok_bytes(&Fixture::dc_repo("/raw/config.yaml"))
        .await?;
    assert_eq!(config, b"replicas: 2\n");

    let (status, missing) = fixture
        .json(&Fixture::dc_repo("/raw/Setup/nope.yaml?at=main"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.content.NoSuchPathException"
    );
    Ok(())
}

/// The entries of a gzipped tar, listed by the system's `tar`.
fn tgz_entries(bytes: &[u8]) -> Result<BTreeSet<String>> {
    let mut child = Command::new("tar")
        .args(["-tzf", "-"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning tar")?;
    let mut stdin = child.stdin.take().context("tar stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    ensure!(output.status.success(), "tar -tz failed");
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

#[tokio::test]
async fn dc_archive_streams_only_the_paths_asked_for() -> Result<()> {
    let fixture = Fixture::data_center().await?;

    let (headers, tgz) = fixture
        .ok_bytes(&Fixture::dc_repo(
            "/archive?at=main&format=tgz&path=Setup/Cloud%20Providers&path=config.yaml",
        ))
        .await?;
    assert_eq!(header(&headers, &CONTENT_TYPE), "application/gzip");
    let files: BTreeSet<String> = tgz_entries(&tgz)?
        .into_iter()
        .filter(|entry| !entry.ends_with('/'))
        .collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "Setup/Cloud Providers/aws.yaml".to_owned(),
            "Setup/Cloud Providers/gcp.yaml".to_owned(),
            "config.yaml".to_owned(),
        ])
    );
    assert!(
        fixture
            .api
            .log()
            .contains(&format!("-> 200 ({} bytes)", tgz.len())),
        "{}",
        fixture.api.log()
    );

    // A plain tar with a prefix, read with the tar crate.
    let (_, plain) = fixture
        .ok_bytes(&Fixture::dc_repo(
            "/archive?at=feature%2Fx&format=tar&path=Setup/pipelines&prefix=snapshot",
        ))
        .await?;
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut contents = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        // git's pax header (the commit id) and directories are not files.
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        contents.push((path, text));
    }
    assert_eq!(
        contents,
        [
            (
                "snapshot/Setup/pipelines/build.yaml".to_owned(),
                "steps: []\n".to_owned()
            ),
            (
                "snapshot/Setup/pipelines/deploy.yaml".to_owned(),
                "steps: [deploy]\n".to_owned()
            ),
        ]
    );

    let (status, bad) = fixture
        .json(&Fixture::dc_repo("/archive?at=main&format=rar"))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["errors"][0]["message"].is_string());
    let (status, unknown) = fixture
        .json(&Fixture::dc_repo("/archive?at=0123456789abcdef&format=tgz"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.commit.NoSuchCommitException"
    );
    Ok(())
}

#[tokio::test]
async fn dc_archive_does_not_exist_before_5_1() -> Result<()> {
    let fixture = Fixture::start(ApiFlavour::DataCenter {
        version: "5.0.2".into(),
        context: None,
    })
    .await?;
    assert_eq!(
        fixture.api.base_url(),
        format!("{}/rest/api/1.0", fixture.api.origin())
    );
    let response = fixture
        .get(&Fixture::dc_repo("/archive?at=main&format=tgz"))
        .await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The rest of the API is there.
    fixture.ok_json(&Fixture::dc_repo("/commits/main")).await?;
    Ok(())
}

#[tokio::test]
async fn dc_changes_list_moves_and_stop_at_the_cap() -> Result<()> {
    let fixture = Fixture::data_center().await?;
    let Commits { base, feature, .. } = &fixture.commits;

    let changes = fixture
        .ok_json(&Fixture::dc_repo(&format!(
            "/changes?since={base}&until={feature}"
        )))
        .await?;
    assert_eq!(changes["fromHash"], base.as_str());
    assert_eq!(changes["toHash"], feature.as_str());
    assert_eq!(changes["isLastPage"], true);
    let values = changes["values"].as_array().cloned().unwrap_or_default();
    let described: BTreeSet<(String, String)> = values
        .iter()
        .map(|value| {
            (
                value["type"].as_str().unwrap_or_default().to_owned(),
                value["path"]["toString"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        described,
        BTreeSet::from([
            ("ADD".to_owned(), "Setup/pipelines/deploy.yaml".to_owned()),
            (
                "MODIFY".to_owned(),
                "Setup/Cloud Providers/aws.yaml".to_owned()
            ),
            ("MOVE".to_owned(), "Setup/docs.md".to_owned()),
        ])
    );
    let moved = values
        .iter()
        .find(|value| value["type"] == "MOVE")
        .context("a move")?;
    assert_eq!(moved["srcPath"]["toString"], "Setup/README.md");
    assert_eq!(moved["properties"]["gitChangeType"], "RENAME");
    assert_eq!(moved["nodeType"], "FILE");
    assert_eq!(moved["path"]["parent"], "Setup");
    assert_eq!(moved["path"]["extension"], "md");
    let added = values
        .iter()
        .find(|value| value["type"] == "ADD")
        .context("an add")?;
    assert!(added.get("srcPath").is_none());
    assert_eq!(added["percentUnchanged"], -1);
    assert_eq!(added["fromContentId"], "0".repeat(40));

    // Without `since`: the first parent of `until`.
    let last_commit = fixture
        .ok_json(&Fixture::dc_repo(&format!("/changes?until={feature}")))
        .await?;
    assert_eq!(
        last_commit["fromHash"],
        fixture.commits.feature_work.as_str()
    );
    assert_eq!(last_commit["values"].as_array().map(Vec::len), Some(1));

    // Eight new files with a cap of five: five are listed, and nothing lies past the cap.
    let many: Vec<(String, String)> = (0..8)
        .map(|n| (format!("Setup/bulk/file-{n}.yaml"), format!("n: {n}\n")))
        .collect();
    let many: Vec<(&str, &str)> = many
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    let main = fixture.commits.main.as_str();
    let bulk = fixture.root.commit(REPO, "main", &many, "Bulk")?;
    fixture.api.set_changes_cap(5);
    let capped = fixture
        .ok_json(&Fixture::dc_repo(&format!(
            "/changes?since={main}&until={bulk}&limit=100"
        )))
        .await?;
    assert_eq!(capped["size"], 5);
    assert_eq!(capped["limit"], 5);
    assert_eq!(capped["isLastPage"], false);
    assert_eq!(capped["nextPageStart"], 5);
    let beyond = fixture
        .ok_json(&Fixture::dc_repo(&format!(
            "/changes?since={main}&until={bulk}&start=5"
        )))
        .await?;
    assert_eq!(beyond["size"], 0);
    assert_eq!(beyond["isLastPage"], true);

    // Below the cap, pages are ordinary.
    let pages = dc_pages(
        &fixture,
        &Fixture::dc_repo(&format!("/changes?since={base}&until={feature}&limit=2")),
        "",
    )
    .await?;
    assert_eq!(pages.len(), 2);
    Ok(())
}

#[tokio::test]
async fn dc_personal_projects_map_to_tilde_owners() -> Result<()> {
    let fixture = Fixture::data_center().await?;
    let commit =
        fixture
            .root
            .create_repo("~alice/dotfiles.git", "main", &[("vimrc", "set nu\n")])?;
    let found = fixture
        .ok_json("/projects/~ALICE/repos/dotfiles/commits/main")
        .await?;
    assert_eq!(found["id"], commit.as_str());
    Ok(())
}

#[tokio::test]
async fn dc_rate_limit_and_faults_carry_retry_after_and_the_json_envelope() -> Result<()> {
    let fixture = Fixture::data_center().await?;
    let path = Fixture::dc_repo("/commits/main");

    fixture.api.inject(ApiFault::ServerError(500));
    fixture
        .api
        .inject(ApiFault::TooManyRequests { retry_after: None });
    fixture.api.inject(ApiFault::TooManyRequests {
        retry_after: Some(30),
    });
    // Faults are for repository endpoints: the version check does not take one.
    let properties = fixture.ok_json("/application-properties").await?;
    assert_eq!(properties["version"], "8.19.1");

    let (status, server_error) = fixture.json(&path).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(server_error["errors"][0]["message"].is_string());
    let bare = fixture.get(&path).await?;
    assert_eq!(bare.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(bare.headers().get(RETRY_AFTER).is_none());
    let timed = fixture.get(&path).await?;
    assert_eq!(timed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(timed.headers(), &RETRY_AFTER), "30");
    let envelope: Value = timed.json().await?;
    assert!(envelope["errors"][0]["message"].is_string());

    fixture.api.set_rate_limit(Some(1));
    fixture.ok_json(&path).await?;
    let limited = fixture.get(&path).await?;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(limited.headers(), &RETRY_AFTER), "1");
    let envelope: Value = limited.json().await?;
    assert!(envelope["errors"][0]["message"].is_string());
    // DC has no rate-limit headers of Cloud's kind.
    fixture.api.set_rate_limit_headers(Some(10), false);
    fixture.api.set_rate_limit(None);
    let free = fixture.get(&path).await?;
    assert_eq!(free.status(), StatusCode::OK);
    assert!(free.headers().get("x-ratelimit-limit").is_none());
    Ok(())
}

/// Checks that `line` is one of the log's lines.
fn logged(api: &BitbucketApi, line: &str) -> Result<()> {
    if !api.log().lines().any(|logged| logged == line) {
        bail!("{line:?} is not in the log:\n{}", api.log());
    }
    Ok(())
}

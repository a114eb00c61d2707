//! Commands that work on files alone, with no server: `fmt` and `validate`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use reposync_model::connector_yaml::MappedManagers;
use reposync_model::tree::ROOT;
use reposync_model::validate::validate_tree_mapped;
use reposync_model::yaml::{Limits, emit, order_top_level, parse};
use reposync_model::{EntityName, connector_yaml};

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing; exit non-zero listing the files that would change.
    #[arg(long)]
    check: bool,
    /// YAML files or directories (searched for *.yaml).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The repository root (holding `Setup/`), or the `Setup` folder itself.
    dir: PathBuf,
    /// A Source Repo Provider that exists outside this tree, so references to it resolve: for
    /// a repository that holds applications only (repeatable).
    #[arg(long = "known-connector", value_name = "NAME")]
    known_connectors: Vec<String>,
    /// Take every connector the server holds as existing (asks the server; needs its token).
    #[arg(long)]
    connectors_from_server: bool,
    /// Read secret references of another Harness secret manager (`gcpkms:NAME`) as reposync's
    /// secret NAME, as `import --map-secret-manager` will (repeatable).
    #[arg(long = "map-secret-manager", value_name = "MANAGER")]
    map_secret_managers: Vec<String>,
}

/// Rewrites YAML files in the canonical format, the way `cargo fmt` does: Harness's scalar
/// styles, indentation and layout, with the top-level keys in Harness's order. Nested maps keep
/// their order, since Harness itself wrote some of them unsorted.
pub fn fmt(args: FmtArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect(path, path, &mut found)?;
            // Shown as the user would write them: the directory given, then the file below it.
            files.extend(found.into_iter().map(|(file, relative)| {
                let shown = path.join(&relative).display().to_string();
                (file, shown)
            }));
        } else {
            files.push((path.clone(), path.display().to_string()));
        }
    }
    let mut failed = false;
    let mut would_change = Vec::new();
    for (file, shown) in files {
        // Manifest files are the user's own text (templates, values), not Harness YAML.
        if !shown.ends_with(".yaml") || shown.contains("/Manifests/Files/") {
            continue;
        }
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {shown}"))?;
        let mut document = match parse(&bytes, &limits) {
            Ok(document) => document,
            Err(error) => {
                eprintln!("{shown}:{}:{}: {}", error.line, error.column, error.kind);
                failed = true;
                continue;
            }
        };
        order_top_level(&mut document);
        let formatted = emit(&document);
        if formatted.as_bytes() == bytes.as_slice() {
            continue;
        }
        if args.check {
            would_change.push(shown);
        } else {
            write_atomically(&file, formatted.as_bytes())
                .with_context(|| format!("cannot write {shown}"))?;
            outln!("formatted {shown}");
        }
    }
    if !would_change.is_empty() {
        eprintln!(
            "{} file(s) are not in the canonical format:",
            would_change.len()
        );
        for file in &would_change {
            outln!("{file}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks a tree offline (or with the server's connectors known) and prints one line per
/// problem.
pub async fn validate(args: ValidateArgs, globals: &crate::Globals) -> anyhow::Result<ExitCode> {
    let files = read_tree(&args.dir)?;
    let mut known = args.known_connectors.clone();
    if args.connectors_from_server {
        let listed: reposync_api::ListResponse<reposync_api::ConnectorView> = reposync_api::decode(
            crate::client_commands::client(globals)?
                .get(&["connectors"], &[], std::time::Duration::from_secs(30))
                .await
                .context("--connectors-from-server")?,
        )?;
        known.extend(listed.items.into_iter().map(|c| c.name));
    }
    let elsewhere = known
        .iter()
        .map(|name| {
            EntityName::parse(name)
                .map(|name| connector_yaml::path(&name))
                .map_err(|e| anyhow::anyhow!("--known-connector {name:?}: {}", e.message))
        })
        .collect::<anyhow::Result<HashSet<String>>>()?;
    let mapped = MappedManagers::parse(&args.map_secret_managers, "--map-secret-manager")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = validate_tree_mapped(&files, &Limits::default(), &elsewhere, &mapped);
    for problem in &report.problems {
        outln!("{problem}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for mapping in &report.mapped {
        eprintln!(
            "{}",
            mapped_line(
                &mapping.path,
                mapping.line,
                &mapping.key,
                &mapping.reference,
                &mapping.secret
            )
        );
    }
    let warnings = match report.warnings.len() {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    };
    if report.problems.is_empty() {
        eprintln!(
            "{} files checked, no problems{warnings}",
            report.files.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} problem(s) in {} files{warnings}",
            report.problems.len(),
            report.files.len() + report.ignored.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// How a secret reference read through `--map-secret-manager` is reported, by `validate` and
/// `import` alike.
pub fn mapped_line(path: &str, line: usize, key: &str, reference: &str, secret: &str) -> String {
    format!(
        "mapped: {path}:{}: {key}: {reference} is reposync's secret {secret:?}",
        line.max(1)
    )
}

/// Every file of a tree's `Setup/` folder with its path from the repository root (`Setup/…`),
/// whether `root` is the repository root or the `Setup` folder itself. Nothing else is read:
/// a repository's README, binaries or build output are not the tree's business, and a
/// directory without a `Setup` folder is refused before anything is read or sent.
pub fn read_tree(root: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let is_setup = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n == ROOT))
        .unwrap_or(false);
    let setup = if is_setup {
        root.to_owned()
    } else {
        root.join(ROOT)
    };
    if !setup.is_dir() {
        bail!(
            "{} holds no {ROOT}/ folder: give the repository root that holds {ROOT}/, or the {ROOT} folder itself",
            root.display()
        );
    }
    let mut found = Vec::new();
    collect(&setup, &setup, &mut found)?;
    let mut files = Vec::with_capacity(found.len());
    for (file, relative) in found {
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        files.push((format!("{ROOT}/{relative}"), bytes));
    }
    Ok(files)
}

/// Every file under `dir`, with its path relative to `root` (`/`-separated), sorted; `.git`
/// is skipped.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((path, relative));
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

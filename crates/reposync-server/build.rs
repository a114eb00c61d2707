//! Records what the binary was built from, for `GET /api/v1/version`: the git commit of the
//! checkout (read from `.git` directly, without running git) and the build date
//! (`SOURCE_DATE_EPOCH` when set, for reproducible builds).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let checkout = Path::new(&manifest).join("../..");
    let commit = git_dir(&checkout)
        .and_then(|dir| {
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            head_commit(&dir)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=REPOSYNC_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        });
    println!("cargo:rustc-env=REPOSYNC_BUILD_DATE={}", date(seconds));
}

/// The git directory of a checkout: `.git`, or where a worktree's `.git` file points.
fn git_dir(checkout: &Path) -> Option<PathBuf> {
    let dot_git = checkout.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    Some(checkout.join(target))
}

/// The commit `HEAD` names, following one symbolic ref through loose or packed refs.
fn head_commit(git_dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let Some(reference) = head.trim().strip_prefix("ref:").map(str::trim) else {
        return full_id(head.trim());
    };
    // A worktree keeps its refs in the common directory.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|_| git_dir.to_owned());
    for dir in [git_dir, common.as_path()] {
        let loose = dir.join(reference);
        if loose.is_file() {
            println!("cargo:rerun-if-changed={}", loose.display());
            return full_id(std::fs::read_to_string(loose).ok()?.trim());
        }
    }
    let packed = common.join("packed-refs");
    println!("cargo:rerun-if-changed={}", packed.display());
    std::fs::read_to_string(packed)
        .ok()?
        .lines()
        .find_map(|line| {
            let (id, name) = line.split_once(' ')?;
            (name == reference).then(|| full_id(id)).flatten()
        })
}

fn full_id(text: &str) -> Option<String> {
    (matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_owned())
}

/// `YYYY-MM-DD` of a Unix time, in UTC (the civil-from-days algorithm).
fn date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

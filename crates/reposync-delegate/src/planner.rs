//! The fetch planner: for every read of a branch, the cheapest correct method whose worst case
//! is bounded and whose budget allows it.
//!
//! The choice is made in two steps. [`choose`] picks a method from what is known before any
//! request (the connector's `--fetch`, whether REST can be used at all, what its last Test
//! found the server can do); this module is pure, so every rule is tested here. The REST reads
//! then check the budget against what they find (a listing's size, a range's commits) through
//! [`Allowance`], and refuse before they spend more; any refusal falls back to git, and the
//! report says why.

use std::fmt;

use reposync_api::{ReadPlanning, RestTarget};
use reposync_model::{FetchMode, RestPlatform};

/// The largest share of a credential's remaining hourly budget one read may take when the
/// planner chooses freely: REST must leave room for everything else on that credential.
const AUTO_SHARE_DIVISOR: u32 = 10;

/// The most requests one read may take when the planner chooses freely, whatever the budget:
/// past that, git's few requests are the better deal anyway.
const AUTO_MAX_REQUESTS: u32 = 200;

/// A Cloud repository larger than this is written to through REST rather than cloned for a
/// write, in `auto`: Cloud refuses partial clone, so a clone costs the whole tip.
pub(crate) const LARGE_REPOSITORY_BYTES: u64 = 256 * 1024 * 1024;

/// How a read is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// The delegate's local clone: shallow, and blobless where the server honours it.
    Git,
    /// Cloud's `src` listing and files, and `diffstat` for new commits.
    CloudRest,
    /// Data Center's path-filtered `archive` for a snapshot, `changes` plus archives of the
    /// changed paths for new commits.
    DcRest,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Git => "git",
            Method::CloudRest => "cloud-rest",
            Method::DcRest => "dc-rest",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of read is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadKind {
    /// Every file under a scope at the head: a first sync, or a history rewritten.
    Snapshot,
    /// The commits after one already read.
    Incremental,
}

/// What the planner knows before any request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known<'a> {
    pub mode: FetchMode,
    /// The repository's REST API; `None` for a plain git server.
    pub rest: Option<&'a RestTarget>,
    /// Whether git partial clone is honoured, as the connector's last Test found.
    pub partial_clone: Option<bool>,
    /// Whether Data Center's archive takes a path filter, as the last Test found.
    pub archive_path_filter: Option<bool>,
    /// The repository's size as Cloud reported it at the last Test.
    pub repository_bytes: Option<u64>,
}

impl<'a> Known<'a> {
    /// What the server's planning for a task says.
    pub(crate) fn of(planning: &'a ReadPlanning) -> Known<'a> {
        Known {
            mode: planning.fetch,
            rest: planning.rest.as_ref(),
            partial_clone: planning.partial_clone,
            archive_path_filter: planning.archive_path_filter,
            repository_bytes: planning.repository_bytes,
        }
    }
}

/// The method chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub method: Method,
    pub reason: String,
}

fn git(reason: impl Into<String>) -> Choice {
    Choice {
        method: Method::Git,
        reason: reason.into(),
    }
}

/// Chooses how to read, before any request.
pub(crate) fn choose(known: Known<'_>, kind: ReadKind) -> Choice {
    if known.mode == FetchMode::Git {
        return git("the connector reads through git only (--fetch git)");
    }
    let Some(rest) = known.rest else {
        return git("a plain git server has no REST API");
    };
    if rest.auth.is_none() {
        return git(rest
            .unusable
            .clone()
            .unwrap_or_else(|| "REST has no credentials".into()));
    }
    if known.mode == FetchMode::Auto && known.partial_clone == Some(true) {
        return git("the server honours partial clone, which fetches only the files read");
    }
    match (rest.platform, kind) {
        (RestPlatform::DataCenter, ReadKind::Snapshot)
            if known.archive_path_filter == Some(false) =>
        {
            git("this Data Center's archive takes no path filter (it predates 5.1)")
        }
        (RestPlatform::DataCenter, ReadKind::Snapshot) => Choice {
            method: Method::DcRest,
            reason: "one path-filtered archive of the scope".into(),
        },
        (RestPlatform::DataCenter, ReadKind::Incremental) => Choice {
            method: Method::DcRest,
            reason: "the changes of each new commit, then an archive of the changed paths".into(),
        },
        (RestPlatform::Cloud, ReadKind::Snapshot) => Choice {
            method: Method::CloudRest,
            reason: "the src listing of the scope, then one request per file".into(),
        },
        (RestPlatform::Cloud, ReadKind::Incremental) => Choice {
            method: Method::CloudRest,
            reason: "the diffstat of each new commit, then one request per changed file".into(),
        },
    }
}

/// Chooses how to write a commit. Only Cloud writes without a clone: when the connector asks
/// for REST (`--fetch api`), or, in `auto`, when its last Test found the repository too large
/// to clone for a write ([`LARGE_REPOSITORY_BYTES`]). Data Center's REST edits one file per
/// commit, so its writes stay on the blobless clone, which it supports.
pub(crate) fn choose_write(known: Known<'_>) -> Choice {
    let large = known
        .repository_bytes
        .filter(|bytes| *bytes > LARGE_REPOSITORY_BYTES);
    let reason = match (known.mode, large) {
        (FetchMode::Git, _) => {
            return git("the connector reads and writes through git only (--fetch git)");
        }
        (FetchMode::Api, _) => {
            "one commit through POST src, without a clone (--fetch api)".to_owned()
        }
        (FetchMode::Auto, Some(bytes)) => format!(
            "one commit through POST src: the repository holds {} MiB, which a clone would fetch whole (Cloud refuses partial clone)",
            bytes / (1024 * 1024)
        ),
        (FetchMode::Auto, None) => {
            return git("commits go through git unless the repository is too large to clone");
        }
    };
    match known.rest {
        Some(rest) if rest.auth.is_none() => git(rest
            .unusable
            .clone()
            .unwrap_or_else(|| "REST has no credentials".into())),
        Some(rest) if rest.platform == RestPlatform::Cloud => Choice {
            method: Method::CloudRest,
            reason,
        },
        Some(_) => git("Data Center's REST edits one file per commit; its writes stay on git"),
        None => git("a plain git server has no REST API"),
    }
}

/// How many requests one REST read may spend, from the credential's remaining budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    pub requests: u32,
    pub remaining: u32,
}

impl Allowance {
    /// With `--fetch api` a read may take the whole remaining budget; otherwise a tenth of it,
    /// and never more than [`AUTO_MAX_REQUESTS`].
    pub(crate) fn of(mode: FetchMode, remaining: u32) -> Allowance {
        let requests = match mode {
            FetchMode::Api => remaining,
            FetchMode::Auto | FetchMode::Git => {
                (remaining / AUTO_SHARE_DIVISOR).min(AUTO_MAX_REQUESTS)
            }
        };
        Allowance {
            requests,
            remaining,
        }
    }

    /// Whether `needed` requests fit; if not, the refusal says so in a sentence.
    pub(crate) fn check(&self, needed: u64, what: &str) -> Result<(), String> {
        if needed <= u64::from(self.requests) {
            Ok(())
        } else {
            Err(format!(
                "{what} would take {needed} REST requests; this read may spend {} of the {} left this hour",
                self.requests, self.remaining
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use reposync_model::RestAuth;

    use super::*;

    fn target(platform: RestPlatform, auth: Option<RestAuth>) -> RestTarget {
        RestTarget {
            platform,
            base: "https://api.example.com".into(),
            owner: "acme".into(),
            slug: "config".into(),
            unusable: auth
                .is_none()
                .then(|| "an SSH key cannot call REST".to_owned()),
            auth,
            token: None,
            ca_certificate: None,
        }
    }

    fn known(mode: FetchMode, rest: Option<&RestTarget>) -> Known<'_> {
        Known {
            mode,
            rest,
            partial_clone: None,
            archive_path_filter: None,
            repository_bytes: None,
        }
    }

    #[test]
    fn git_wins_when_rest_is_not_an_option() {
        let cloud = target(RestPlatform::Cloud, Some(RestAuth::Bearer));
        assert_eq!(
            choose(known(FetchMode::Git, Some(&cloud)), ReadKind::Snapshot).method,
            Method::Git
        );
        assert_eq!(
            choose(known(FetchMode::Api, None), ReadKind::Snapshot).method,
            Method::Git
        );
        let ssh = target(RestPlatform::Cloud, None);
        let choice = choose(known(FetchMode::Api, Some(&ssh)), ReadKind::Incremental);
        assert_eq!(choice.method, Method::Git);
        assert!(choice.reason.contains("SSH"), "{}", choice.reason);
    }

    #[test]
    fn partial_clone_is_preferred_unless_api_is_asked_for() {
        let dc = target(RestPlatform::DataCenter, Some(RestAuth::Bearer));
        let mut with_filter = known(FetchMode::Auto, Some(&dc));
        with_filter.partial_clone = Some(true);
        assert_eq!(choose(with_filter, ReadKind::Snapshot).method, Method::Git);
        with_filter.mode = FetchMode::Api;
        assert_eq!(
            choose(with_filter, ReadKind::Snapshot).method,
            Method::DcRest
        );
    }

    #[test]
    fn an_old_data_center_snapshot_goes_through_git() {
        let dc = target(RestPlatform::DataCenter, Some(RestAuth::Bearer));
        let mut old = known(FetchMode::Auto, Some(&dc));
        old.archive_path_filter = Some(false);
        assert_eq!(choose(old, ReadKind::Snapshot).method, Method::Git);
        assert_eq!(choose(old, ReadKind::Incremental).method, Method::DcRest);
    }

    #[test]
    fn cloud_reads_through_rest_when_it_may() {
        let cloud = target(RestPlatform::Cloud, Some(RestAuth::Bearer));
        for kind in [ReadKind::Snapshot, ReadKind::Incremental] {
            assert_eq!(
                choose(known(FetchMode::Auto, Some(&cloud)), kind).method,
                Method::CloudRest
            );
        }
    }

    #[test]
    fn only_cloud_writes_through_rest_when_asked_or_too_large_to_clone() {
        let cloud = target(RestPlatform::Cloud, Some(RestAuth::Bearer));
        let dc = target(RestPlatform::DataCenter, Some(RestAuth::Bearer));
        assert_eq!(
            choose_write(known(FetchMode::Auto, Some(&cloud))).method,
            Method::Git
        );
        assert_eq!(
            choose_write(known(FetchMode::Api, Some(&cloud))).method,
            Method::CloudRest
        );
        assert_eq!(
            choose_write(known(FetchMode::Api, Some(&dc))).method,
            Method::Git
        );
        let ssh = target(RestPlatform::Cloud, None);
        assert_eq!(
            choose_write(known(FetchMode::Api, Some(&ssh))).method,
            Method::Git
        );
        // In auto, a repository too large to clone is written to through REST.
        let mut large = known(FetchMode::Auto, Some(&cloud));
        large.repository_bytes = Some(LARGE_REPOSITORY_BYTES + 1);
        let choice = choose_write(large);
        assert_eq!(choice.method, Method::CloudRest);
        assert!(choice.reason.contains("MiB"), "{}", choice.reason);
        large.repository_bytes = Some(LARGE_REPOSITORY_BYTES);
        assert_eq!(choose_write(large).method, Method::Git);
        large.mode = FetchMode::Git;
        large.repository_bytes = Some(u64::MAX);
        assert_eq!(choose_write(large).method, Method::Git);
    }

    #[test]
    fn the_allowance_leaves_room_for_everything_else() {
        assert_eq!(Allowance::of(FetchMode::Auto, 1_000).requests, 100);
        assert_eq!(
            Allowance::of(FetchMode::Auto, 10_000).requests,
            AUTO_MAX_REQUESTS
        );
        assert_eq!(Allowance::of(FetchMode::Api, 1_000).requests, 1_000);
        let allowance = Allowance::of(FetchMode::Auto, 1_000);
        assert!(allowance.check(60, "50 files").is_ok());
        let refused = allowance.check(5_060, "5,000 files").expect_err("too many");
        assert!(refused.contains("5060 REST requests"), "{refused}");
        assert!(refused.contains("100 of the 1000 left"), "{refused}");
    }
}

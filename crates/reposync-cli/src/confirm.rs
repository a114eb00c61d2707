//! Asking before a command destroys something: at a terminal, what will go is shown and the
//! person answers; elsewhere (a script, CI) the command needs `--yes`, or it refuses and
//! changes nothing.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::bail;

/// Goes on when `yes` is given or a person at the terminal agrees to `action` after seeing
/// `consequences`; refuses otherwise, before anything is changed.
pub fn confirm(action: &str, consequences: &[String], yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let listed: String = consequences.iter().map(|c| format!("\n  {c}")).collect();
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "{action} needs --yes when it does not run at a terminal; it would:{listed}\nnothing was changed"
        );
    }
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{action} will:{listed}\nProceed? [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("{action}: cancelled; nothing was changed")
    }
}

/// What Git Sync will do about a deletion in `scope`: push a commit removing the files from
/// the linked branch, when the scope is synced.
pub async fn sync_consequence(
    client: &reposync_api::Client,
    scope: &reposync_model::scope::Scope,
) -> anyhow::Result<Option<String>> {
    let links: reposync_api::ListResponse<reposync_api::SyncLinkView> = reposync_api::decode(
        client
            .get(&["sync", "status"], &[], std::time::Duration::from_secs(30))
            .await?,
    )?;
    Ok(links
        .items
        .iter()
        .find(|link| link.scope == scope.to_string())
        .map(|link| {
            format!(
                "then push a commit deleting them from {} ({}), since {scope} is synced",
                link.url, link.branch
            )
        }))
}

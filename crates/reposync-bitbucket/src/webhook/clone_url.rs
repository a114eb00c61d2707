//! Matching a delivery's repository against a clone URL.

/// Whether the last two path segments of `url` are `owner` and `slug` (see
/// [`Repository::matches_clone_url`](super::Repository::matches_clone_url)).
pub(super) fn matches(owner: &str, slug: &str, url: &str) -> bool {
    let Some(path) = url_path(url.trim()) else {
        return false;
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let [.., url_owner, url_slug] = segments.as_slice() else {
        return false;
    };
    // A slug may itself end in `.git`, so accept the segment with and without it.
    let slug_matches = same(url_slug, slug)
        || strip_suffix_ignore_case(url_slug, ".git").is_some_and(|s| same(s, slug));
    same(url_owner, owner) && slug_matches
}

/// The path of `scheme://authority/path` or of scp-like `[user@]host:path`, without query or
/// fragment; `None` for anything else (a local path, an empty string).
fn url_path(url: &str) -> Option<&str> {
    let path = match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme_ok = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !scheme_ok {
                return None;
            }
            let (_authority, path) = rest.split_once('/')?;
            path
        }
        None => {
            // git's own rule: a colon before any slash makes `host:path`; otherwise it is a
            // local path, which no Bitbucket repository is.
            let (host, path) = url.split_once(':')?;
            if host.is_empty() || host.contains('/') {
                return None;
            }
            path
        }
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Some(path)
}

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let (head, tail) = s.split_at_checked(cut)?;
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

/// Decodes `%XX` escapes (`%7E` for `~`); an invalid escape is kept as written.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! How a scope's files compare with a branch's. Pure functions.

use std::collections::HashMap;

use reposync_api::SyncDifferences;

/// How reposync's files of a scope compare with the branch's.
pub fn differences(ours: &[(String, Vec<u8>)], theirs: &[(String, Vec<u8>)]) -> SyncDifferences {
    let ours: HashMap<&str, &[u8]> = ours
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let theirs: HashMap<&str, &[u8]> = theirs
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let mut report = SyncDifferences::default();
    for (path, content) in &ours {
        match theirs.get(path) {
            None => report.only_in_reposync.push((*path).to_owned()),
            Some(other) if other != content => report.different.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    for path in theirs.keys() {
        if !ours.contains_key(path) {
            report.only_in_git.push((*path).to_owned());
        }
    }
    report.only_in_reposync.sort();
    report.only_in_git.sort();
    report.different.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_list_each_side_and_the_files_that_differ() {
        let ours = vec![
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ];
        let theirs = vec![
            ("b".to_owned(), b"3".to_vec()),
            ("c".to_owned(), b"4".to_vec()),
        ];
        let d = differences(&ours, &theirs);
        assert_eq!(d.only_in_reposync, vec!["a"]);
        assert_eq!(d.different, vec!["b"]);
        assert_eq!(d.only_in_git, vec!["c"]);
        assert!(differences(&ours, &ours).is_empty());
    }
}

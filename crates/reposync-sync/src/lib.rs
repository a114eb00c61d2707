//! The Git Sync engine: changesets out, commits in, ordering, conflicts, sync errors,
//! activity and polling.
//!
//! Empty for now; it arrives with the Git Sync issues. It will reach Git only through delegate
//! tasks, and its workers will expose a step function that tests call directly.

//! Git → reposync: the log of webhook deliveries that announce new heads, and the commits
//! read from Git with what became of them. Where reading each branch stands is kept with the
//! branches, in [`crate::sync`], which pushes read too.

pub(crate) mod commits;
mod deliveries;

pub use commits::{
    FileError, InboundCommit, InboundCommitRecord, InboundFile, InboundStatus, InboundWarning,
};
pub use deliveries::{AnnouncedHead, DeliveryOutcome, DeliveryRecord, NewDelivery, SignatureCheck};

//! [`Document`]: one YAML file's content as a tree of nodes.

use super::value::{Mapping, Node};

/// One YAML document: the whole content of one file.
///
/// An empty file (or one holding only comments) is an error
/// ([`YamlErrorKind::Empty`](super::error::YamlErrorKind::Empty)), never a document: no
/// Harness file is empty, and every kind needs at least `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The top node; a mapping in every Harness file.
    pub root: Node,
}

impl Document {
    /// A document with `root` at the top.
    pub fn new(root: Node) -> Self {
        Self { root }
    }

    /// A document whose top is `mapping`.
    pub fn from_mapping(mapping: Mapping) -> Self {
        Self::new(Node::map(mapping))
    }

    /// The top mapping, if the document is one.
    pub fn root_map(&self) -> Option<&Mapping> {
        self.root.as_map()
    }

    /// The top mapping, mutably, if the document is one.
    pub fn root_map_mut(&mut self) -> Option<&mut Mapping> {
        self.root.as_map_mut()
    }
}

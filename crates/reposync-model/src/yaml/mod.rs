//! The YAML codec of the configuration-as-code tree: reads a file into an ordered tree that
//! keeps positions, and writes a tree back byte for byte the way Harness's SnakeYAML dumper
//! wrote it.
//!
//! The one design decision: **the written form is a function of the tree alone**. A file is
//! parsed into [`Node`]s that keep their order and their YAML 1.1 types (as SnakeYAML
//! resolved them), and [`emit`] decides every quote, indent and line break by SnakeYAML's own
//! rules. A file Harness wrote therefore comes back unchanged, keys reposync does not model
//! stay where they were, and content reposync adds or changes looks like Harness wrote it.
//! Nothing about the source's layout is remembered, so a hand-edited file comes back in
//! Harness's layout (that is what `reposync fmt` does); comments are not kept.
//!
//! * [`parse`] enforces [`Limits`] (file size, node count with aliases expanded, nesting
//!   depth), rejects duplicate keys, invalid UTF-8, more than one document and empty files,
//!   and reports every error with a 1-based line and column.
//! * Plain scalars are typed by YAML 1.1 as SnakeYAML applies it: `yes`/`on`/`True` are
//!   booleans (written back as `true`/`false`), `~` is null (written back as `null`),
//!   integers and floats keep their text (`0x1F`, `1.0`). Dates stay strings, as Harness's
//!   string fields read them. Quoted and block scalars are always strings.
//! * [`emit`] never reorders; [`canonicalize`] applies Harness's key order to content reposync
//!   creates. `emit(parse(emit(d))) == emit(d)` for every tree.
//!
//! This module is pure: it reads from a byte slice and writes to a `String`.

mod canonical;
mod document;
mod emit;
mod error;
mod parse;
mod resolve;
mod value;

pub use canonical::{canonicalize, order_top_level};
pub use document::Document;
pub use emit::emit;
pub use error::{YamlError, YamlErrorKind};
pub use parse::{Limits, parse};
pub use value::{Mapping, Node, Value};

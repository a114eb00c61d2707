//! Errors of the YAML codec: what went wrong and where, without the file's path (the caller
//! knows it and adds it).

use thiserror::Error;

/// A file that could not be read as one YAML document, with the 1-based position of the fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct YamlError {
    /// 1-based line of the fault.
    pub line: usize,
    /// 1-based column (in characters) of the fault.
    pub column: usize,
    /// What is wrong.
    pub kind: YamlErrorKind,
}

impl YamlError {
    pub(crate) fn new(line: usize, column: usize, kind: YamlErrorKind) -> Self {
        Self { line, column, kind }
    }
}

/// What is wrong with a YAML file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum YamlErrorKind {
    /// The file is larger than the configured limit; nothing was parsed.
    #[error("the file is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the file in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The file is not valid UTF-8; the position is that of the first bad byte.
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
    /// The file is not valid YAML.
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// A mapping has the same key twice; the position is that of the second one.
    #[error("duplicate key `{0}` in the same mapping")]
    DuplicateKey(String),
    /// The document, with its aliases expanded, has more nodes than the limit allows, or its
    /// aliases add more text than the file size limit.
    #[error("the document is too large once its aliases are expanded (an alias bomb?)")]
    TooManyNodes,
    /// Collections are nested deeper than the limit allows.
    #[error("lists and mappings are nested too deeply")]
    TooDeep,
    /// The file holds more than one YAML document (`---` separators).
    #[error("the file holds more than one YAML document; put each entity in its own file")]
    MultipleDocuments,
    /// The file holds no document at all (empty, or only comments).
    #[error("the file is empty; expected a YAML document")]
    Empty,
    /// A mapping key is a list or a mapping.
    #[error("a mapping key must be a scalar, not a list or a mapping")]
    NonScalarKey,
    /// An alias names an anchor that is not defined before it (or is still being defined).
    #[error("alias refers to an anchor that is not defined before it")]
    UnknownAlias,
    /// A tag reposync does not interpret (anything but the core `!!str`, `!!int`, …).
    #[error(
        "unsupported tag `{0}`; only the core tags (!!str, !!int, !!float, !!bool, !!null, !!map, !!seq) are allowed"
    )]
    UnsupportedTag(String),
    /// A core tag on a scalar whose text is not of that type (`!!int abc`).
    #[error("`{text}` is not a valid {tag} value")]
    InvalidTaggedValue {
        /// The tag, as `!!int`.
        tag: String,
        /// The scalar's text.
        text: String,
    },
    /// A merge key (`<<`) whose value is not a mapping or a list of mappings.
    #[error("a merge key (<<) must be followed by a mapping or a list of mappings")]
    InvalidMerge,
}

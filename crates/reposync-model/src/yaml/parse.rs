//! Reading: bytes → checked UTF-8 → saphyr-parser events → our tree, with limits.
//!
//! The tree is built with an explicit stack, never by recursion, so nesting cannot overflow
//! the thread's stack; depth and node count are checked as events arrive. Aliases are expanded
//! by copying the anchored node, and the copy's size is charged *before* copying, both in
//! nodes (against `max_nodes`) and in scalar bytes (aliases may add at most `max_file_bytes` of
//! text, so one huge aliased string cannot blow up either): an alias bomb ("billion laughs")
//! fails at the first alias that would exceed the budget, having allocated almost nothing.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::document::Document;
use super::error::{YamlError, YamlErrorKind};
use super::resolve::{Resolved, is_float, is_int, resolve};
use super::value::{Mapping, Node, Value};

/// Bounds on what [`parse`] accepts, so that a hostile file costs little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes; checked before anything is parsed.
    pub max_file_bytes: usize,
    /// Most nodes (scalars, keys, lists and mappings, counting every copy an alias makes).
    pub max_nodes: usize,
    /// Deepest nesting of lists and mappings.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 1 MiB, 100 000 nodes, 128 levels: ten times the largest Harness file we have seen.
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_nodes: 100_000,
            max_depth: 128,
        }
    }
}

/// Parses one YAML document from `bytes`, within `limits`.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Document, YamlError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(YamlError::new(
            1,
            1,
            YamlErrorKind::TooLarge {
                size: bytes.len(),
                limit: limits.max_file_bytes,
            },
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position_of_byte(bytes, e.valid_up_to());
        YamlError::new(line, column, YamlErrorKind::InvalidUtf8)
    })?;
    Builder::new(limits).run(text)
}

/// 1-based line and column (in characters) of byte `index`, all bytes before which are UTF-8.
fn position_of_byte(bytes: &[u8], index: usize) -> (usize, usize) {
    let before = &bytes[..index];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = std::str::from_utf8(&before[line_start..])
        .map_or(index - line_start, |s| s.chars().count())
        + 1;
    (line, column)
}

fn at(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

fn err(span: &Span, kind: YamlErrorKind) -> YamlError {
    let (line, column) = at(span);
    YamlError::new(line, column, kind)
}

fn scan_error(e: &ScanError) -> YamlError {
    // saphyr-parser stops flow collections nested 256 deep on its own; that is our limit too.
    let kind = match e.info() {
        "recursion limit exceeded" => YamlErrorKind::TooDeep,
        info => YamlErrorKind::Syntax(info.to_string()),
    };
    YamlError::new(e.marker().line(), e.marker().col() + 1, kind)
}

/// A node that was anchored, with what copying it costs.
struct Anchored {
    node: Node,
    /// Nodes in the subtree, itself included.
    count: usize,
    /// Bytes of scalar text in the subtree.
    bytes: usize,
    /// Collection levels in the subtree (0 for a scalar).
    height: usize,
}

/// A finished node on its way to its parent.
struct Done {
    node: Node,
    height: usize,
    /// A plain, untagged `<<`: a merge key when it stands in key position.
    merge_key: bool,
}

enum Slot {
    Entry(Node, Node),
    /// The mappings a `<<` key brings in, in order of precedence.
    Merge(Vec<Mapping>),
}

enum Frame {
    Seq {
        items: Vec<Node>,
        line: usize,
        column: usize,
        anchor: usize,
        start_count: usize,
        start_bytes: usize,
        height: usize,
    },
    Map {
        slots: Vec<Slot>,
        /// Fingerprints of the explicit keys, to find duplicates without a quadratic scan.
        seen: HashSet<(u8, String)>,
        /// The key waiting for its value, and whether it is a merge key.
        key: Option<(Node, bool)>,
        line: usize,
        column: usize,
        anchor: usize,
        start_count: usize,
        start_bytes: usize,
        height: usize,
    },
}

struct Builder<'l> {
    limits: &'l Limits,
    nodes: usize,
    /// Bytes of scalar text so far, copies included.
    bytes: usize,
    /// Bytes of scalar text added by expanding aliases.
    alias_bytes: usize,
    anchors: HashMap<usize, Anchored>,
    stack: Vec<Frame>,
    root: Option<Node>,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            nodes: 0,
            bytes: 0,
            alias_bytes: 0,
            anchors: HashMap::new(),
            stack: Vec::new(),
            root: None,
        }
    }

    fn run(mut self, text: &str) -> Result<Document, YamlError> {
        let mut parser = Parser::new_from_str(text);
        let mut documents = 0usize;
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| scan_error(&e))?;
            match event {
                Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(err(&span, YamlErrorKind::MultipleDocuments));
                    }
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let done = self.scalar(&value, style, tag.as_deref(), &span)?;
                    if anchor > 0 {
                        self.anchors.insert(
                            anchor,
                            Anchored {
                                node: done.node.clone(),
                                count: 1,
                                bytes: value.len(),
                                height: 0,
                            },
                        );
                    }
                    self.attach(done, &span)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    self.check_collection_tag(tag.as_deref(), "seq", &span)?;
                    self.open(&span)?;
                    let (line, column) = at(&span);
                    self.stack.push(Frame::Seq {
                        items: Vec::new(),
                        line,
                        column,
                        anchor,
                        start_count: self.nodes - 1,
                        start_bytes: self.bytes,
                        height: 1,
                    });
                }
                Event::MappingStart(anchor, tag) => {
                    self.check_collection_tag(tag.as_deref(), "map", &span)?;
                    self.open(&span)?;
                    let (line, column) = at(&span);
                    self.stack.push(Frame::Map {
                        slots: Vec::new(),
                        seen: HashSet::new(),
                        key: None,
                        line,
                        column,
                        anchor,
                        start_count: self.nodes - 1,
                        start_bytes: self.bytes,
                        height: 1,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let done = self.close(&span)?;
                    self.attach(done, &span)?;
                }
                Event::Alias(id) => {
                    let Some(anchored) = self.anchors.get(&id) else {
                        return Err(err(&span, YamlErrorKind::UnknownAlias));
                    };
                    let (count, bytes, height) = (anchored.count, anchored.bytes, anchored.height);
                    if self.in_key_position() && !anchored.node.value.is_scalar() {
                        return Err(err(&span, YamlErrorKind::NonScalarKey));
                    }
                    if self.stack.len() + height > self.limits.max_depth {
                        return Err(err(&span, YamlErrorKind::TooDeep));
                    }
                    // Charge the copy before making it, so a bomb fails before it allocates.
                    self.charge(count, &span)?;
                    self.alias_bytes = self.alias_bytes.saturating_add(bytes);
                    if self.alias_bytes > self.limits.max_file_bytes {
                        return Err(err(&span, YamlErrorKind::TooManyNodes));
                    }
                    self.bytes = self.bytes.saturating_add(bytes);
                    let Some(anchored) = self.anchors.get(&id) else {
                        return Err(err(&span, YamlErrorKind::UnknownAlias));
                    };
                    let (line, column) = at(&span);
                    let mut node = anchored.node.clone();
                    node.line = line;
                    node.column = column;
                    let done = Done {
                        node,
                        height,
                        merge_key: false,
                    };
                    self.attach(done, &span)?;
                }
            }
        }
        match self.root {
            Some(root) => Ok(Document { root }),
            None => Err(YamlError::new(1, 1, YamlErrorKind::Empty)),
        }
    }

    fn charge(&mut self, count: usize, span: &Span) -> Result<(), YamlError> {
        match self.nodes.checked_add(count) {
            Some(total) if total <= self.limits.max_nodes => {
                self.nodes = total;
                Ok(())
            }
            _ => Err(err(span, YamlErrorKind::TooManyNodes)),
        }
    }

    fn in_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// Checks and charges a collection about to open.
    fn open(&mut self, span: &Span) -> Result<(), YamlError> {
        if self.in_key_position() {
            return Err(err(span, YamlErrorKind::NonScalarKey));
        }
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(err(span, YamlErrorKind::TooDeep));
        }
        self.charge(1, span)
    }

    fn check_collection_tag(
        &self,
        tag: Option<&Tag>,
        expected: &str,
        span: &Span,
    ) -> Result<(), YamlError> {
        match tag.map(classify) {
            None | Some(TagKind::NonSpecific) => Ok(()),
            Some(TagKind::Core(name)) if name == expected => Ok(()),
            Some(TagKind::Core(name)) => Err(err(
                span,
                YamlErrorKind::UnsupportedTag(format!("!!{name}")),
            )),
            Some(TagKind::Other(text)) => Err(err(span, YamlErrorKind::UnsupportedTag(text))),
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        span: &Span,
    ) -> Result<Done, YamlError> {
        self.charge(1, span)?;
        self.bytes += text.len();
        let mut merge_key = false;
        let value = match tag.map(classify) {
            None if style == ScalarStyle::Plain => match resolve(text) {
                Resolved::Bool(b) => Value::Bool(b),
                Resolved::Int => Value::Int(text.to_string()),
                Resolved::Float => Value::Float(text.to_string()),
                Resolved::Null => Value::Null,
                Resolved::Merge => {
                    merge_key = true;
                    Value::String(text.to_string())
                }
                Resolved::Timestamp | Resolved::Other | Resolved::Str => {
                    Value::String(text.to_string())
                }
            },
            None | Some(TagKind::NonSpecific) => Value::String(text.to_string()),
            Some(TagKind::Core(name)) => tagged_scalar(&name, text, span)?,
            Some(TagKind::Other(tag)) => return Err(err(span, YamlErrorKind::UnsupportedTag(tag))),
        };
        let (line, column) = at(span);
        Ok(Done {
            node: Node::at(value, line, column),
            height: 0,
            merge_key,
        })
    }

    fn close(&mut self, span: &Span) -> Result<Done, YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(err(
                span,
                YamlErrorKind::Syntax("unbalanced collection end".into()),
            ));
        };
        let (node, anchor, start_count, start_bytes, height) = match frame {
            Frame::Seq {
                items,
                line,
                column,
                anchor,
                start_count,
                start_bytes,
                height,
            } => (
                Node::at(Value::Seq(items), line, column),
                anchor,
                start_count,
                start_bytes,
                height,
            ),
            Frame::Map {
                slots,
                seen,
                line,
                column,
                anchor,
                start_count,
                start_bytes,
                height,
                ..
            } => (
                Node::at(Value::Map(merge_slots(slots, &seen)), line, column),
                anchor,
                start_count,
                start_bytes,
                height,
            ),
        };
        if anchor > 0 {
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    count: self.nodes - start_count,
                    bytes: self.bytes - start_bytes,
                    height,
                },
            );
        }
        Ok(Done {
            node,
            height,
            merge_key: false,
        })
    }

    fn attach(&mut self, done: Done, span: &Span) -> Result<(), YamlError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(done.node);
            return Ok(());
        };
        match frame {
            Frame::Seq { items, height, .. } => {
                *height = (*height).max(done.height + 1);
                items.push(done.node);
            }
            Frame::Map {
                slots,
                seen,
                key,
                height,
                ..
            } => {
                *height = (*height).max(done.height + 1);
                match key.take() {
                    None => {
                        let node = done.node;
                        if !done.merge_key {
                            let Some(fingerprint) = fingerprint(&node.value) else {
                                return Err(YamlError::new(
                                    node.line,
                                    node.column,
                                    YamlErrorKind::NonScalarKey,
                                ));
                            };
                            if !seen.insert(fingerprint) {
                                let shown = node.value.scalar_text().unwrap_or("").to_string();
                                return Err(YamlError::new(
                                    node.line,
                                    node.column,
                                    YamlErrorKind::DuplicateKey(shown),
                                ));
                            }
                        }
                        *key = Some((node, done.merge_key));
                    }
                    Some((k, false)) => slots.push(Slot::Entry(k, done.node)),
                    Some((_, true)) => {
                        let sources = match done.node.value {
                            Value::Map(m) => vec![m],
                            Value::Seq(items) => {
                                let mut maps = Vec::with_capacity(items.len());
                                for item in items {
                                    match item.value {
                                        Value::Map(m) => maps.push(m),
                                        _ => return Err(err(span, YamlErrorKind::InvalidMerge)),
                                    }
                                }
                                maps
                            }
                            _ => {
                                return Err(YamlError::new(
                                    done.node.line,
                                    done.node.column,
                                    YamlErrorKind::InvalidMerge,
                                ));
                            }
                        };
                        slots.push(Slot::Merge(sources));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Builds a mapping from explicit entries and merges: merged entries take the place of their
/// `<<` key, explicit keys win over merged ones, and earlier merge sources win over later ones.
fn merge_slots(slots: Vec<Slot>, explicit: &HashSet<(u8, String)>) -> Mapping {
    let mut mapping = Mapping::new();
    let mut merged: HashSet<(u8, String)> = HashSet::new();
    for slot in slots {
        match slot {
            Slot::Entry(k, v) => mapping.push_unchecked(k, v),
            Slot::Merge(sources) => {
                for source in sources {
                    for (k, v) in source {
                        let Some(fp) = fingerprint(&k.value) else {
                            continue;
                        };
                        if explicit.contains(&fp) || !merged.insert(fp) {
                            continue;
                        }
                        mapping.push_unchecked(k, v);
                    }
                }
            }
        }
    }
    mapping
}

/// What makes two scalar keys equal: their type and their text.
fn fingerprint(value: &Value) -> Option<(u8, String)> {
    let kind = match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(_) => 3,
        Value::String(_) => 4,
        Value::Seq(_) | Value::Map(_) => return None,
    };
    Some((kind, value.scalar_text()?.to_string()))
}

/// What a tag means to us.
enum TagKind {
    /// `!`: "not resolved", so a scalar is a string.
    NonSpecific,
    /// A tag of the YAML core schema, `!!str` or `!<tag:yaml.org,2002:str>`, by its name.
    Core(String),
    /// Anything else, as written.
    Other(String),
}

const CORE_PREFIX: &str = "tag:yaml.org,2002:";

fn classify(t: &Tag) -> TagKind {
    if t.is_yaml_core_schema() {
        return TagKind::Core(t.suffix.clone());
    }
    if t.handle.is_empty() {
        // saphyr-parser gives `!` and verbatim tags (`!<…>`) an empty handle.
        if t.suffix == "!" {
            return TagKind::NonSpecific;
        }
        if let Some(name) = t.suffix.strip_prefix(CORE_PREFIX) {
            return TagKind::Core(name.to_string());
        }
        return TagKind::Other(format!("!<{}>", t.suffix));
    }
    TagKind::Other(t.to_string())
}

fn tagged_scalar(name: &str, text: &str, span: &Span) -> Result<Value, YamlError> {
    let invalid = || {
        err(
            span,
            YamlErrorKind::InvalidTaggedValue {
                tag: format!("!!{name}"),
                text: text.to_string(),
            },
        )
    };
    match name {
        "str" => Ok(Value::String(text.to_string())),
        "int" if is_int(text) => Ok(Value::Int(text.to_string())),
        "float" if is_float(text) => Ok(Value::Float(text.to_string())),
        "bool" => match resolve(text) {
            Resolved::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(invalid()),
        },
        "null" => match resolve(text) {
            Resolved::Null => Ok(Value::Null),
            _ => Err(invalid()),
        },
        "int" | "float" => Err(invalid()),
        _ => Err(err(
            span,
            YamlErrorKind::UnsupportedTag(format!("!!{name}")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_positions() {
        assert_eq!(position_of_byte(b"ab\ncd", 4), (2, 2));
        assert_eq!(position_of_byte(b"ab", 0), (1, 1));
        assert_eq!(position_of_byte("é\nxé".as_bytes(), 6), (2, 3));
    }
}

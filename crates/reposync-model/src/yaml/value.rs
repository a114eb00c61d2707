//! The document tree: nodes with their source positions, scalars as YAML 1.1 resolved them, and
//! mappings that keep their entries in the order they were read.

use std::fmt;

/// One node of a document: its value and where it started in the file.
///
/// Positions are 1-based (line and column in characters). Nodes built in code rather than
/// read from a file have line and column 0. Equality compares values only, never positions,
/// so that two documents with the same content but a different layout compare equal.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's content.
    pub value: Value,
    /// 1-based line of the node's first character; 0 for a node built in code.
    pub line: usize,
    /// 1-based column (in characters) of the node's first character; 0 for a node built in code.
    pub column: usize,
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Node {
    /// A node built in code, without a source position.
    pub fn new(value: Value) -> Self {
        Self {
            value,
            line: 0,
            column: 0,
        }
    }

    /// A node at a source position.
    pub fn at(value: Value, line: usize, column: usize) -> Self {
        Self {
            value,
            line,
            column,
        }
    }

    /// A string node.
    pub fn string(s: impl Into<String>) -> Self {
        Self::new(Value::String(s.into()))
    }

    /// A null node.
    pub fn null() -> Self {
        Self::new(Value::Null)
    }

    /// A boolean node.
    pub fn bool(b: bool) -> Self {
        Self::new(Value::Bool(b))
    }

    /// An integer node.
    pub fn int(i: i64) -> Self {
        Self::new(Value::int(i))
    }

    /// A sequence node.
    pub fn seq(items: Vec<Node>) -> Self {
        Self::new(Value::Seq(items))
    }

    /// A mapping node.
    pub fn map(mapping: Mapping) -> Self {
        Self::new(Value::Map(mapping))
    }

    /// The string, if this node is one.
    pub fn as_str(&self) -> Option<&str> {
        self.value.as_str()
    }

    /// The mapping, if this node is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        self.value.as_map()
    }

    /// The mapping, mutably, if this node is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Mapping> {
        self.value.as_map_mut()
    }

    /// The items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        self.value.as_seq()
    }

    /// The items, mutably, if this node is a sequence.
    pub fn as_seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        self.value.as_seq_mut()
    }

    /// The boolean, if this node is one.
    pub fn as_bool(&self) -> Option<bool> {
        self.value.as_bool()
    }

    /// True for a null node.
    pub fn is_null(&self) -> bool {
        self.value.is_null()
    }
}

impl From<Value> for Node {
    fn from(value: Value) -> Self {
        Node::new(value)
    }
}

/// The value of a node, typed the way SnakeYAML's YAML 1.1 resolver types it.
///
/// Plain scalars resolve to `Bool`, `Int`, `Float` or `Null` when they look like one, and to
/// `String` otherwise; quoted and block scalars are always strings. `Int` and `Float` keep the
/// text they were written with (`0x1F`, `1.0`, `1_000`) so that writing them back changes
/// nothing; their text must be what the YAML 1.1 resolver reads as that type, which
/// [`Value::int`] and [`Value::float`] guarantee.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~`, `Null`, `NULL` or nothing at all.
    Null,
    /// `true`/`false` and YAML 1.1's `yes`/`no`/`on`/`off` in their three spellings; always
    /// written back as `true` or `false`.
    Bool(bool),
    /// An integer, as written (`42`, `-7`, `0x1F`, `0755`, `1_000`, `1:30`).
    Int(String),
    /// A floating-point number, as written (`1.0`, `.5`, `1e3`, `.inf`).
    Float(String),
    /// Any other scalar.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with its keys in order.
    Map(Mapping),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    /// An integer value, written in decimal.
    pub fn int(i: i64) -> Self {
        Value::Int(i.to_string())
    }

    /// A float value written the way Java's `Double.toString` does for ordinary magnitudes
    /// (`1.0`, `0.25`, `1.0E10`), or `None` for NaN and infinities, which Harness never writes.
    pub fn float(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        let abs = f.abs();
        let text = if abs == 0.0 || (1e-3..1e7).contains(&abs) {
            let mut t = format!("{f:?}");
            if !t.contains('.') && !t.contains('e') {
                t.push_str(".0");
            }
            t
        } else {
            // Scientific notation as Java writes it: mantissa with at least one decimal, `E`.
            let t = format!("{f:e}");
            let (mantissa, exponent) = t.split_once('e')?;
            let mantissa = if mantissa.contains('.') {
                mantissa.to_string()
            } else {
                format!("{mantissa}.0")
            };
            format!("{mantissa}E{exponent}")
        };
        Some(Value::Float(text))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The items, mutably, if this is a sequence.
    pub fn as_seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        match self {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is one that fits an `i64` (decimal, `0x`, `0b`, octal, `_`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(text) => super::resolve::int_value(text),
            _ => None,
        }
    }

    /// The number, if this is a float or an integer (`.inf` and `.nan` included).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(_) => self.as_i64().map(|i| i as f64),
            Value::Float(text) => super::resolve::float_value(text),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True for every value that is not a sequence or a mapping.
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Value::Seq(_) | Value::Map(_))
    }

    /// The text of a scalar as it is written in plain style (`null`, `true`, the number's
    /// text, the string itself), or `None` for collections. Used to compare and sort keys.
    pub fn scalar_text(&self) -> Option<&str> {
        match self {
            Value::Null => Some("null"),
            Value::Bool(true) => Some("true"),
            Value::Bool(false) => Some("false"),
            Value::Int(t) | Value::Float(t) | Value::String(t) => Some(t),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// What kind of value this is, for error messages: "a string", "a mapping", …
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Mapping> for Value {
    fn from(m: Mapping) -> Self {
        Value::Map(m)
    }
}

impl From<Vec<Node>> for Value {
    fn from(items: Vec<Node>) -> Self {
        Value::Seq(items)
    }
}

/// A mapping whose entries keep their order.
///
/// Keys are scalar nodes; lookups by `&str` match string keys. A mapping never holds two equal
/// keys: the parser rejects duplicates and [`Mapping::insert`] replaces in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    entries: Vec<(Node, Node)>,
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| matches!(&k.value, Value::String(s) if s == key))
    }

    fn position_node(&self, key: &Value) -> Option<usize> {
        self.entries.iter().position(|(k, _)| &k.value == key)
    }

    /// The value under the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The value under the string key `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    /// The key node and value under the string key `key` (the key carries its position).
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.position(key).map(|i| {
            let (k, v) = &self.entries[i];
            (k, v)
        })
    }

    /// True when the string key `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`: replaces the value in place when the key exists (keeping the
    /// key's position in the order), appends otherwise. Returns the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Node>) -> Option<Node> {
        self.insert_node(Node::string(key), value.into())
    }

    /// Like [`Mapping::insert`] for a key of any scalar type.
    pub fn insert_node(&mut self, key: Node, value: Node) -> Option<Node> {
        match self.position_node(&key.value) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes the string key `key`, keeping the order of the others. Returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Node, &mut Node)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in order.
    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The entries as a slice.
    pub fn entries(&self) -> &[(Node, Node)] {
        &self.entries
    }

    /// Keeps only the entries for which `keep` returns true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Node, &Node) -> bool) {
        self.entries.retain(|(k, v)| keep(k, v));
    }

    /// Sorts the entries with a stable sort by `compare`.
    pub fn sort_by(&mut self, mut compare: impl FnMut(&Node, &Node) -> std::cmp::Ordering) {
        self.entries.sort_by(|(a, _), (b, _)| compare(a, b));
    }

    /// Appends an entry without checking for an equal key; the parser checks first.
    pub(crate) fn push_unchecked(&mut self, key: Node, value: Node) {
        self.entries.push((key, value));
    }
}

impl FromIterator<(String, Node)> for Mapping {
    fn from_iter<I: IntoIterator<Item = (String, Node)>>(iter: I) -> Self {
        let mut m = Mapping::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl IntoIterator for Mapping {
    type Item = (Node, Node);
    type IntoIter = std::vec::IntoIter<(Node, Node)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl fmt::Display for Value {
    /// Scalars as their plain text; collections as `[…]`/`{…}` summaries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scalar_text() {
            Some(t) => f.write_str(t),
            None => match self {
                Value::Seq(items) => write!(f, "[{} items]", items.len()),
                Value::Map(m) => write!(f, "{{{} entries}}", m.len()),
                _ => Ok(()),
            },
        }
    }
}

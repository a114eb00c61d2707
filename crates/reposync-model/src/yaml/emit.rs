//! Writing: the tree → text, the way Harness's SnakeYAML dumper wrote it.
//!
//! This is a port of the parts of SnakeYAML's `Emitter` that block-style output reaches, with
//! the same bookkeeping (current column, "last written was whitespace", "still in the
//! indentation"), because the exact bytes depend on it: where a sequence goes under its key,
//! where a quoted string folds, when a literal block needs an indentation indicator. Harness
//! configured it with block style, indent 2, width 80, Unicode allowed, and plain as the
//! default scalar style (so multi-line strings ask for a literal block).
//!
//! Harness's SnakeYAML was an old release (the one shaded into jackson-dataformat-yaml). Its
//! plain-scalar writer never folded long lines (it only flushed text at the end of the scalar,
//! so the fold check never saw a single space); its single- and double-quoted writers did
//! fold at 80 columns. Its resolver is the 2013 one (see `resolve`), and characters outside
//! the Basic Multilingual Plane were "special" (Java saw surrogates), forcing double quotes.
//!
//! Deliberate differences from SnakeYAML, none of which a file Harness wrote can contain: NEL,
//! LS and PS count as special characters and are written escaped (`\N`, `\L`, `\P`), because a
//! YAML 1.2 reader would take them as content inside a literal block; control characters are
//! escaped (`\x01`) where SnakeYAML would switch to `!!binary`; the BOM is escaped as `\ufeff`
//! rather than written raw.
//!
//! While this was written, its output was compared byte for byte with SnakeYAML's own (load and
//! dump with Harness's options) on the corpus and on 20 000 random trees; the only differences
//! were the version differences above (later SnakeYAML folds plain scalars and writes emoji
//! plain).

use super::document::Document;
use super::resolve::{Resolved, resolve};
use super::value::{Node, Value};

/// SnakeYAML's `bestWidth`: where double-quoted scalars fold.
const WIDTH: isize = 80;
/// SnakeYAML's `bestIndent`.
const INDENT: usize = 2;
/// Keys this long (in UTF-16 units, tag included) or longer are written as complex keys.
const MAX_SIMPLE_KEY: usize = 128;

/// Writes `doc` in Harness's canonical style. Never reorders: the tree is written as it is.
pub fn emit(doc: &Document) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
    };
    e.node(
        &doc.root,
        Ctx {
            mapping: false,
            simple_key: false,
        },
        None,
    );
    // SnakeYAML's document end: one line break unless the last scalar already ended a line.
    e.write_indent(0);
    e.out
}

#[derive(Clone, Copy)]
struct Ctx {
    /// The node is a key or a value of a block mapping.
    mapping: bool,
    /// The node is a simple (implicit) key.
    simple_key: bool,
}

struct Emitter {
    out: String,
    /// Column of the next character, counted in UTF-16 units as Java does.
    column: usize,
    /// The last character written was whitespace (or nothing was written on this line).
    whitespace: bool,
    /// Only indentation (and `-`, `?`, `:` indicators) has been written on this line.
    indention: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn utf16_len(chars: &[char]) -> usize {
    chars.iter().map(|c| c.len_utf16()).sum()
}

impl Emitter {
    fn node(&mut self, node: &Node, ctx: Ctx, indent: Option<usize>) {
        match &node.value {
            Value::Seq(items) if items.is_empty() => {
                self.write_indicator("[", true, true, false);
                self.write_indicator("]", false, false, false);
            }
            Value::Map(m) if m.is_empty() => {
                self.write_indicator("{", true, true, false);
                self.write_indicator("}", false, false, false);
            }
            Value::Seq(items) => {
                // A sequence that is a mapping's value stays at the key's column.
                let indentless = ctx.mapping && !self.indention;
                let inner = match indent {
                    None => 0,
                    Some(i) if indentless => i,
                    Some(i) => i + INDENT,
                };
                let item_ctx = Ctx {
                    mapping: false,
                    simple_key: false,
                };
                for item in items {
                    self.write_indent(inner);
                    self.write_indicator("-", true, false, true);
                    self.node(item, item_ctx, Some(inner));
                }
            }
            Value::Map(m) => {
                let inner = indent.map_or(0, |i| i + INDENT);
                for (key, value) in m.iter() {
                    self.write_indent(inner);
                    if simple_key(&key.value) {
                        let key_ctx = Ctx {
                            mapping: true,
                            simple_key: true,
                        };
                        self.node(key, key_ctx, Some(inner));
                        self.write_indicator(":", false, false, false);
                    } else {
                        let ctx = Ctx {
                            mapping: true,
                            simple_key: false,
                        };
                        self.write_indicator("?", true, false, true);
                        self.node(key, ctx, Some(inner));
                        self.write_indent(inner);
                        self.write_indicator(":", true, false, true);
                    }
                    let value_ctx = Ctx {
                        mapping: true,
                        simple_key: false,
                    };
                    self.node(value, value_ctx, Some(inner));
                }
            }
            scalar => {
                // SnakeYAML indents a scalar's continuation lines one step past its parent.
                let inner = indent.map_or(INDENT, |i| i + INDENT);
                self.scalar(scalar, ctx, inner);
            }
        }
    }

    fn scalar(&mut self, value: &Value, ctx: Ctx, indent: usize) {
        let text = match value {
            Value::String(s) => s,
            other => {
                // Null, booleans and numbers: SnakeYAML writes them plain, as their text.
                let text = other.scalar_text().unwrap_or("null");
                let chars: Vec<char> = text.chars().collect();
                self.write_plain(&chars);
                return;
            }
        };
        let chars: Vec<char> = text.chars().collect();
        // Quoted scalars fold at the width, except in a simple key, which must stay on its line.
        let split = !ctx.simple_key;
        match choose_style(&chars, text, ctx.simple_key) {
            Style::Plain => self.write_plain(&chars),
            Style::SingleQuoted => self.write_single_quoted(&chars, split, indent),
            Style::DoubleQuoted => self.write_double_quoted(&chars, split, indent),
            Style::Literal => self.write_literal(&chars, indent),
        }
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        whitespace: bool,
        indentation: bool,
    ) {
        if !self.whitespace && need_whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indentation;
        self.column += indicator.encode_utf16().count();
        self.out.push_str(indicator);
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            for _ in self.column..indent {
                self.out.push(' ');
            }
            self.column = indent;
        }
    }

    fn write_line_break(&mut self) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push('\n');
    }

    /// Writes characters and counts them into the column.
    fn write_counted(&mut self, chars: &[char]) {
        self.column += utf16_len(chars);
        self.out.extend(chars.iter());
    }

    /// SnakeYAML's `writePlain` as Harness's version had it: it flushed text only at the end
    /// of the scalar (or at a line break), so its check for folding at a space never fired and
    /// long plain scalars stay on one line. Plain scalars here never hold a line break.
    fn write_plain(&mut self, t: &[char]) {
        if t.is_empty() {
            return;
        }
        if !self.whitespace {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = false;
        self.indention = false;
        self.write_counted(t);
    }

    /// SnakeYAML's `writeSingleQuoted` for a single-line string: folds at a single space once
    /// the line is past the width (never before the first or after the last character).
    fn write_single_quoted(&mut self, t: &[char], split: bool, indent: usize) {
        self.write_indicator("'", true, false, false);
        let n = t.len();
        let mut spaces = false;
        let mut start = 0usize;
        let mut end = 0usize;
        while end <= n {
            let ch = t.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column as isize > WIDTH
                        && split
                        && start != 0
                        && end != n
                    {
                        self.write_indent(indent);
                    } else {
                        self.write_counted(&t[start..end]);
                    }
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || c == '\'') && start < end {
                self.write_counted(&t[start..end]);
                start = end;
            }
            if ch == Some('\'') {
                self.out.push_str("''");
                self.column += 2;
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
            end += 1;
        }
        self.write_indicator("'", false, false, false);
    }

    /// SnakeYAML's `writeDoubleQuoted`: escapes, and folds with `\` past the width.
    fn write_double_quoted(&mut self, t: &[char], split: bool, indent: usize) {
        self.write_indicator("\"", true, false, false);
        let n = t.len();
        let mut start = 0usize;
        let mut end = 0usize;
        while end <= n {
            let ch = t.get(end).copied();
            let flush = match ch {
                None => true,
                Some(c) => {
                    matches!(
                        c,
                        '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}'
                    ) || !(' '..='~').contains(&c)
                }
            };
            if flush {
                if start < end {
                    self.write_counted(&t[start..end]);
                    start = end;
                }
                if let Some(c) = ch {
                    let data = escape(c);
                    self.column += data.encode_utf16().count();
                    self.out.push_str(&data);
                    start = end + 1;
                }
            }
            let pending = end as isize - start as isize;
            if 0 < end
                && end + 1 < n
                && (ch == Some(' ') || start >= end)
                && self.column as isize + pending > WIDTH
                && split
            {
                if start < end {
                    self.write_counted(&t[start..end]);
                    start = end;
                }
                self.out.push('\\');
                self.column += 1;
                self.write_indent(indent);
                self.whitespace = false;
                self.indention = false;
                if t.get(start) == Some(&' ') {
                    self.out.push('\\');
                    self.column += 1;
                }
            }
            end += 1;
        }
        self.write_indicator("\"", false, false, false);
    }

    /// SnakeYAML's `writeLiteral`: `|` with chomping and indentation hints, lines indented.
    fn write_literal(&mut self, t: &[char], indent: usize) {
        let hints = block_hints(t);
        self.write_indicator(&format!("|{hints}"), true, false, false);
        self.write_line_break();
        let n = t.len();
        let mut breaks = true;
        let mut start = 0usize;
        let mut end = 0usize;
        while end <= n {
            let ch = t.get(end).copied();
            if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    for &br in &t[start..end] {
                        if br == '\n' {
                            self.write_line_break();
                        } else {
                            self.out.push(br);
                            self.whitespace = true;
                            self.indention = true;
                            self.column = 0;
                        }
                    }
                    if ch.is_some() {
                        self.write_indent(indent);
                    }
                    start = end;
                }
            } else if ch.is_none_or(is_break) {
                self.out.extend(t[start..end].iter());
                if ch.is_none() {
                    self.write_line_break();
                }
                start = end;
            }
            if let Some(c) = ch {
                breaks = is_break(c);
            }
            end += 1;
        }
    }
}

/// SnakeYAML's `checkSimpleKey` for a scalar key. Its length check counts the resolved tag
/// (`!!str`, `!!int`, …) although an implicit tag is never written.
fn simple_key(key: &Value) -> bool {
    let (text, tag_len) = match key {
        Value::String(s) => (s.as_str(), "!!str".len()),
        Value::Int(t) => (t.as_str(), "!!int".len()),
        Value::Float(t) => (t.as_str(), "!!float".len()),
        Value::Bool(_) => (key.scalar_text().unwrap_or(""), "!!bool".len()),
        Value::Null => ("null", "!!null".len()),
        Value::Seq(_) | Value::Map(_) => return false,
    };
    !text.is_empty()
        && text.encode_utf16().count() + tag_len < MAX_SIMPLE_KEY
        && !text.chars().any(is_break)
}

/// Indentation indicator when the text starts with a space or a break; `-` to strip a missing
/// final break, `+` to keep more than one.
fn block_hints(t: &[char]) -> String {
    let mut hints = String::new();
    let Some(&first) = t.first() else {
        return hints;
    };
    if is_break(first) || first == ' ' {
        hints.push_str(&INDENT.to_string());
    }
    let last = t[t.len() - 1];
    if !is_break(last) {
        hints.push('-');
    } else if t.len() == 1 || is_break(t[t.len() - 2]) {
        hints.push('+');
    }
    hints
}

fn escape(c: char) -> String {
    let short = match c {
        '\0' => "0",
        '\u{7}' => "a",
        '\u{8}' => "b",
        '\t' => "t",
        '\n' => "n",
        '\u{B}' => "v",
        '\u{C}' => "f",
        '\r' => "r",
        '\u{1B}' => "e",
        '"' => "\"",
        '\\' => "\\",
        '\u{85}' => "N",
        '\u{A0}' => "_",
        '\u{2028}' => "L",
        '\u{2029}' => "P",
        _ => "",
    };
    if !short.is_empty() {
        return format!("\\{short}");
    }
    let code = u32::from(c);
    let printable =
        matches!(code, 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF) && c != '\u{FEFF}';
    if printable {
        c.to_string()
    } else if code <= 0xFF {
        format!("\\x{code:02x}")
    } else {
        format!("\\u{code:04x}")
    }
}

/// What SnakeYAML's `analyzeScalar` decides about a non-empty string.
#[derive(Debug)]
struct Analysis {
    multiline: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
    allow_block: bool,
}

fn analyze(t: &[char]) -> Analysis {
    if t.is_empty() {
        return Analysis {
            multiline: false,
            allow_block_plain: true,
            allow_single_quoted: true,
            allow_block: false,
        };
    }
    let n = t.len();
    let blank = |c: char| c == ' ' || c == '\t';
    let mut block_indicators = false;
    let mut line_breaks = false;
    let mut special = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;

    let starts_with = |p: &str| {
        let p: Vec<char> = p.chars().collect();
        t.starts_with(&p)
    };
    if starts_with("---") || starts_with("...") {
        block_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = n == 1 || blank(t[1]) || t[1] == '\0' || is_break(t[1]);
    let mut previous_space = false;
    let mut previous_break = false;

    for index in 0..n {
        let c = t[index];
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                block_indicators = true;
            }
            if (c == '?' || c == ':') && followed_by_whitespace {
                block_indicators = true;
            }
            if c == '-' && followed_by_whitespace {
                block_indicators = true;
            }
        } else {
            if c == ':' && followed_by_whitespace {
                block_indicators = true;
            }
            if c == '#' && preceded_by_whitespace {
                block_indicators = true;
            }
        }
        let is_line_break = is_break(c);
        if is_line_break {
            line_breaks = true;
        }
        if !(c == '\n' || (' '..='~').contains(&c)) {
            let code = u32::from(c);
            let unicode = matches!(code, 0xA0..=0xD7FF | 0xE000..=0xFFFD)
                && !matches!(c, '\u{FEFF}' | '\u{2028}' | '\u{2029}');
            if !unicode {
                // Tab, CR, NEL, controls and characters outside the BMP (which Java sees as
                // surrogates), as in SnakeYAML; and LS and PS, which SnakeYAML would write raw
                // but a YAML 1.2 reader does not take for line breaks.
                special = true;
            }
        }
        if c == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == n - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_line_break {
            if index == 0 {
                leading_break = true;
            }
            if index == n - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = blank(c) || c == '\0' || is_line_break;
        followed_by_whitespace =
            index + 2 >= n || blank(t[index + 2]) || t[index + 2] == '\0' || is_line_break;
    }

    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;
    let mut allow_block = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        allow_block_plain = false;
    }
    if trailing_space {
        allow_block = false;
    }
    if break_space {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special {
        allow_block_plain = false;
        allow_single_quoted = false;
        allow_block = false;
    }
    if block_indicators {
        allow_block_plain = false;
    }
    Analysis {
        multiline: line_breaks,
        allow_block_plain,
        allow_single_quoted,
        allow_block,
    }
}

/// SnakeYAML's `chooseScalarStyle` for a string in block context. The representer asks for a
/// literal block when the string has a line break, and for plain otherwise; plain is only
/// possible when the text would read back as a string.
fn choose_style(t: &[char], text: &str, simple_key: bool) -> Style {
    let a = analyze(t);
    let wants_literal = text.contains('\n');
    let empty = t.is_empty();
    if !wants_literal
        && resolve(text) == Resolved::Str
        && !(simple_key && (empty || a.multiline))
        && a.allow_block_plain
    {
        return Style::Plain;
    }
    if wants_literal {
        if !simple_key && a.allow_block {
            return Style::Literal;
        }
        return Style::DoubleQuoted;
    }
    if a.allow_single_quoted && !(simple_key && a.multiline) {
        return Style::SingleQuoted;
    }
    Style::DoubleQuoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(s: &str) -> Style {
        let t: Vec<char> = s.chars().collect();
        choose_style(&t, s, false)
    }

    #[test]
    fn styles_like_snakeyaml() {
        use Style::*;
        for (s, want) in [
            ("plain", Plain),
            ("has 'inner' quotes", Plain),
            ("say \"hi\"", Plain),
            ("${workflow.variables.x}", Plain),
            ("a:b", Plain),
            ("a,b[0]{x}", Plain),
            ("a#b", Plain),
            ("-foo", Plain),
            ("?foo", Plain),
            (":foo", Plain),
            ("café", Plain),
            ("", SingleQuoted),
            ("1", SingleQuoted),
            ("1.0", SingleQuoted),
            ("yes", SingleQuoted),
            ("null", SingleQuoted),
            ("~", SingleQuoted),
            ("2020-01-01", SingleQuoted),
            ("*/5 * * * *", SingleQuoted),
            ("@timestamp", SingleQuoted),
            ("%PATH%", SingleQuoted),
            ("a: b", SingleQuoted),
            ("a:", SingleQuoted),
            ("a #b", SingleQuoted),
            (" lead", SingleQuoted),
            ("trail ", SingleQuoted),
            ("- x", SingleQuoted),
            ("-", SingleQuoted),
            ("---x", SingleQuoted),
            ("it's: here", SingleQuoted),
            ("tab\there", DoubleQuoted),
            ("emoji 😀", DoubleQuoted),
            ("line1\nline2", Literal),
            ("line1 \nline2", DoubleQuoted),
            ("line1\nline2 ", DoubleQuoted),
            ("crlf\r\nline", DoubleQuoted),
            ("  indented\nnext", Literal),
            ("a\n  b", Literal),
        ] {
            assert_eq!(style(s), want, "{s:?}");
        }
    }

    #[test]
    fn block_hints_like_snakeyaml() {
        let h = |s: &str| block_hints(&s.chars().collect::<Vec<_>>());
        assert_eq!(h("a\nb"), "-");
        assert_eq!(h("a\nb\n"), "");
        assert_eq!(h("a\nb\n\n"), "+");
        assert_eq!(h(" a\nb"), "2-");
        assert_eq!(h("\na"), "2-");
    }
}

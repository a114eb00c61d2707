//! YAML 1.1 implicit typing of plain scalars, exactly as SnakeYAML's `Resolver` applies it.
//!
//! SnakeYAML picks the candidate patterns by the scalar's first character, then tries them in
//! registration order (bool, int, float, merge, null, timestamp, value, yaml), then the
//! patterns registered for any first character (null, empty). The first character matters:
//! the float pattern alone would accept `_1`, but it is only tried for `-+0123456789.`.
//! The emitter uses the same function to decide whether a string needs quotes: a string that
//! resolves to anything but `Str` would read back as another type, so SnakeYAML quotes it.

/// The type SnakeYAML's resolver gives a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Bool(bool),
    Int,
    Float,
    Null,
    /// `<<`: a merge key in a mapping, a string anywhere else.
    Merge,
    /// A date or date-time; we keep it as a string, as Harness's string fields do.
    Timestamp,
    /// `=`, `!`, `&`, `*`: tags SnakeYAML registers but that mean nothing to us.
    Other,
    Str,
}

/// Resolves a plain scalar's text.
pub(crate) fn resolve(s: &str) -> Resolved {
    let Some(first) = s.chars().next() else {
        return Resolved::Null;
    };
    if "yYnNtTfFoO".contains(first)
        && let Some(b) = bool_value(s)
    {
        return Resolved::Bool(b);
    }
    if "-+0123456789".contains(first) && is_int(s) {
        return Resolved::Int;
    }
    if "-+0123456789.".contains(first) && is_float(s) {
        return Resolved::Float;
    }
    if s == "<<" {
        return Resolved::Merge;
    }
    if is_null(s) {
        return Resolved::Null;
    }
    if first.is_ascii_digit() && is_timestamp(s) {
        return Resolved::Timestamp;
    }
    if matches!(s, "=" | "!" | "&" | "*") {
        return Resolved::Other;
    }
    Resolved::Str
}

fn bool_value(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// `~|null|Null|NULL| ` (SnakeYAML's null pattern includes a single space).
fn is_null(s: &str) -> bool {
    matches!(s, "~" | "null" | "Null" | "NULL" | " ")
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all_nonempty(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(ok)
}

/// `(?::[0-5]?[0-9])+` consumed entirely.
fn is_sexagesimal_tail(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    s.split(':').skip(1).all(|part| {
        let b = part.as_bytes();
        match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
            _ => false,
        }
    }) && s.starts_with(':')
}

/// `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ |
/// [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+`
pub(crate) fn is_int(s: &str) -> bool {
    let body = strip_sign(s);
    if let Some(rest) = body.strip_prefix("0b") {
        return all_nonempty(rest, |c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(rest) = body.strip_prefix("0x") {
        return all_nonempty(rest, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if body == "0" {
        return true;
    }
    if let Some(rest) = body.strip_prefix('0') {
        return all_nonempty(rest, |c| (b'0'..=b'7').contains(&c) || c == b'_');
    }
    let b = body.as_bytes();
    if b.is_empty() || !(b'1'..=b'9').contains(&b[0]) {
        return false;
    }
    let digits_end = b[1..]
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'_'))
        .map_or(b.len(), |p| p + 1);
    digits_end == b.len() || is_sexagesimal_tail(&body[digits_end..])
}

/// `[-+]?(\.[0-9]+|[0-9_]+(\.[0-9_]*)?)([eE][-+]?[0-9]+)? |
/// [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)`
pub(crate) fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let body = strip_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    is_float_decimal(body) || is_float_sexagesimal(body)
}

fn is_float_decimal(body: &str) -> bool {
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let digits = strip_sign(exp);
        if !all_nonempty(digits, |c| c.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(frac) = mantissa.strip_prefix('.') {
        return all_nonempty(frac, |c| c.is_ascii_digit());
    }
    let (int_part, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    all_nonempty(int_part, |c| c.is_ascii_digit() || c == b'_')
        && frac.is_none_or(|f| f.bytes().all(|c| c.is_ascii_digit() || c == b'_'))
}

fn is_float_sexagesimal(body: &str) -> bool {
    let Some((head, frac)) = body.rsplit_once('.') else {
        return false;
    };
    if !frac.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return false;
    }
    let b = head.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return false;
    }
    let digits_end = b[1..]
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'_'))
        .map_or(b.len(), |p| p + 1);
    is_sexagesimal_tail(&head[digits_end..])
}

/// `[0-9]{4}-[0-9]{2}-[0-9]{2}` or a date-time:
/// `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?
/// ([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?`
pub(crate) fn is_timestamp(s: &str) -> bool {
    let mut p = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    if !p.digits(4, 4) || !p.eat(b'-') {
        return false;
    }
    // Date only: exactly two digits each.
    {
        let mut q = Cursor { s: p.s, i: p.i };
        if q.digits(2, 2) && q.eat(b'-') && q.digits(2, 2) && q.done() {
            return true;
        }
    }
    if !(p.digits(1, 2) && p.eat(b'-') && p.digits(1, 2)) {
        return false;
    }
    if !(p.eat(b'T') || p.eat(b't')) {
        let before = p.i;
        while p.eat(b' ') || p.eat(b'\t') {}
        if p.i == before {
            return false;
        }
    }
    if !(p.digits(1, 2) && p.eat(b':') && p.digits(2, 2) && p.eat(b':') && p.digits(2, 2)) {
        return false;
    }
    if p.eat(b'.') {
        while p.digit() {}
    }
    if p.done() {
        return true;
    }
    while p.eat(b' ') || p.eat(b'\t') {}
    if p.eat(b'Z') {
        return p.done();
    }
    if !(p.eat(b'-') || p.eat(b'+')) || !p.digits(1, 2) {
        return false;
    }
    if p.eat(b':') && !p.digits(2, 2) {
        return false;
    }
    p.done()
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn digit(&mut self) -> bool {
        if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` digits, greedily (the regexes involved never need to back off:
    /// each digit run is followed by a non-digit).
    fn digits(&mut self, min: usize, max: usize) -> bool {
        let mut n = 0;
        while n < max && self.digit() {
            n += 1;
        }
        n >= min
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// The value of an integer's text, for [`super::Value::as_i64`].
pub(crate) fn int_value(text: &str) -> Option<i64> {
    if !is_int(text) {
        return None;
    }
    let negative = text.starts_with('-');
    let body: String = strip_sign(text).chars().filter(|c| *c != '_').collect();
    let magnitude: i128 = if let Some(bin) = body.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if body.contains(':') {
        body.split(':').try_fold(0i128, |acc, part| {
            Some(acc.checked_mul(60)? + part.parse::<i128>().ok()?)
        })?
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<i128>().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// The value of a float's text, for [`super::Value::as_f64`].
pub(crate) fn float_value(text: &str) -> Option<f64> {
    if !is_float(text) {
        return None;
    }
    let negative = text.starts_with('-');
    let body: String = strip_sign(text).chars().filter(|c| *c != '_').collect();
    let magnitude = match body.as_str() {
        ".inf" | ".Inf" | ".INF" => f64::INFINITY,
        ".nan" | ".NaN" | ".NAN" => f64::NAN,
        b if b.contains(':') => {
            let (whole, frac) = b.rsplit_once('.')?;
            let base = whole.split(':').try_fold(0f64, |acc, part| {
                Some(acc * 60.0 + part.parse::<f64>().ok()?)
            })?;
            base + format!("0.{frac}").parse::<f64>().ok()?
        }
        b => b.parse::<f64>().ok()?,
    };
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_snakeyaml() {
        for (s, want) in [
            ("", Resolved::Null),
            ("~", Resolved::Null),
            ("null", Resolved::Null),
            ("NULL", Resolved::Null),
            ("nULL", Resolved::Str),
            (" ", Resolved::Null),
            ("yes", Resolved::Bool(true)),
            ("Off", Resolved::Bool(false)),
            ("oN", Resolved::Str),
            ("y", Resolved::Str),
            ("0", Resolved::Int),
            ("-0", Resolved::Int),
            ("+12", Resolved::Int),
            ("0755", Resolved::Int),
            ("089", Resolved::Float),
            ("0x1F", Resolved::Int),
            ("0b101", Resolved::Int),
            ("1_000", Resolved::Int),
            ("190:20:30", Resolved::Int),
            ("1:60", Resolved::Str),
            ("1.0", Resolved::Float),
            ("1.", Resolved::Float),
            (".5", Resolved::Float),
            ("1e5", Resolved::Float),
            ("1.5E-3", Resolved::Float),
            ("_1", Resolved::Str),
            ("1_", Resolved::Int),
            ("._1", Resolved::Str),
            ("-.inf", Resolved::Float),
            (".NaN", Resolved::Float),
            ("-.nan", Resolved::Str),
            ("190:20:30.15", Resolved::Float),
            ("1.2.3", Resolved::Str),
            ("2020-01-01", Resolved::Timestamp),
            ("2020-1-1", Resolved::Str),
            ("2001-12-14t21:59:43.10-05:00", Resolved::Timestamp),
            ("2001-12-14 21:59:43.10 -5", Resolved::Timestamp),
            ("2001-12-15 2:59:43.10", Resolved::Timestamp),
            ("2001-12-15T02:59:43.1Z", Resolved::Timestamp),
            ("<<", Resolved::Merge),
            ("=", Resolved::Other),
            ("1.0.0", Resolved::Str),
            ("v1", Resolved::Str),
            ("-", Resolved::Str),
            ("e5", Resolved::Str),
        ] {
            assert_eq!(resolve(s), want, "{s:?}");
        }
    }

    #[test]
    fn float_values() {
        assert_eq!(float_value("1.5"), Some(1.5));
        assert_eq!(float_value("-1_000.25"), Some(-1000.25));
        assert_eq!(float_value("1e3"), Some(1000.0));
        assert_eq!(float_value("1."), Some(1.0));
        assert_eq!(float_value("-.inf"), Some(f64::NEG_INFINITY));
        assert_eq!(float_value("1:30.5"), Some(90.5));
        assert!(float_value(".nan").is_some_and(f64::is_nan));
        assert_eq!(float_value("abc"), None);
    }

    #[test]
    fn int_values() {
        assert_eq!(int_value("0x1F"), Some(31));
        assert_eq!(int_value("0755"), Some(493));
        assert_eq!(int_value("-1_000"), Some(-1000));
        assert_eq!(int_value("1:30"), Some(90));
        assert_eq!(int_value("0b11"), Some(3));
        assert_eq!(int_value("99999999999999999999"), None);
    }
}

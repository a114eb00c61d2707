//! Readable tables and key-value listings for the terminal, and the one way to standard
//! output.

/// Writes to standard output. A reader that has gone away (`reposync sync activity | head -1`)
/// ends the command quietly and successfully, as it ends `cat`, instead of a panic; any other
/// failure to write is reported on standard error.
pub fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(error) = std::io::stdout().lock().write_fmt(text) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// `println!` through [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// Prints rows under headers, each column as wide as its widest cell on a terminal: an emoji
/// or a CJK character takes two columns, a combining mark none.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    outln!("{}", render_table(headers, rows));
}

fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(display_width(cell));
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - display_width(c))))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![line(
        &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    )];
    lines.extend(rows.iter().map(|row| line(row)));
    lines.join("\n")
}

/// How many terminal columns `text` takes.
fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Columns of one character: 0 for combining marks, zero-width characters and variation
/// selectors; 2 for East Asian wide and full-width characters and emoji pictographs; 1 else.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F | 0x200B..=0x200F | 0x20D0..=0x20FF | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Prints `key: value` lines, aligned, skipping empty values.
pub fn fields(pairs: &[(&str, Option<String>)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in pairs {
        if let Some(value) = value {
            outln!("{key:<width$}  {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stay_aligned_with_wide_characters() {
        let table = render_table(
            &["NAME", "KIND"],
            &[
                vec!["ship \u{1F680}".into(), "a".into()],
                vec!["日本".into(), "b".into()],
                vec!["plain".into(), "c".into()],
            ],
        );
        let columns: Vec<usize> = table
            .lines()
            .map(|line| {
                let before = &line[..line.rfind(' ').unwrap_or(0) + 1];
                display_width(before)
            })
            .collect();
        assert!(
            columns.windows(2).all(|w| w[0] == w[1]),
            "{table}\n{columns:?}"
        );
        assert_eq!(display_width("ship \u{1F680}"), 7);
        assert_eq!(display_width("e\u{301}"), 1);
    }
}

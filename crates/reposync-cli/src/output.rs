//! How every command prints: the one way to standard output, the output format (`-o
//! table|wide|json|yaml`), tables and key-value listings for the terminal, and times, sizes
//! and durations as tables show them.

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

/// Copies `content` to standard output as it is read (a fetched file's bytes), with the same
/// handling of a reader that has gone away as [`write_stdout`].
pub fn copy_to_stdout(mut content: impl std::io::Read) -> anyhow::Result<u64> {
    let mut stdout = std::io::stdout().lock();
    match std::io::copy(&mut content, &mut stdout) {
        Ok(copied) => {
            std::io::Write::flush(&mut stdout)?;
            Ok(copied)
        }
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => Err(anyhow::anyhow!("cannot write to standard output: {error}")),
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

/// How a command prints what the server answered: `-o table|wide|json|yaml` (`--json` is
/// `-o json`). Every command asks here rather than deciding for itself, so that one flag
/// means the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Columns for reading: times in local time, commit ids shortened, what does not fit a
    /// terminal left out.
    #[default]
    Table,
    /// The table with the columns it leaves out (ids, full commit ids, more times, webhook
    /// URLs, selectors, paths).
    Wide,
    /// The API's JSON, as the server sent it.
    Json,
    /// The same data as `json`, written as YAML.
    Yaml,
}

impl OutputFormat {
    /// Whether the API's data is printed as it came (JSON or YAML) rather than for reading.
    pub fn is_data(self) -> bool {
        matches!(self, OutputFormat::Json | OutputFormat::Yaml)
    }
}

/// Prints the API's answer as data: YAML for `-o yaml`, JSON otherwise.
pub fn data(format: OutputFormat, value: &impl serde::Serialize) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => out!("{}", to_yaml(&serde_json::to_value(value)?)),
        OutputFormat::Json | OutputFormat::Table | OutputFormat::Wide => {
            outln!("{}", serde_json::to_string_pretty(value)?)
        }
    }
    Ok(())
}

/// Prints a listing: the API's data for `-o json|yaml`; otherwise the answer read as `T` and
/// handed to `print_table` with the format, which decides between the table's columns and the
/// wide ones.
pub fn listing<T: serde::de::DeserializeOwned>(
    format: OutputFormat,
    answer: serde_json::Value,
    print_table: impl FnOnce(T, OutputFormat),
) -> anyhow::Result<()> {
    if format.is_data() {
        return data(format, &answer);
    }
    print_table(reposync_api::decode(answer)?, format);
    Ok(())
}

/// JSON as YAML, through the model's emitter (the one that writes the configuration files),
/// so that strings YAML would read as something else (`yes`, `1.0`, `null`, a leading `*`)
/// are quoted by the same rules everywhere.
pub fn to_yaml(value: &serde_json::Value) -> String {
    use reposync_model::yaml::{Document, emit};
    emit(&Document::new(yaml_node(value)))
}

fn yaml_node(value: &serde_json::Value) -> reposync_model::yaml::Node {
    use reposync_model::yaml::{Mapping, Node, Value};
    let value = match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(Value::float)
            .unwrap_or_else(|| Value::string(n.to_string())),
        serde_json::Value::Number(n) => Value::Int(n.to_string()),
        serde_json::Value::String(s) => Value::string(s.clone()),
        serde_json::Value::Array(items) => Value::Seq(items.iter().map(yaml_node).collect()),
        serde_json::Value::Object(entries) => {
            let mut mapping = Mapping::new();
            for (key, item) in entries {
                mapping.insert(key.clone(), yaml_node(item));
            }
            Value::Map(mapping)
        }
    };
    Node::new(value)
}

/// The offset tables show times in: the local one, read once at start, or UTC when it could
/// not be read.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Local(time::UtcOffset),
    UnknownSoUtc,
}

static ZONE: std::sync::OnceLock<Zone> = std::sync::OnceLock::new();

/// Reads the local offset (`TZ` honoured) for [`local_time`]. It must run before any other
/// thread starts: the C library's time-zone state is not safe to read while another thread
/// may change the environment, so the `time` crate refuses in a multi-threaded process, and
/// the tokio runtime starts threads. The offset is today's: a time on the other side of a
/// daylight-saving change is shown in today's offset.
pub fn read_local_offset() {
    let zone = match time::UtcOffset::current_local_offset() {
        Ok(offset) => Zone::Local(offset),
        Err(_) => Zone::UnknownSoUtc,
    };
    let _ = ZONE.set(zone);
}

/// A time from the API (RFC 3339, `2026-12-07T08:14:03.482Z`) as every table shows times:
/// local time to the whole second, `2026-12-07 09:14:03`, with ` UTC` after it when the local
/// offset is unknown. Exact values are for `-o json|yaml`. Text that is not RFC 3339 is shown
/// as it is.
pub fn local_time(api_time: &str) -> String {
    time_in(api_time, ZONE.get().copied().unwrap_or(Zone::UnknownSoUtc))
}

fn time_in(api_time: &str, zone: Zone) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(api_time, &Rfc3339) else {
        return api_time.to_owned();
    };
    let (offset, suffix) = match zone {
        Zone::Local(offset) => (offset, ""),
        Zone::UnknownSoUtc => (time::UtcOffset::UTC, " UTC"),
    };
    // Only a time at the very edge of year 9999 has no local equivalent.
    let Some(at) = at.checked_to_offset(offset) else {
        return api_time.to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{suffix}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// [`local_time`] of an optional time, `-` for none.
pub fn local_time_or_dash(api_time: Option<&str>) -> String {
    api_time.map_or_else(|| "-".to_owned(), local_time)
}

/// A number of bytes as tables show sizes: `532 B`, `47.1 KiB`, `1.2 MiB`, in powers of
/// 1024 to one decimal. Exact values are for `-o json|yaml`.
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let (mut unit, mut scale) = (0, 1_u64);
    while unit < UNITS.len() - 1 && bytes / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    // Tenths of the unit, rounded, in integers: no float to print.
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// A duration in milliseconds as tables show durations: `850 ms` under a second, `1.2 s`
/// under a minute, `3m 05s` beyond.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{}.{} s", ms / 1_000, ms % 1_000 / 100),
        _ => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

/// A column of a table: shown always, or only with `-o wide`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    header: &'static str,
    wide_only: bool,
}

/// A column every table shows.
pub const fn column(header: &'static str) -> Column {
    Column {
        header,
        wide_only: false,
    }
}

/// A column only `-o wide` shows: what the table drops to fit a terminal.
pub const fn wide_column(header: &'static str) -> Column {
    Column {
        header,
        wide_only: true,
    }
}

/// Prints rows (one cell per column, wide ones included) under their headers, with the
/// wide-only columns when `format` is [`OutputFormat::Wide`].
pub fn table_in(format: OutputFormat, columns: &[Column], rows: &[Vec<String>]) {
    let wide = format == OutputFormat::Wide;
    let shown: Vec<usize> = (0..columns.len())
        .filter(|&i| wide || !columns[i].wide_only)
        .collect();
    let headers: Vec<&str> = shown.iter().map(|&i| columns[i].header).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            shown
                .iter()
                .map(|&i| row.get(i).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    table(&headers, &rows);
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
    fn times_are_local_to_the_second_and_anything_else_is_kept() {
        let plus_two = Zone::Local(time::UtcOffset::from_hms(2, 0, 0).expect("offset"));
        assert_eq!(
            time_in("2026-12-07T07:14:03.999Z", plus_two),
            "2026-12-07 09:14:03"
        );
        assert_eq!(
            time_in("2026-12-31T23:30:00+00:00", plus_two),
            "2027-01-01 01:30:00"
        );
        assert_eq!(
            time_in("2026-12-07T09:14:03+02:00", Zone::UnknownSoUtc),
            "2026-12-07 07:14:03 UTC",
            "UTC, and said, when the local offset is unknown"
        );
        assert_eq!(time_in("yesterday", plus_two), "yesterday");
        assert_eq!(
            time_in("9999-12-31T23:30:00Z", plus_two),
            "9999-12-31T23:30:00Z",
            "no local time past year 9999, and no panic"
        );
        assert_eq!(local_time_or_dash(None), "-");
    }

    #[test]
    fn sizes_and_durations_read_at_a_glance() {
        assert_eq!(byte_size(0), "0 B");
        assert_eq!(byte_size(1023), "1023 B");
        assert_eq!(byte_size(1024), "1.0 KiB");
        assert_eq!(byte_size(48_213), "47.1 KiB");
        assert_eq!(byte_size(5 * 1024 * 1024 + 1024 * 1024 / 4), "5.3 MiB");
        assert_eq!(byte_size(u64::MAX), "16.0 EiB");
        assert_eq!(duration_ms(0), "0 ms");
        assert_eq!(duration_ms(999), "999 ms");
        assert_eq!(duration_ms(1_240), "1.2 s");
        assert_eq!(duration_ms(59_999), "59.9 s");
        assert_eq!(duration_ms(185_000), "3m 05s");
    }

    #[test]
    fn yaml_quotes_what_would_read_as_another_type_and_parses_back() {
        let value = serde_json::json!({
            "items": [{"name": "yes", "count": 3, "ratio": 0.5, "none": null,
                       "text": "a: b\nc", "empty": [], "star": "*x", "ok": true}]
        });
        let yaml = to_yaml(&value);
        assert!(yaml.contains("name: 'yes'"), "{yaml}");
        let mut parser = saphyr_parser::Parser::new_from_str(&yaml);
        let mut scalars = Vec::new();
        while let Some(Ok((event, _))) = parser.next_event() {
            if let saphyr_parser::Event::Scalar(text, style, ..) = event {
                scalars.push((text.to_string(), style));
            }
        }
        assert!(
            scalars
                .iter()
                .any(|(t, s)| t == "yes" && *s != saphyr_parser::ScalarStyle::Plain),
            "{scalars:?}"
        );
        assert!(scalars.iter().any(|(t, _)| t == "a: b\nc"), "{scalars:?}");
        assert!(scalars.iter().any(|(t, _)| t == "*x"), "{scalars:?}");
    }

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

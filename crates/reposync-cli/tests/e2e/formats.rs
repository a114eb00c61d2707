//! How listings print: `-o table|wide|json|yaml` (`--json` is `-o json`), and times in local
//! time to the second, as `TZ` says.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use crate::common;

use common::{Run, TestApp};
use saphyr_parser::{Event, ScalarStyle};
use serde_json::{Value, json};

/// YAML read back as JSON, by YAML 1.2's core schema: plain scalars that look like numbers,
/// booleans or null are those; quoted ones are strings.
fn yaml_to_json(text: &str) -> Value {
    let mut events = saphyr_parser::Parser::new_from_str(text)
        .map(|event| event.unwrap_or_else(|e| panic!("not YAML ({e}): {text}")).0)
        .filter(|event| {
            !matches!(
                event,
                Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart(_)
                    | Event::DocumentEnd
            )
        })
        .peekable();
    fn node<'a>(events: &mut std::iter::Peekable<impl Iterator<Item = Event<'a>>>) -> Value {
        match events.next().expect("a node") {
            Event::Scalar(text, ScalarStyle::Plain, ..) => match text.as_ref() {
                "null" | "~" | "" => Value::Null,
                "true" => json!(true),
                "false" => json!(false),
                plain => plain
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| plain.parse::<f64>().map(Value::from))
                    .unwrap_or_else(|_| Value::String(plain.to_owned())),
            },
            Event::Scalar(text, ..) => Value::String(text.into_owned()),
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                while !matches!(events.peek(), Some(Event::SequenceEnd)) {
                    items.push(node(events));
                }
                events.next();
                Value::Array(items)
            }
            Event::MappingStart(..) => {
                let mut entries = serde_json::Map::new();
                while !matches!(events.peek(), Some(Event::MappingEnd)) {
                    let Value::String(key) = node(events) else {
                        panic!("a key that is not a string");
                    };
                    entries.insert(key, node(events));
                }
                events.next();
                Value::Object(entries)
            }
            other => panic!("unexpected YAML event {other:?}"),
        }
    }
    node(&mut events)
}

/// The header line of a table, split into its column names.
fn headers(run: &Run) -> Vec<String> {
    let first = run.stdout.lines().next().unwrap_or_default();
    first
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn listings_print_as_table_wide_json_and_yaml() {
    let app = TestApp::spawn();
    // `yes` would read back as a boolean if it were written plain.
    app.cli(
        &["secret", "create", "yes", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    app.cli(&["secret", "generate-ssh-key", "deploy"], None)
        .ok();

    let json = app.cli(&["secret", "list", "-o", "json"], None).ok().json();
    assert_eq!(json["items"].as_array().map(Vec::len), Some(2), "{json:#}");
    let alias = app.cli(&["secret", "list", "--json"], None).ok().json();
    assert_eq!(alias, json, "--json is -o json");

    let yaml = app.cli(&["secret", "list", "-o", "yaml"], None);
    assert!(yaml.ok().stdout.contains("name: 'yes'"), "{}", yaml.stdout);
    assert_eq!(
        yaml_to_json(&yaml.stdout),
        json,
        "YAML holds the same data as JSON:\n{}",
        yaml.stdout
    );

    let table = app.cli(&["secret", "list"], None);
    let wide = app.cli(&["secret", "list", "-o", "wide"], None);
    let (table_columns, wide_columns) = (headers(table.ok()), headers(wide.ok()));
    assert!(
        wide_columns.len() > table_columns.len()
            && table_columns.iter().all(|c| wide_columns.contains(c)),
        "wide adds columns: {table_columns:?} → {wide_columns:?}"
    );
    assert!(
        wide_columns.contains(&"CREATED".to_owned()),
        "{wide_columns:?}"
    );
    assert!(wide.stdout.contains("ED25519"), "{}", wide.stdout);
    assert!(!table.stdout.contains("ED25519"), "{}", table.stdout);

    // Every listing takes -o; a few more, with data or without.
    for listing in [
        &["connector", "list"][..],
        &["app", "list"],
        &["sync", "status"],
        &["sync", "activity"],
        &["sync", "errors"],
        &["delegate", "list"],
        &["delegate-token", "list"],
        &["webhook", "deliveries"],
    ] {
        let json = app
            .cli(&[listing, &["-o", "json"]].concat(), None)
            .ok()
            .json();
        let yaml = app.cli(&[listing, &["-o", "yaml"]].concat(), None);
        assert_eq!(yaml_to_json(&yaml.ok().stdout), json, "{listing:?}");
        app.cli(&[listing, &["-o", "wide"]].concat(), None).ok();
    }

    let run = app.cli(&["secret", "list", "--json", "-o", "yaml"], None);
    assert!(
        run.fails().stderr.contains("--json") && run.stderr.contains("-o"),
        "{}",
        run.stderr
    );
    let run = app.cli(&["secret", "list", "-o", "xml"], None);
    assert!(run.fails().stderr.contains("table"), "{}", run.stderr);
}

/// The time a listing shows for `updated_at`, in a time zone `TZ` names.
fn shown_time(app: &TestApp, tz: &str) -> String {
    let run = app.cli_with_env(&["secret", "list"], None, &[("TZ", tz)]);
    let row = run.ok().stdout.lines().nth(1).expect("a row").to_owned();
    let at = row
        .split("  ")
        .map(str::trim)
        .find(|cell| cell.len() >= 19 && cell.as_bytes()[4] == b'-')
        .unwrap_or_else(|| panic!("no time in {row:?}"));
    at.to_owned()
}

#[test]
fn tables_show_local_time_to_the_second_as_tz_says() {
    use time::format_description::well_known::Rfc3339;
    let app = TestApp::spawn();
    app.cli(
        &["secret", "create", "tok", "--value-stdin"],
        Some("value-1234567"),
    )
    .ok();
    let exact = app.cli(&["secret", "list", "--json"], None).ok().json()["items"][0]["updated_at"]
        .as_str()
        .expect("updated_at")
        .to_owned();
    let at = time::OffsetDateTime::parse(&exact, &Rfc3339).expect("RFC 3339 in JSON");
    assert!(exact.contains('.') || exact.ends_with('Z'), "{exact}");
    let written = |offset_hours: i8| {
        let local = at.to_offset(time::UtcOffset::from_hms(offset_hours, 0, 0).expect("offset"));
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            local.year(),
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        )
    };
    assert_eq!(shown_time(&app, "UTC"), written(0));
    // POSIX inverts the sign: Etc/GMT-2 and `XYZ-2` are two hours east of UTC.
    assert_eq!(shown_time(&app, "XYZ-2"), written(2));
    if std::path::Path::new("/usr/share/zoneinfo/Etc/GMT-2").exists() {
        assert_eq!(shown_time(&app, "Etc/GMT-2"), written(2));
    }
    assert_eq!(shown_time(&app, "XYZ+5"), written(-5));
}

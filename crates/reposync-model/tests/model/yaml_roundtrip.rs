//! Property: for any tree, emitting is idempotent through a parse
//! (`emit(parse(emit(d))) == emit(d)`), and what is read back equals what was written.

use proptest::prelude::*;
use reposync_model::yaml::{Document, Limits, Mapping, Node, Value, emit, parse};

/// Strings chosen to hit every quoting rule: typed look-alikes, indicators, `: ` and ` #`,
/// edge spaces, quotes, escapes, Unicode, line breaks with and without trailing spaces.
fn tricky_string() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "",
        " ",
        "  ",
        "1",
        "0",
        "-1",
        "1.0",
        "1e3",
        ".5",
        "0x1F",
        "0755",
        "1_000",
        "12:30",
        "yes",
        "No",
        "ON",
        "off",
        "true",
        "False",
        "null",
        "Null",
        "~",
        "<<",
        "=",
        "2020-01-01",
        "2001-12-14 21:59:43.10 -5",
        "*/5 * * * *",
        "@team",
        "%PATH%",
        "!x",
        "&x",
        "*x",
        "|x",
        ">x",
        "'x'",
        "\"x\"",
        "#x",
        "- x",
        "-",
        "? x",
        ":x",
        "a: b",
        "a:",
        "a #b",
        "a#b",
        "it's",
        "${secrets.getValue(\"token\")}",
        "---",
        "...",
        "café",
        "😀",
        "a\tb",
        "a\rb",
        "\u{a0}x",
        "x\u{85}y",
        "x\u{2028}y",
        "\u{feff}",
        "\u{1}",
        "\n",
        "\n\n",
        "a\n",
        "a\n\n",
        " a\nb",
        "a \nb",
        "a\n b",
        "\na",
        "a\n\tb",
        "line one\nline two",
        "trailing \n",
    ])
    .prop_map(str::to_string);
    let chars = "[a-z0-9 :#'\"\\-?,\\[\\]{}*&!|>%@`~.\\\\\n\t_é😀]{0,30}";
    // Long runs of words so double- and single-quoted strings fold.
    let long = prop::collection::vec("[a-z:'#\"\t]{1,9}", 10..40).prop_map(|words| words.join(" "));
    let lines = prop::collection::vec("[a-z ]{0,12}", 1..6).prop_map(|lines| lines.join("\n"));
    prop_oneof![words, chars.prop_map(String::from), long, lines]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => tricky_string().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::int),
        1 => prop::sample::select(vec!["1.0", "-0.5", "256.0", "1.0E10", "2.5E-7", ".5", "1e3"])
            .prop_map(|t| Value::Float(t.to_string())),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

fn key() -> impl Strategy<Value = Node> {
    prop_oneof![
        6 => tricky_string().prop_map(Node::string),
        2 => "[a-zA-Z]{1,12}".prop_map(Node::string),
        1 => (0i64..100).prop_map(Node::int),
        1 => any::<bool>().prop_map(Node::bool),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    scalar()
        .prop_map(Node::new)
        .prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Node::seq),
                prop::collection::vec((key(), inner), 0..6).prop_map(|entries| {
                    let mut m = Mapping::new();
                    for (k, v) in entries {
                        m.insert_node(k, v);
                    }
                    Node::map(m)
                }),
            ]
        })
}

fn document() -> impl Strategy<Value = Document> {
    prop_oneof![
        // Harness files are mappings at the top.
        4 => prop::collection::vec((key(), tree()), 0..8).prop_map(|entries| {
            let mut m = Mapping::new();
            for (k, v) in entries {
                m.insert_node(k, v);
            }
            Document::from_mapping(m)
        }),
        1 => tree().prop_map(Document::new),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn emit_is_idempotent_and_values_survive(doc in document()) {
        let text = emit(&doc);
        let back = match parse(text.as_bytes(), &Limits::default()) {
            Ok(back) => back,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
        };
        prop_assert_eq!(&back, &doc, "read back differs:\n{}", text);
        prop_assert_eq!(emit(&back), text);
    }
}

//! The emitter's rules, one by one, each pinned to what Harness's SnakeYAML wrote. The
//! expected texts were checked against SnakeYAML with Harness's dumper options.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_model::yaml::{Document, Limits, Mapping, Node, Value, emit, parse};

fn one(key: &str, value: Node) -> String {
    let mut m = Mapping::new();
    m.insert(key, value);
    emit(&Document::from_mapping(m))
}

fn s(text: &str) -> Node {
    Node::string(text)
}

/// Emits, then checks the text reads back as the same value and writes the same again.
fn emits(key: &str, value: Node, want: &str) {
    let got = one(key, value.clone());
    assert_eq!(got, want);
    let back = parse(got.as_bytes(), &Limits::default()).expect("output parses");
    assert_eq!(
        back.root_map().expect("a mapping").get(key),
        Some(&value),
        "{got}"
    );
    assert_eq!(emit(&back), got);
}

#[test]
fn strings_that_read_as_another_type_are_single_quoted() {
    for text in [
        "1",
        "0",
        "-7",
        "1.5",
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
        "2020-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "<<",
        "=",
        ".inf",
    ] {
        emits("k", s(text), &format!("k: '{text}'\n"));
    }
    emits("harnessApiVersion", s("1.0"), "harnessApiVersion: '1.0'\n");
}

#[test]
fn strings_that_only_look_typed_stay_plain() {
    for text in [
        "y",
        "n",
        "1.0.0",
        "v1",
        "0o17",
        "1:60",
        "_1",
        "2020-1-1x",
        "nulls",
        "yes please",
    ] {
        emits("k", s(text), &format!("k: {text}\n"));
    }
}

#[test]
fn empty_string_is_two_single_quotes() {
    emits("value", s(""), "value: ''\n");
}

#[test]
fn leading_indicators_are_single_quoted() {
    for text in [
        "*/5 * * * *",
        "@team",
        "%PATH%",
        "&x",
        "!x",
        "|x",
        ">x",
        "'x",
        "\"x\"",
        "#x",
        ",x",
        "[x]",
        "{x}",
        "`x`",
        "- x",
        "-",
        "? x",
        "?",
        ": x",
        ":",
        "---",
        "...x",
    ] {
        let quoted = text.replace('\'', "''");
        emits("k", s(text), &format!("k: '{quoted}'\n"));
    }
}

#[test]
fn inner_indicators_that_do_not_matter_stay_plain() {
    for text in [
        "${secrets.getValue(\"x\")}",
        "it's",
        "say \"hi\"",
        "a:b",
        "http://x:8080/a#frag",
        "a,b",
        "a[0]",
        "x{{y}}",
        "-x",
        "?x",
        ":x",
        "a - b",
        "a ? b",
        "café",
        "a#b",
        "x @y",
    ] {
        emits("k", s(text), &format!("k: {text}\n"));
    }
}

#[test]
fn colon_space_hash_and_edge_spaces_are_single_quoted() {
    emits("k", s("a: b"), "k: 'a: b'\n");
    emits("k", s("ends with:"), "k: 'ends with:'\n");
    emits("k", s("a #b"), "k: 'a #b'\n");
    emits("k", s(" lead"), "k: ' lead'\n");
    emits("k", s("trail "), "k: 'trail '\n");
    emits("k", s(" "), "k: ' '\n");
    emits("k", s("it's: here"), "k: 'it''s: here'\n");
}

#[test]
fn special_characters_are_double_quoted_with_escapes() {
    emits("k", s("a\tb"), "k: \"a\\tb\"\n");
    emits("k", s("a\rb"), "k: \"a\\rb\"\n");
    emits("k", s("bell\u{7}"), "k: \"bell\\a\"\n");
    emits("k", s("ctl\u{1}"), "k: \"ctl\\x01\"\n");
    emits("k", s("nbsp\u{a0}\tx"), "k: \"nbsp\\_\\tx\"\n");
    emits("k", s("q\"\\\t"), "k: \"q\\\"\\\\\\t\"\n");
    // Characters outside the BMP were surrogate pairs to Java: special, but written as they are.
    emits("k", s("smile 😀"), "k: \"smile 😀\"\n");
}

#[test]
fn long_plain_strings_are_never_folded() {
    let long = "This workflow deploys the payments API to every production region and then runs the full smoke test suite against each of them";
    emits("description", s(long), &format!("description: {long}\n"));
}

#[test]
fn long_single_quoted_strings_fold_past_80_columns() {
    let long = "Deploys: the payments API to every production region and then runs the full smoke test suite";
    emits(
        "description",
        s(long),
        "description: 'Deploys: the payments API to every production region and then runs the\n  full smoke test suite'\n",
    );
}

#[test]
fn multi_line_strings_are_literal_blocks() {
    emits(
        "script",
        s("set -e\necho hi"),
        "script: |-\n  set -e\n  echo hi\n",
    );
    emits(
        "script",
        s("set -e\necho hi\n"),
        "script: |\n  set -e\n  echo hi\n",
    );
    emits(
        "script",
        s("set -e\necho hi\n\n"),
        "script: |+\n  set -e\n  echo hi\n\n",
    );
    emits(
        "script",
        s("  indented\nnext"),
        "script: |2-\n    indented\n  next\n",
    );
    emits(
        "script",
        s("\nleading break"),
        "script: |2-\n\n  leading break\n",
    );
    emits(
        "script",
        s("a\n\n  b\n\tc"),
        "script: \"a\\n\\n  b\\n\\tc\"\n",
    );
    emits(
        "script",
        s("a\n\n  b\nc"),
        "script: |-\n  a\n\n    b\n  c\n",
    );
}

#[test]
fn literal_blocks_indent_two_past_their_key() {
    let mut step = Mapping::new();
    step.insert("type", s("SHELL_SCRIPT"));
    let mut props = Mapping::new();
    props.insert("scriptString", s("echo one\necho two"));
    step.insert("properties", Node::map(props));
    let text = one("steps", Node::seq(vec![Node::map(step)]));
    assert_eq!(
        text,
        "steps:\n- type: SHELL_SCRIPT\n  properties:\n    scriptString: |-\n      echo one\n      echo two\n"
    );
}

#[test]
fn multi_line_strings_with_trailing_spaces_are_double_quoted_and_folded() {
    let script = "#!/bin/bash\nset -e \nNEW_KEY_ID=$(vault write -f -field=key_id transit/keys/payments/rotate)  \nROTATED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)\nexport NEW_KEY_ID ROTATED_AT";
    let want = concat!(
        "scriptString: \"#!/bin/bash\\nset -e \\nNEW_KEY_ID=$(vault write -f -field=key_id transit/keys/payments/rotate)\\\n",
        "  \\  \\nROTATED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)\\nexport NEW_KEY_ID ROTATED_AT\"\n",
    );
    emits("scriptString", s(script), want);
    // A fold that lands on a space keeps it with an escaped space on the next line.
    let text = "first line \nsecond line that is long enough to need folding before the eighty column mark here";
    emits(
        "k",
        s(text),
        "k: \"first line \\nsecond line that is long enough to need folding before the eighty\\\n  \\ column mark here\"\n",
    );
}

#[test]
fn collections_layout() {
    let mut inner = Mapping::new();
    inner.insert("name", s("x"));
    inner.insert("type", s("y"));
    let mut m = Mapping::new();
    m.insert("emptyList", Node::seq(vec![]));
    m.insert("emptyMap", Node::map(Mapping::new()));
    m.insert("list", Node::seq(vec![s("a"), s("")]));
    m.insert("items", Node::seq(vec![Node::map(inner.clone())]));
    m.insert("nested", Node::map(inner));
    m.insert(
        "lists",
        Node::seq(vec![Node::seq(vec![s("a"), s("b")]), Node::seq(vec![])]),
    );
    m.insert("nothing", Node::null());
    m.insert("flag", Node::bool(true));
    m.insert("count", Node::int(600000));
    m.insert("cpu", Node::new(Value::Float("256.0".into())));
    let text = emit(&Document::from_mapping(m));
    assert_eq!(
        text,
        "emptyList: []\nemptyMap: {}\nlist:\n- a\n- ''\nitems:\n- name: x\n  type: y\nnested:\n  name: x\n  type: y\nlists:\n- - a\n  - b\n- []\nnothing: null\nflag: true\ncount: 600000\ncpu: 256.0\n"
    );
}

#[test]
fn roots_other_than_mappings() {
    assert_eq!(
        emit(&Document::new(Node::seq(vec![s("a"), Node::int(1)]))),
        "- a\n- 1\n"
    );
    assert_eq!(emit(&Document::new(s("yes"))), "'yes'\n");
    assert_eq!(emit(&Document::new(Node::null())), "null\n");
    assert_eq!(emit(&Document::new(Node::map(Mapping::new()))), "{}\n");
    assert_eq!(emit(&Document::new(s("a\nb"))), "|-\n  a\n  b\n");
}

#[test]
fn non_string_keys() {
    let mut m = Mapping::new();
    m.insert_node(Node::int(1), s("one"));
    m.insert_node(Node::bool(false), s("no"));
    m.insert_node(Node::null(), s("nothing"));
    m.insert("1", s("string one"));
    assert_eq!(
        emit(&Document::from_mapping(m)),
        "1: one\nfalse: 'no'\nnull: nothing\n'1': string one\n"
    );
}

#[test]
fn keys_that_cannot_be_simple_use_the_explicit_form() {
    let mut m = Mapping::new();
    m.insert("", s("empty key"));
    m.insert("two\nlines", s("v"));
    let long = "k".repeat(123);
    m.insert(long.clone(), s("v"));
    let short = "k".repeat(122);
    m.insert(short.clone(), s("v"));
    let text = emit(&Document::from_mapping(m.clone()));
    assert_eq!(
        text,
        format!("? ''\n: empty key\n? |-\n  two\n  lines\n: v\n? {long}\n: v\n{short}: v\n")
    );
    let back = parse(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(back.root, Node::map(m));
}

#[test]
fn floats_keep_their_text() {
    for text in ["1.0", "256.0", "0.25", "1.0E10", "-2.5e-3", ".5"] {
        let doc = parse(format!("f: {text}\n").as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            doc.root_map().unwrap().get("f").unwrap().value,
            Value::Float(text.into())
        );
        assert_eq!(emit(&doc), format!("f: {text}\n"));
    }
    assert_eq!(Value::float(1.0), Some(Value::Float("1.0".into())));
    assert_eq!(Value::float(0.25), Some(Value::Float("0.25".into())));
    assert_eq!(Value::float(1e10), Some(Value::Float("1.0E10".into())));
    assert_eq!(Value::float(-2.5e-7), Some(Value::Float("-2.5E-7".into())));
    assert_eq!(Value::float(f64::NAN), None);
}

#[test]
fn file_ends_with_exactly_one_newline() {
    let text = one("a", s("b"));
    assert!(text.ends_with("b\n") && !text.ends_with("\n\n"));
    let text = one("a", s("x\ny\n"));
    assert!(text.ends_with("y\n") && !text.ends_with("\n\n"));
}

#[test]
fn emit_never_reorders() {
    let text = "type: X\nharnessApiVersion: '1.0'\nz: 1\na: null\n";
    let doc = parse(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(emit(&doc), text);
}

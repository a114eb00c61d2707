//! Reading: YAML 1.1 typing as SnakeYAML applied it, positions, aliases and merges, and the
//! mapping API the model code uses.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_model::yaml::{Limits, Mapping, Node, Value, emit, parse};

fn doc(text: &str) -> Mapping {
    parse(text.as_bytes(), &Limits::default())
        .expect("input parses")
        .root
        .as_map()
        .expect("a mapping")
        .clone()
}

#[test]
fn plain_scalars_resolve_like_yaml_1_1() {
    let m =
        doc("a: yes\nb: Off\nc: ~\nd:\ne: 0x1F\nf: 1.0\ng: 2020-01-01\nh: y\ni: 012\nj: NULL\n");
    let v = |k: &str| m.get(k).unwrap().value.clone();
    assert_eq!(v("a"), Value::Bool(true));
    assert_eq!(v("b"), Value::Bool(false));
    assert_eq!(v("c"), Value::Null);
    assert_eq!(v("d"), Value::Null);
    assert_eq!(v("e"), Value::Int("0x1F".into()));
    assert_eq!(v("f"), Value::Float("1.0".into()));
    // Dates stay strings (Harness's fields that hold them are strings).
    assert_eq!(v("g"), Value::String("2020-01-01".into()));
    assert_eq!(v("h"), Value::String("y".into()));
    assert_eq!(v("i"), Value::Int("012".into()));
    assert_eq!(m.get("i").unwrap().value.as_i64(), Some(10));
    assert_eq!(v("j"), Value::Null);
}

#[test]
fn quoted_and_block_scalars_are_strings() {
    let m = doc(
        "a: 'yes'\nb: \"1\"\nc: |\n  true\nd: !!str 12\ne: ! 12\nf: !<tag:yaml.org,2002:str> 13\n",
    );
    assert_eq!(m.get("f").unwrap().as_str(), Some("13"));
    assert_eq!(m.get("a").unwrap().as_str(), Some("yes"));
    assert_eq!(m.get("b").unwrap().as_str(), Some("1"));
    assert_eq!(m.get("c").unwrap().as_str(), Some("true\n"));
    assert_eq!(m.get("d").unwrap().as_str(), Some("12"));
    assert_eq!(m.get("e").unwrap().as_str(), Some("12"));
}

#[test]
fn yaml_1_1_spellings_normalise_when_written() {
    // SnakeYAML never wrote these plain, so they only come from hand-edited files; they keep
    // their type and take Harness's spelling.
    let text = "a: yes\nb: ~\nc:\nd: True\n";
    let out = emit(&parse(text.as_bytes(), &Limits::default()).unwrap());
    assert_eq!(out, "a: true\nb: null\nc: null\nd: true\n");
    // Quoted, they were strings and stay quoted.
    let text = "a: 'yes'\nb: '~'\nc: ''\nd: 'True'\n";
    assert_eq!(
        emit(&parse(text.as_bytes(), &Limits::default()).unwrap()),
        text
    );
}

#[test]
fn hand_written_styles_take_the_canonical_form() {
    let text = "a: \"plain\"\nb: >\n  folded\n  text\nc: [1, 'two', {d: e}]\n";
    let out = emit(&parse(text.as_bytes(), &Limits::default()).unwrap());
    assert_eq!(
        out,
        "a: plain\nb: |\n  folded text\nc:\n- 1\n- two\n- d: e\n"
    );
}

#[test]
fn positions_are_one_based() {
    let m = doc("harnessApiVersion: '1.0'\ntype: GIT\nnested:\n  url: https://x\nlist:\n- a\n");
    let (k, v) = m.get_entry("type").unwrap();
    assert_eq!((k.line, k.column), (2, 1));
    assert_eq!((v.line, v.column), (2, 7));
    let url = m
        .get("nested")
        .unwrap()
        .as_map()
        .unwrap()
        .get_entry("url")
        .unwrap();
    assert_eq!((url.0.line, url.0.column), (4, 3));
    assert_eq!((url.1.line, url.1.column), (4, 8));
    let a = &m.get("list").unwrap().as_seq().unwrap()[0];
    assert_eq!((a.line, a.column), (6, 3));
    // Columns count characters, not bytes.
    let m = doc("é: ü\n");
    let (k, v) = m.get_entry("é").unwrap();
    assert_eq!((k.column, v.column), (1, 4));
}

#[test]
fn aliases_expand_to_copies() {
    let m = doc("defaults: &d\n  timeout: 10\n  retries: 2\nfirst: *d\nsecond: *d\n");
    assert_eq!(m.get("first"), m.get("defaults"));
    assert_eq!(m.get("second"), m.get("defaults"));
    // The copy sits where the alias was.
    assert_eq!(m.get("first").unwrap().line, 4);
    let out = emit(&parse(b"a: &x 1\nb: *x\n", &Limits::default()).unwrap());
    assert_eq!(out, "a: 1\nb: 1\n");
}

#[test]
fn merge_keys_merge_and_explicit_keys_win() {
    let m = doc(
        "base: &b\n  image: nginx\n  replicas: 1\nextra: &e\n  port: 80\n  replicas: 9\nsvc:\n  name: web\n  <<: [*b, *e]\n  replicas: 3\n",
    );
    let svc = m.get("svc").unwrap().as_map().unwrap();
    let keys: Vec<&str> = svc.keys().filter_map(|k| k.as_str()).collect();
    assert_eq!(keys, ["name", "image", "port", "replicas"]);
    assert_eq!(svc.get("replicas").unwrap().value, Value::Int("3".into()));
    // A quoted `<<` is an ordinary key.
    let m = doc("'<<': x\n");
    assert_eq!(m.get("<<").unwrap().as_str(), Some("x"));
}

#[test]
fn crlf_and_bom_are_read() {
    let m = doc("\u{feff}a: 1\r\nb: two\r\n");
    assert_eq!(m.get("b").unwrap().as_str(), Some("two"));
}

#[test]
fn mapping_api_keeps_order() {
    let mut m = doc("harnessApiVersion: '1.0'\ntype: GIT\nurl: a\nbranch: main\n");
    assert_eq!(m.len(), 4);
    // Replacing keeps the key where it was.
    assert!(m.insert("url", Node::string("b")).is_some());
    assert!(m.insert("username", Node::string("me")).is_none());
    let keys: Vec<&str> = m.keys().filter_map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        ["harnessApiVersion", "type", "url", "branch", "username"]
    );
    assert_eq!(m.remove("branch").unwrap().as_str(), Some("main"));
    assert!(m.remove("branch").is_none());
    assert!(m.contains_key("url") && !m.contains_key("branch"));
    if let Some(n) = m.get_mut("username") {
        n.value = Value::string("you");
    }
    let text = emit(&reposync_model::yaml::Document::from_mapping(m));
    assert_eq!(
        text,
        "harnessApiVersion: '1.0'\ntype: GIT\nurl: b\nusername: you\n"
    );
}

#[test]
fn unknown_keys_survive_in_place() {
    let text = "harnessApiVersion: '1.0'\ntype: GIT\nfutureField:\n  nested: [1]\nurl: https://x\n";
    let mut d = parse(text.as_bytes(), &Limits::default()).unwrap();
    d.root_map_mut()
        .unwrap()
        .insert("url", Node::string("https://y"));
    assert_eq!(
        emit(&d),
        "harnessApiVersion: '1.0'\ntype: GIT\nfutureField:\n  nested:\n  - 1\nurl: https://y\n"
    );
}

#[test]
fn node_equality_ignores_positions() {
    let a = parse(b"a: [1, 2]\n", &Limits::default()).unwrap();
    let b = parse(b"\n\na:\n- 1\n- 2\n", &Limits::default()).unwrap();
    assert_eq!(a, b);
}

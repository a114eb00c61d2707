//! Every way a file can be refused, with the position the user is sent to.

use reposync_model::yaml::{Limits, YamlError, YamlErrorKind, parse};

fn fail(text: &[u8]) -> YamlError {
    match parse(text, &Limits::default()) {
        Ok(doc) => panic!("parsed, expected an error: {:?}", doc.root),
        Err(e) => e,
    }
}

#[test]
fn duplicate_key_points_at_the_second_key() {
    let e = fail(b"harnessApiVersion: '1.0'\ntype: GIT\nurl: a\nbranch: main\nurl: b\n");
    assert_eq!(e.kind, YamlErrorKind::DuplicateKey("url".into()));
    assert_eq!((e.line, e.column), (5, 1));
    assert_eq!(
        e.to_string(),
        "line 5, column 1: duplicate key `url` in the same mapping"
    );
}

#[test]
fn duplicate_key_in_a_nested_mapping() {
    let e = fail(b"phases:\n- name: a\n  steps: []\n  name: b\n");
    assert_eq!(e.kind, YamlErrorKind::DuplicateKey("name".into()));
    assert_eq!((e.line, e.column), (4, 3));
}

#[test]
fn quoted_and_plain_spellings_of_one_key_are_duplicates() {
    let e = fail(b"name: a\n'name': b\n");
    assert_eq!(e.kind, YamlErrorKind::DuplicateKey("name".into()));
    assert_eq!((e.line, e.column), (2, 1));
}

#[test]
fn keys_of_different_types_are_not_duplicates() {
    // `1` is an integer key and `'1'` a string key, as SnakeYAML sees them.
    parse(b"1: a\n'1': b\n", &Limits::default()).unwrap();
}

#[test]
fn invalid_utf8_reports_the_first_bad_byte() {
    let e = fail(b"name: ok\ndescription: caf\xc3\xa9 \xff\xfe\n");
    assert_eq!(e.kind, YamlErrorKind::InvalidUtf8);
    // Line 2; "description: café " is 18 characters, so the bad byte is the 19th.
    assert_eq!((e.line, e.column), (2, 19));
}

#[test]
fn truncated_utf8_sequence_at_the_end() {
    let e = fail(b"a: \xe2\x82");
    assert_eq!(e.kind, YamlErrorKind::InvalidUtf8);
    assert_eq!((e.line, e.column), (1, 4));
}

#[test]
fn too_large_is_refused_before_parsing() {
    let limits = Limits {
        max_file_bytes: 16,
        ..Limits::default()
    };
    // Not even valid YAML: the size check comes first.
    let e = parse(b"a: [unclosed and far too long", &limits).unwrap_err();
    assert_eq!(
        e.kind,
        YamlErrorKind::TooLarge {
            size: 29,
            limit: 16
        }
    );
    assert_eq!((e.line, e.column), (1, 1));
    // Exactly at the limit is fine.
    parse(b"a: 1234567890123", &limits).unwrap();
}

#[test]
fn default_limit_is_one_mebibyte() {
    let big = format!("a: {}\n", "x".repeat(1024 * 1024));
    let e = fail(big.as_bytes());
    assert!(matches!(
        e.kind,
        YamlErrorKind::TooLarge {
            limit: 1_048_576,
            ..
        }
    ));
}

fn billion_laughs() -> String {
    let mut text = String::from(
        "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for level in 1..=9 {
        let refs: Vec<String> = (0..10).map(|_| format!("*a{}", level - 1)).collect();
        text.push_str(&format!("a{level}: &a{level} [{}]\n", refs.join(", ")));
    }
    text
}

#[test]
fn billion_laughs_fails_fast() {
    // Fast by construction, not by a timing: the expansion stops at the node budget, at the
    // alias that would cross it, on one of the last levels. (Unbounded, it would never end.)
    let text = billion_laughs();
    let e = fail(text.as_bytes());
    assert_eq!(e.kind, YamlErrorKind::TooManyNodes);
    assert!(e.line >= 5, "{e}");
}

#[test]
fn a_small_node_budget_stops_even_modest_expansion() {
    let limits = Limits {
        max_nodes: 50,
        ..Limits::default()
    };
    let text = "base: &b {a: 1, b: 2, c: 3, d: 4, e: 5}\nx: [*b, *b, *b, *b, *b, *b]\n";
    let e = parse(text.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, YamlErrorKind::TooManyNodes);
    assert_eq!(e.line, 2);
    // Within budget, aliases are expanded copies.
    let doc = parse(text.as_bytes(), &Limits::default()).unwrap();
    let x = doc.root_map().unwrap().get("x").unwrap().as_seq().unwrap();
    assert_eq!(x.len(), 6);
    assert_eq!(
        x[5].as_map().unwrap().get("e").unwrap().value.as_i64(),
        Some(5)
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let e = fail(text.as_bytes());
    assert_eq!(e.kind, YamlErrorKind::TooDeep);
    assert_eq!((e.line, e.column), (1, 129));
    // Far deeper than the event parser's own bound (256 levels): refused there, as the same
    // error, without reading the rest.
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = fail(text.as_bytes());
    assert_eq!(e.kind, YamlErrorKind::TooDeep);
    assert_eq!((e.line, e.column), (1, 256));
    // Block nesting is bounded the same way.
    let block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    assert_eq!(
        fail(format!("{block}{}v: 1\n", "  ".repeat(200)).as_bytes()).kind,
        YamlErrorKind::TooDeep
    );
    let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
    parse(ok.as_bytes(), &Limits::default()).unwrap();
}

#[test]
fn aliases_count_toward_depth() {
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    let text = "a: &x [[[1]]]\nb: [*x]\n";
    let e = parse(text.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, YamlErrorKind::TooDeep);
    assert_eq!(e.line, 2);
}

#[test]
fn syntax_error_has_a_position() {
    let e = fail(b"harnessApiVersion: '1.0'\ntype: GIT\nurl: [https://x\nbranch: main\n");
    assert!(matches!(e.kind, YamlErrorKind::Syntax(_)), "{e}");
    assert!(e.line >= 3, "{e}");
    assert!(e.column >= 1);
    let e = fail(b"a: b: c\n");
    assert!(matches!(e.kind, YamlErrorKind::Syntax(_)), "{e}");
    assert_eq!((e.line, e.column), (1, 5), "{e}");
}

#[test]
fn unterminated_quote() {
    let e = fail(b"a: 'open\nb: 1\n");
    assert!(matches!(e.kind, YamlErrorKind::Syntax(_)), "{e}");
}

#[test]
fn tab_indentation_is_refused() {
    let e = fail(b"type: GIT\nkeyAuth:\n\tenabled: true\n");
    assert!(matches!(e.kind, YamlErrorKind::Syntax(_)), "{e}");
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn multiple_documents_are_refused() {
    let e = fail(b"type: GIT\n---\ntype: AWS\n");
    assert_eq!(e.kind, YamlErrorKind::MultipleDocuments);
    assert_eq!((e.line, e.column), (2, 1));
    // An explicit start or end marker around a single document is fine.
    parse(b"---\ntype: GIT\n...\n", &Limits::default()).unwrap();
}

#[test]
fn empty_file_is_an_error() {
    for text in [&b""[..], b"\n\n", b"# only a comment\n"] {
        assert_eq!(fail(text).kind, YamlErrorKind::Empty);
    }
}

#[test]
fn unknown_alias() {
    let e = fail(b"a: 1\nb: *nowhere\n");
    assert!(
        matches!(
            e.kind,
            YamlErrorKind::UnknownAlias | YamlErrorKind::Syntax(_)
        ),
        "{e}"
    );
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn recursive_alias_is_refused() {
    let e = fail(b"a: &x\n  b: *x\n");
    assert!(
        matches!(
            e.kind,
            YamlErrorKind::UnknownAlias | YamlErrorKind::Syntax(_)
        ),
        "{e}"
    );
}

#[test]
fn collection_keys_are_refused() {
    let e = fail(b"? [a, b]\n: 1\n");
    assert_eq!(e.kind, YamlErrorKind::NonScalarKey);
    assert_eq!((e.line, e.column), (1, 3));
    let e = fail(b"{{a: 1}: 2}\n");
    assert_eq!(e.kind, YamlErrorKind::NonScalarKey);
    let e = fail(b"base: &b [1]\n*b : 2\n");
    assert_eq!(e.kind, YamlErrorKind::NonScalarKey);
}

#[test]
fn unsupported_tags_are_refused() {
    let e = fail(b"a: !!binary aGVsbG8=\n");
    assert_eq!(e.kind, YamlErrorKind::UnsupportedTag("!!binary".into()));
    assert_eq!((e.line, e.column), (1, 4));
    let e = fail(b"a: !!software.wings.yaml.Foo\n  b: 1\n");
    assert!(matches!(e.kind, YamlErrorKind::UnsupportedTag(_)), "{e}");
    let e = fail(b"a: !custom x\n");
    assert_eq!(e.kind, YamlErrorKind::UnsupportedTag("!custom".into()));
}

#[test]
fn core_tags_must_fit_their_value() {
    let e = fail(b"a: !!int twelve\n");
    assert_eq!(
        e.kind,
        YamlErrorKind::InvalidTaggedValue {
            tag: "!!int".into(),
            text: "twelve".into()
        }
    );
    assert!(matches!(
        fail(b"a: !!bool maybe\n").kind,
        YamlErrorKind::InvalidTaggedValue { .. }
    ));
    assert!(matches!(
        fail(b"a: !!seq {b: 1}\n").kind,
        YamlErrorKind::UnsupportedTag(_)
    ));
}

#[test]
fn merge_key_needs_mappings() {
    let e = fail(b"a:\n  <<: 5\n");
    assert_eq!(e.kind, YamlErrorKind::InvalidMerge);
    let e = fail(b"a:\n  <<: [1, 2]\n");
    assert_eq!(e.kind, YamlErrorKind::InvalidMerge);
}

#[test]
fn errors_display_line_and_column_first() {
    let e = fail(b"a: 1\na: 2\n");
    assert!(e.to_string().starts_with("line 2, column 1: "), "{e}");
}

#[test]
fn aliasing_one_huge_string_is_bounded_by_bytes() {
    // Few nodes, but every alias copies 100 kB: the copies may not add more text than the
    // file size limit allows.
    let big = "x".repeat(100_000);
    let aliases = vec!["*s"; 20].join(", ");
    let text = format!("s: &s {big}\nl: [{aliases}]\n");
    let e = fail(text.as_bytes());
    assert_eq!(e.kind, YamlErrorKind::TooManyNodes);
    assert_eq!(e.line, 2);
    // A few copies are fine.
    let text = format!("s: &s {big}\nl: [*s, *s]\n");
    parse(text.as_bytes(), &Limits::default()).unwrap();
}

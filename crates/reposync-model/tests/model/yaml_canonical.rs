//! Canonical key order for content reposync creates: what Harness's beans looked like when
//! SnakeYAML wrote them.

#![allow(clippy::expect_used)] // Test helpers outside #[test] functions may panic.

use reposync_model::yaml::{Document, Limits, canonicalize, emit, parse};

fn canonical(text: &str) -> String {
    let mut doc = parse(text.as_bytes(), &Limits::default()).expect("input parses");
    canonicalize(&mut doc);
    let once = emit(&doc);
    // Idempotent: canonical content stays as it is.
    let mut again = parse(once.as_bytes(), &Limits::default()).expect("output parses");
    canonicalize(&mut again);
    assert_eq!(emit(&again), once);
    once
}

#[test]
fn top_level_puts_api_version_and_type_first() {
    assert_eq!(
        canonical(
            "url: https://x\ntype: GIT\nbranch: main\nharnessApiVersion: '1.0'\nauthorName: A\n"
        ),
        "harnessApiVersion: '1.0'\ntype: GIT\nauthorName: A\nbranch: main\nurl: https://x\n"
    );
}

#[test]
fn api_version_is_always_the_string_1_0() {
    assert_eq!(
        canonical("type: GIT\nharnessApiVersion: 1.0\n"),
        "harnessApiVersion: '1.0'\ntype: GIT\n"
    );
}

#[test]
fn null_fields_are_dropped_outside_free_form_maps() {
    assert_eq!(
        canonical(
            "harnessApiVersion: '1.0'\ntype: GIT\ndescription: null\nnested:\n  b: null\n  a: 1\nlist:\n- null\n"
        ),
        "harnessApiVersion: '1.0'\ntype: GIT\nlist:\n- null\nnested:\n  a: 1\n"
    );
}

#[test]
fn empty_values_are_kept() {
    assert_eq!(
        canonical("harnessApiVersion: '1.0'\ntype: X\nz: {}\ny: []\nx: ''\nw:\n- ''\n"),
        "harnessApiVersion: '1.0'\ntype: X\nw:\n- ''\nx: ''\ny: []\nz: {}\n"
    );
}

#[test]
fn polymorphic_list_items_put_type_first() {
    let text = "\
phases:
- name: Canary
  type: KUBERNETES
  phaseSteps:
  - steps:
    - type: SHELL_SCRIPT
      name: Echo
      properties:
        scriptString: echo
        executeOnDelegate: true
        host: null
    type: K8S_PHASE_STEP
    name: Deploy
type: CANARY
harnessApiVersion: '1.0'
userVariables:
- value: x
  type: TEXT
  name: v
preDeploymentSteps:
- name: Pre
  type: HTTP
";
    assert_eq!(
        canonical(text),
        "\
harnessApiVersion: '1.0'
type: CANARY
phases:
- type: KUBERNETES
  name: Canary
  phaseSteps:
  - type: K8S_PHASE_STEP
    name: Deploy
    steps:
    - type: SHELL_SCRIPT
      name: Echo
      properties:
        scriptString: echo
        executeOnDelegate: true
        host: null
preDeploymentSteps:
- type: HTTP
  name: Pre
userVariables:
- type: TEXT
  name: v
  value: x
"
    );
}

#[test]
fn other_nested_objects_sort_type_with_the_rest() {
    let text = "\
harnessApiVersion: '1.0'
type: TRIGGER
artifactSelections:
- type: LAST_COLLECTED
  serviceName: api
  artifactStreamName: api
pipelineStages:
- type: APPROVAL
  skipCondition:
    type: CONDITIONAL_SKIP
    expression: ${x} == 1
";
    assert_eq!(
        canonical(text),
        "\
harnessApiVersion: '1.0'
type: TRIGGER
artifactSelections:
- artifactStreamName: api
  serviceName: api
  type: LAST_COLLECTED
pipelineStages:
- type: APPROVAL
  skipCondition:
    expression: ${x} == 1
    type: CONDITIONAL_SKIP
"
    );
}

#[test]
fn free_form_maps_keep_order_and_nulls_all_the_way_down() {
    let text = "\
harnessApiVersion: '1.0'
type: INFRA_DEFINITION
infrastructure:
- type: AWS_AMI
  expressions:
    region: ${terraform.region}
    autoScalingGroupName: null
  hostAttributes:
    zone: az
    hostname: ip
- type: CUSTOM
  properties:
    z: 1
    customFields:
      b: null
      a: 2
    approvalStateParams:
      y: null
      x:
        d: 1
        c: null
    fields:
      Z: 1
      A: null
";
    assert_eq!(canonical(text), text);
}

#[test]
fn sort_is_by_utf16_code_unit_like_java() {
    // Upper case sorts before lower case, as String.compareTo orders them.
    assert_eq!(
        canonical("harnessApiVersion: '1.0'\ntype: X\nb: 1\nB: 2\na: 3\nURL: 4\n"),
        "harnessApiVersion: '1.0'\ntype: X\nB: 2\nURL: 4\na: 3\nb: 1\n"
    );
}

#[test]
fn non_mapping_roots_have_their_content_canonicalised() {
    let mut doc = parse(b"- b: 1\n  a: null\n- c\n", &Limits::default()).unwrap();
    canonicalize(&mut doc);
    assert_eq!(emit(&doc), "- b: 1\n- c\n");
    let mut doc = Document::new(reposync_model::yaml::Node::string("x"));
    canonicalize(&mut doc);
    assert_eq!(emit(&doc), "x\n");
}

//! The canonical order of keys, for content reposync creates or changes.
//!
//! Harness wrote Java beans through SnakeYAML, which orders a bean's properties by name; its
//! YAML classes then put `harnessApiVersion` and `type` first at the top, and `type` first in
//! the items of its polymorphic lists. Free-form maps were Java maps and kept their insertion
//! order and their nulls; everywhere else null fields were left out.

use super::document::Document;
use super::value::{Mapping, Node, Value};

/// Lists whose items are polymorphic beans: each item puts `type` first, then sorts the rest.
const TYPE_FIRST_LISTS: &[&str] = &[
    "phases",
    "rollbackPhases",
    "phaseSteps",
    "steps",
    "pipelineStages",
    "infrastructure",
    "triggerCondition",
    "userVariables",
    "preDeploymentSteps",
];

/// Keys whose values are free-form maps: their content keeps its order and its nulls, and
/// nothing inside them is reordered.
const FREE_FORM: &[&str] = &[
    "properties",
    "expressions",
    "hostAttributes",
    "customFields",
    "fields",
    "approvalStateParams",
];

#[derive(Clone, Copy)]
enum Order {
    /// `harnessApiVersion`, then `type`, then the rest by name.
    Top,
    /// `type`, then the rest by name.
    TypeFirst,
    /// All keys by name, `type` included.
    ByName,
}

/// Applies the canonical ordering rules in place.
///
/// At the top: `harnessApiVersion` first (as the string `'1.0'`, even if it was written as a
/// number), then `type`, then the other keys by name. Items of the polymorphic lists
/// (`phases`, `steps`, …) put `type` first and sort the rest; every other mapping sorts all its
/// keys. Free-form maps (`properties`, `expressions`, `hostAttributes`, `customFields`,
/// `fields`, `approvalStateParams`) are left exactly as they are. Outside them, keys whose value
/// is null are dropped. Names compare as Java compares strings (by UTF-16 code unit), which is
/// how SnakeYAML ordered them.
pub fn canonicalize(doc: &mut Document) {
    match &mut doc.root.value {
        Value::Map(m) => {
            if let Some(version) = m.get_mut("harnessApiVersion")
                && let Value::Float(t) | Value::Int(t) = &version.value
            {
                version.value = Value::String(t.clone());
            }
            canonical_map(m, Order::Top);
        }
        _ => canonical_node(&mut doc.root),
    }
}

/// Orders only the top-level keys (`harnessApiVersion`, `type`, then by name), leaving nested
/// mappings as they are. This is what `reposync fmt` applies to existing files: Harness wrote
/// some nested maps (`tags`, `addressesByChannelType`, …) in their own insertion order, and
/// sorting those would make files Harness emitted look unformatted.
pub fn order_top_level(doc: &mut Document) {
    if let Value::Map(m) = &mut doc.root.value {
        m.sort_by(|a, b| {
            rank(a, Order::Top)
                .cmp(&rank(b, Order::Top))
                .then_with(|| key_text(a).encode_utf16().cmp(key_text(b).encode_utf16()))
        });
    }
}

fn canonical_node(node: &mut Node) {
    match &mut node.value {
        Value::Map(m) => canonical_map(m, Order::ByName),
        Value::Seq(items) => items.iter_mut().for_each(canonical_node),
        _ => {}
    }
}

fn canonical_map(m: &mut Mapping, order: Order) {
    m.retain(|_, v| !v.is_null());
    for (key, value) in m.iter_mut() {
        let name = key.as_str().unwrap_or("");
        if FREE_FORM.contains(&name) {
            continue;
        }
        match &mut value.value {
            Value::Seq(items) if TYPE_FIRST_LISTS.contains(&name) => {
                for item in items {
                    match &mut item.value {
                        Value::Map(im) => canonical_map(im, Order::TypeFirst),
                        _ => canonical_node(item),
                    }
                }
            }
            _ => canonical_node(value),
        }
    }
    m.sort_by(|a, b| {
        rank(a, order)
            .cmp(&rank(b, order))
            .then_with(|| key_text(a).encode_utf16().cmp(key_text(b).encode_utf16()))
    });
}

fn key_text(key: &Node) -> &str {
    key.value.scalar_text().unwrap_or("")
}

fn rank(key: &Node, order: Order) -> u8 {
    let name = key.as_str();
    match (order, name) {
        (Order::Top, Some("harnessApiVersion")) => 0,
        (Order::Top, Some("type")) => 1,
        (Order::Top, _) => 2,
        (Order::TypeFirst, Some("type")) => 0,
        (Order::TypeFirst, _) => 1,
        (Order::ByName, _) => 0,
    }
}

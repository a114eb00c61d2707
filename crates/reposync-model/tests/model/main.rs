//! The model's tests: the tree's rules and the YAML codec. One test binary so that the
//! suite links once.

mod tree_validate;
mod yaml_canonical;
mod yaml_corpus;
mod yaml_emit;
mod yaml_errors;
mod yaml_parse;
mod yaml_roundtrip;

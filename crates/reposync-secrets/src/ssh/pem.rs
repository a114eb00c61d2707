//! A forgiving reader for the PEM envelope around pasted keys.
//!
//! Keys arrive through web forms, YAML and environment variables, which re-wrap lines, add
//! CRLF or indentation, or collapse everything onto one line. The strict RFC 7468 decoders
//! in the key crates reject all of that, so this module finds the BEGIN/END markers itself,
//! keeps the RFC 1421 headers of legacy encrypted PEM, and decodes the base64 body with all
//! whitespace removed.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use super::SshKeyError;

/// Standard base64 that does not insist on the trailing `=` padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest label we accept between `-----BEGIN ` and `-----`; real ones are under 30.
const MAX_LABEL_LEN: usize = 64;

/// One `-----BEGIN LABEL-----` marker found in the input.
#[derive(Debug)]
pub(super) struct Marker<'a> {
    /// The label, e.g. `OPENSSH PRIVATE KEY`.
    pub label: &'a str,
    /// Where the text after the BEGIN marker starts.
    body_start: usize,
}

/// A decoded PEM block: its label, RFC 1421 headers and binary body.
pub(super) struct PemBlock {
    /// Headers such as `Proc-Type` and `DEK-Info`, in order, with trimmed names and values.
    pub headers: Vec<(String, String)>,
    /// The decoded body, wiped on drop because it is usually a private key.
    pub body: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    /// The value of the header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Every well-formed `-----BEGIN LABEL-----` marker in `text`, in order.
pub(super) fn begin_markers(text: &str) -> Vec<Marker<'_>> {
    const BEGIN: &str = "-----BEGIN ";
    let mut markers = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(BEGIN) {
        let label_start = from + found + BEGIN.len();
        from = label_start;
        let Some(label_len) = text[label_start..].find("-----") else {
            break;
        };
        let label = &text[label_start..label_start + label_len];
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || !label
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
        {
            continue;
        }
        markers.push(Marker {
            label,
            body_start: label_start + label_len + "-----".len(),
        });
    }
    markers
}

/// Decodes the block that starts at `marker`.
pub(super) fn decode_block(text: &str, marker: &Marker<'_>) -> Result<PemBlock, SshKeyError> {
    let rest = &text[marker.body_start..];
    let end_marker = format!("-----END {}-----", marker.label);
    let Some(end) = rest.find(&end_marker) else {
        return Err(SshKeyError::Malformed(format!(
            "the line \"{end_marker}\" is missing; the key was probably cut off while copying"
        )));
    };
    let inner = &rest[..end];

    // Headers only exist in legacy PEM, each on its own line and containing a colon, which
    // base64 never does. They end at the first line without one (normally a blank line).
    let mut headers = Vec::new();
    let mut base64_text = Zeroizing::new(String::with_capacity(inner.len()));
    let mut in_headers = true;
    for line in inner.lines() {
        let line = line.trim();
        if in_headers {
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
                continue;
            }
            if line.is_empty() {
                continue;
            }
            in_headers = false;
        }
        base64_text.extend(line.chars().filter(|c| !c.is_whitespace()));
    }

    if base64_text.is_empty() {
        return Err(SshKeyError::Malformed(
            "the key has BEGIN and END lines but nothing between them".to_owned(),
        ));
    }
    let body = LENIENT_BASE64.decode(base64_text.as_bytes()).map_err(|_| {
        SshKeyError::Malformed(
            "the text between the BEGIN and END lines is not valid base64".to_owned(),
        )
    })?;
    Ok(PemBlock {
        headers,
        body: Zeroizing::new(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markers_and_skips_lookalikes() {
        let text = "junk -----BEGIN lower-----\n-----BEGIN RSA PRIVATE KEY-----\nAAAA\n";
        let labels: Vec<_> = begin_markers(text).iter().map(|m| m.label).collect();
        assert_eq!(labels, ["RSA PRIVATE KEY"]);
    }

    #[test]
    fn reads_headers_and_tolerates_crlf_indentation_and_rewrapping() {
        let text = "  -----BEGIN RSA PRIVATE KEY-----\r\n  Proc-Type: 4,ENCRYPTED\r\n  \
                    DEK-Info: AES-128-CBC,00FF\r\n\r\n  aGVs\r\n bG8g\r\nd29y bGQ\r\n  \
                    -----END RSA PRIVATE KEY-----  ";
        let markers = begin_markers(text);
        let block = decode_block(text, &markers[0]).unwrap();
        assert_eq!(block.header("proc-type"), Some("4,ENCRYPTED"));
        assert_eq!(block.header("DEK-Info"), Some("AES-128-CBC,00FF"));
        assert_eq!(block.body.as_slice(), b"hello world");
    }

    #[test]
    fn accepts_a_key_collapsed_onto_one_line() {
        let text =
            "-----BEGIN OPENSSH PRIVATE KEY----- aGVs bG8= -----END OPENSSH PRIVATE KEY-----";
        let markers = begin_markers(text);
        let block = decode_block(text, &markers[0]).unwrap();
        assert!(block.headers.is_empty());
        assert_eq!(block.body.as_slice(), b"hello");
    }

    #[test]
    fn missing_end_line_is_reported() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\naGVsbG8=\n";
        let markers = begin_markers(text);
        let err = decode_block(text, &markers[0]).err().unwrap();
        assert!(err.to_string().contains("cut off"), "{err}");
    }
}

//! Form bodies as Cloud's `POST …/src` accepts them: `application/x-www-form-urlencoded` and
//! `multipart/form-data`, decoded to (name, bytes) pairs. Values stay bytes because a field
//! named after a path carries that file's content, which need not be text.

use anyhow::{Context, Result, bail};

use super::reply::percent_decode;

/// One form field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Field {
    pub name: String,
    pub value: Vec<u8>,
}

/// Decodes a form body of the given `Content-Type`.
pub(super) fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Field>> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Ok(parse_urlencoded(body)),
        "multipart/form-data" => {
            let boundary = parameter(content_type, "boundary")
                .context("a multipart/form-data body needs a boundary parameter")?;
            parse_multipart(body, &boundary)
        }
        other => bail!(
            "unsupported Content-Type {other:?}: send application/x-www-form-urlencoded or \
             multipart/form-data"
        ),
    }
}

/// `name=value&…`, with `+` and `%XX` decoded in both.
fn parse_urlencoded(body: &[u8]) -> Vec<Field> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Field {
                name: String::from_utf8_lossy(&percent_decode(name, true)).into_owned(),
                value: percent_decode(value, true),
            }
        })
        .collect()
}

/// A parameter of a header value such as `multipart/form-data; boundary=xyz` or
/// `form-data; name="a b"`, unquoted.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned()
        })
    })
}

/// RFC 7578 parts: each starts after `--boundary` and a CRLF, has headers up to a blank line,
/// and content up to the CRLF before the next `--boundary`; `--boundary--` ends the body.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Field>> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut at = find(body, delimiter.as_bytes())
        .context("the multipart body does not contain its boundary")?
        + delimiter.len();
    let mut fields = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .context("a multipart boundary is not followed by CRLF")?;
        let headers_end =
            find(rest, b"\r\n\r\n").context("a multipart part has no end to its headers")?;
        let headers = String::from_utf8_lossy(&rest[..headers_end]).into_owned();
        let content = &rest[headers_end + 4..];
        let content_end = find(content, next_delimiter.as_bytes())
            .context("a multipart part is not closed by the boundary")?;
        let disposition = headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("Content-Disposition")
                    .then(|| value.trim().to_owned())
            })
            .context("a multipart part has no Content-Disposition")?;
        let name = parameter(&disposition, "name")
            .with_context(|| format!("a multipart part has no name: {disposition:?}"))?;
        fields.push(Field {
            name,
            value: content[..content_end].to_vec(),
        });
        // Past this part's content and the CRLF and delimiter that close it.
        at = body.len() - content.len() + content_end + next_delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_fields_keep_their_order_and_decode() {
        let fields = parse(
            "application/x-www-form-urlencoded",
            b"message=Add+it&Setup%2Fa%20b.yaml=x%3A+1%0A&files=gone.yaml",
        )
        .unwrap();
        assert_eq!(fields[0].name, "message");
        assert_eq!(fields[0].value, b"Add it");
        assert_eq!(fields[1].name, "Setup/a b.yaml");
        assert_eq!(fields[1].value, b"x: 1\n");
        assert_eq!(fields[2].value, b"gone.yaml");
    }

    #[test]
    fn multipart_parts_keep_binary_content() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhello\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"bin/a.dat\"; filename=\"a.dat\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n\x02\r\n--XyZ--\r\n";
        let fields = parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].value, b"hello");
        assert_eq!(fields[1].name, "bin/a.dat");
        assert_eq!(fields[1].value, b"\x00\x01\r\n\x02");
    }

    #[test]
    fn other_content_types_are_refused() {
        assert!(parse("application/json", b"{}").is_err());
    }
}

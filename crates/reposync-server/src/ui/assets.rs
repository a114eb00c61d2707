//! The UI's static files, built into the binary and served under names that hold a hash of
//! their content, so that a browser may keep each for good and still never run a stale one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One file: its name, its type and its bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        name: "pico.min.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/static/pico.min.css"),
    },
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/static/app.css"),
    },
    Asset {
        name: "htmx.min.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/static/htmx.min.js"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/static/app.js"),
    },
];

/// Each file's served name: `app.3f2a9c1b.css` for `app.css`.
static HASHED: LazyLock<Vec<(String, &'static Asset)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|asset| {
            let digest = hex::encode(&Sha256::digest(asset.bytes)[..4]);
            let (stem, extension) = asset.name.rsplit_once('.').unwrap_or((asset.name, ""));
            (format!("{stem}.{digest}.{extension}"), asset)
        })
        .collect()
});

/// The URL a page links a file by.
pub fn url(name: &str) -> String {
    HASHED
        .iter()
        .find(|(_, asset)| asset.name == name)
        .map(|(hashed, _)| format!("/ui/static/{hashed}"))
        .unwrap_or_default()
}

/// `GET /ui/static/{file}`: a file by its hashed name, cached for good.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, asset)) = HASHED.iter().find(|(hashed, _)| *hashed == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored files are the ones VENDORED.md names, byte for byte.
    #[test]
    fn vendored_files_match_their_recorded_checksums() {
        let record = include_str!("../../ui/static/VENDORED.md");
        for name in ["htmx.min.js", "pico.min.css"] {
            let asset = FILES.iter().find(|a| a.name == name).expect("listed");
            let sum = hex::encode(Sha256::digest(asset.bytes));
            let line = record
                .lines()
                .find(|line| line.contains(&format!("`{name}`")))
                .expect("recorded");
            assert!(line.contains(&sum), "{name}: {sum} is not in {line}");
        }
    }

    #[test]
    fn every_file_has_a_hashed_url_and_is_served_by_it() {
        for asset in FILES {
            let url = url(asset.name);
            assert!(url.starts_with("/ui/static/") && url != format!("/ui/static/{}", asset.name));
        }
    }
}

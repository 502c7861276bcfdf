//! The static assets every hub serves under `/static/`: embedded in the binary, so a deployed
//! hub needs no files beside it, and versioned by content hash for long caching.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "hub.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/hub.css"),
    },
    Asset {
        name: "hub.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/hub.js"),
    },
];

/// `GET /static/{name}`: public, cacheable for an hour, with an ETag for revalidation.
pub async fn static_asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset");
    };
    let etag = format!("\"{}\"", &crate::journal::to_hex(&sha(asset.body))[..16]);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"));
    if fresh {
        resp.finish()
    } else {
        resp.content_type(asset.content_type).body(asset.body)
    }
}

fn sha(s: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).into()
}

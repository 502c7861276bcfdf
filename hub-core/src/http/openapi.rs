//! What every hub's OpenAPI document says about errors, because the HTTP edge does it for every
//! route: error bodies are `application/problem+json`, and the refusals that hub-core's
//! middleware, extractors and error mapping answer for any handler (401, 403, 429 for bearer
//! routes; 400 for unreadable input; 413, 415 for JSON bodies; 404 for path segments; 412 for
//! `If-Match` ([`etag::check`](super::etag::check)); 503 when the database pool is exhausted) are
//! documented on each operation they can reach.

use super::problem::PROBLEM_JSON;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// A `utoipa` modifier that documents hub-core's problem responses on every operation. Apply it
/// last, after every merge: `ProblemResponses.modify(&mut doc)` or `modifiers(&ProblemResponses)`.
pub struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let path_params = item
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Path);
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                document_problems(op, path_params);
            }
        }
    }
}

/// Adds the generic problem responses `op` can get, and moves its error bodies to problem+json.
fn document_problems(op: &mut Operation, path_params_on_item: bool) {
    let has = |place: ParameterIn| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == place)
    };
    let (query, path) = (has(ParameterIn::Query), has(ParameterIn::Path));
    let if_match =
        op.parameters.iter().flatten().any(|p| {
            p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case("if-match")
        });
    let bearer = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let body = op.request_body.is_some();

    let mut generic: Vec<(&str, &str)> = Vec::new();
    if bearer {
        generic.push(("401", "Missing, unknown, expired or revoked token"));
        generic.push((
            "403",
            "The token lacks the permission this route requires (or, with a session cookie, the CSRF token is missing)",
        ));
        generic.push(("429", "Too many requests for this token; see `Retry-After`"));
    }
    let path = path || path_params_on_item;
    if body || query || path {
        generic.push((
            "400",
            "Malformed request: the body, query string or path cannot be read, or holds text the database cannot store (a NUL character)",
        ));
    }
    if body {
        generic.push(("413", "Request body too large"));
        generic.push(("415", "The body is not `application/json`"));
    }
    if path {
        generic.push(("404", "Not found"));
    }
    if if_match {
        generic.push((
            "412",
            "`If-Match` names no current version; fetch the resource again",
        ));
    }
    generic.push((
        "503",
        "The database is busy or unreachable; see `Retry-After`",
    ));
    for (status, description) in generic {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    }

    for (status, response) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response) {
            as_problem(response);
        }
    }
}

/// Error bodies are problem documents: whatever the annotation named as `application/json` is
/// served as `application/problem+json`, and a bodiless error gets the `Problem` schema.
fn as_problem(response: &mut Response) {
    if let Some(json) = response.content.shift_remove("application/json") {
        response.content.insert(PROBLEM_JSON.to_owned(), json);
    }
    if response.content.is_empty() {
        response.content.insert(
            PROBLEM_JSON.to_owned(),
            Content::new(Some(Ref::from_schema_name("Problem"))),
        );
    }
}

/// The local `$ref`s of a serialized document that point at nothing (e.g. a schema used in a
/// parameter but never registered as a component); empty when every reference resolves.
pub fn unresolved_refs(doc: &serde_json::Value) -> Vec<String> {
    fn walk(node: &serde_json::Value, doc: &serde_json::Value, out: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    let found = r
                        .strip_prefix('#')
                        .is_some_and(|pointer| doc.pointer(pointer).is_some());
                    if !found && !out.contains(r) {
                        out.push(r.clone());
                    }
                }
                map.values().for_each(|v| walk(v, doc, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, doc, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::problem::Problem;
    use utoipa::OpenApi as _;

    #[derive(serde::Deserialize, utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<i64>,
    }

    #[utoipa::path(post, path = "/things/{id}",
        params(("id" = String, Path), ("If-Match" = Option<String>, Header), Q),
        request_body = Problem,
        responses((status = 201, body = Problem), (status = 409, body = Problem)),
        security(("bearer" = []))
    )]
    #[allow(dead_code)]
    fn create() {}

    #[utoipa::path(get, path = "/open", responses((status = 200, body = String)))]
    #[allow(dead_code)]
    fn open() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(create, open), components(schemas(Problem)), modifiers(&ProblemResponses))]
    struct Doc;

    fn responses(doc: &serde_json::Value, path: &str, method: &str) -> serde_json::Value {
        doc["paths"][path][method]["responses"].clone()
    }

    #[test]
    fn bearer_body_query_and_path_refusals_are_documented_as_problems() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let r = responses(&doc, "/things/{id}", "post");
        for status in [
            "400", "401", "403", "404", "409", "412", "413", "415", "429", "503",
        ] {
            let content = &r[status]["content"];
            assert!(
                content[PROBLEM_JSON]["schema"]["$ref"] == "#/components/schemas/Problem",
                "{status}: {content}"
            );
            assert!(content.get("application/json").is_none(), "{status}");
        }
        // The success keeps its own media type.
        assert!(r["201"]["content"]["application/json"].is_object());
        // What the annotation said stays: 409's description is utoipa's default, not ours.
        assert_ne!(r["409"]["description"], "Not found");
    }

    #[test]
    fn dangling_references_are_found() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        assert_eq!(unresolved_refs(&doc), Vec::<String>::new());
        let mut broken = doc.clone();
        broken["paths"]["/open"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"] = serde_json::json!({"$ref": "#/components/schemas/Order"});
        assert_eq!(unresolved_refs(&broken), vec!["#/components/schemas/Order"]);
    }

    #[test]
    fn public_routes_without_parameters_get_no_auth_or_input_refusals() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let r = responses(&doc, "/open", "get");
        for status in ["400", "401", "403", "404", "412", "413", "415", "429"] {
            assert!(r.get(status).is_none(), "{status} on a public route: {r}");
        }
        assert!(r["503"].is_object());
    }
}

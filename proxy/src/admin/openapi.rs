//! `GET /api/v1/openapi.json`: the API's description, written by hand next to the code and
//! checked against the routes the router serves (see the test).

use axum::http::header;
use axum::response::IntoResponse;

/// The document, compiled into the binary.
const DOCUMENT: &str = include_str!("openapi.json");

/// Every route the document must describe, as (method, path): the API and the login.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/login"),
    ("post", "/login"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/logout"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/policy"),
    ("put", "/api/v1/policy"),
    ("post", "/api/v1/policy/test"),
    ("get", "/api/v1/policy/history"),
    ("post", "/api/v1/policy/revert"),
    ("post", "/api/v1/policy/entries"),
    ("get", "/api/v1/policy/entries"),
    ("post", "/api/v1/policy/edit-preview"),
    ("get", "/api/v1/approvals"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/status"),
    ("post", "/api/v1/approvals/{id}"),
    ("get", "/api/v1/openapi.json"),
];

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_exactly_the_api_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                described.push((method.clone(), path.clone()));
            }
        }
        described.sort();
        let mut served: Vec<(String, String)> = API_ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(described, served);
    }
}

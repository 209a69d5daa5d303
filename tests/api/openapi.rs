//! The published OpenAPI document: committed, served, complete.
//!
//! Set `COMPANION_TEST_UPDATE_OPENAPI=1` to rewrite `openapi/openapi.json` from the server.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Backend, TestApp};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");

#[tokio::test]
async fn the_committed_document_is_what_the_server_serves() {
    let app = TestApp::new(Backend::Sqlite).await;
    let served = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(StatusCode::OK)
        .body;
    let generated = companion::openapi::document_json();
    assert_eq!(
        serde_json::from_str::<Value>(&generated).unwrap(),
        served,
        "`companion openapi` and /openapi.json differ"
    );
    if std::env::var("COMPANION_TEST_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `COMPANION_TEST_UPDATE_OPENAPI=1 cargo test -p companion-server --test api openapi` and commit it"
    );
}

#[test]
fn every_operation_has_a_tag_summary_id_security_and_documented_errors() {
    let document: Value = serde_json::from_str(&companion::openapi::document_json()).unwrap();
    assert!(document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    assert!(!document["servers"].as_array().unwrap().is_empty());
    let mut operation_ids = std::collections::BTreeSet::new();
    let mut count = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let name = format!("{method} {path}");
            assert_eq!(
                op["tags"].as_array().map(Vec::len),
                Some(1),
                "{name}: one tag"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: summary"
            );
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "{name}: duplicate id {id}"
            );
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: security must be explicit"));
            let responses = op["responses"].as_object().unwrap();
            let secured = security.iter().any(|s| s.get("bearer").is_some());
            if secured {
                assert!(responses.contains_key("401"), "{name}: documents 401");
            }
            // A request for help reads whatever body it gets and refuses none (CLINICAL.md: a
            // safety signal is never refused for its form): it has no 400, 415 or 422 to name.
            let never_refused = id == "create_help_request";
            if op.get("requestBody").is_some() && !never_refused {
                for status in ["400", "415", "422"] {
                    assert!(responses.contains_key(status), "{name}: documents {status}");
                }
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{name}: documents 404");
            }
            if path.starts_with("/v1/") {
                assert!(responses.contains_key("503"), "{name}: documents 503");
            }
            for (status, response) in responses {
                // A shared response is a reference to one in `components/responses`.
                let response = match response["$ref"].as_str() {
                    Some(reference) => {
                        let name = reference
                            .strip_prefix("#/components/responses/")
                            .unwrap_or_else(|| panic!("{name} {status}: {reference}"));
                        &document["components"]["responses"][name]
                    }
                    None => response,
                };
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}: error body"
                    );
                }
            }
        }
    }
    assert!(count >= 14, "only {count} operations documented");
}

#[tokio::test]
async fn the_documentation_page_is_served_offline() {
    let app = TestApp::new(Backend::Sqlite).await;
    let page = app
        .call(Method::GET, "/docs/", None, None)
        .await
        .expect(StatusCode::OK);
    assert!(
        page.text.contains("swagger"),
        "{}",
        &page.text[..page.text.len().min(200)]
    );
    let config = app
        .call(Method::GET, "/docs/swagger-initializer.js", None, None)
        .await
        .expect(StatusCode::OK);
    assert!(config.text.contains("/openapi.json"));
}

#[test]
fn the_document_states_tagged_unions_time_zones_and_shared_errors() {
    let document: Value = serde_json::from_str(&companion::openapi::document_json()).unwrap();
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["Anchor"]["discriminator"]["propertyName"], "kind");
    assert_eq!(
        schemas["Anchor"]["discriminator"]["mapping"]["weekly"],
        "#/components/schemas/AnchorWeekly"
    );
    assert_eq!(schemas["AnchorWeekly"]["additionalProperties"], false);
    let zones = schemas["TimeZone"]["enum"].as_array().unwrap();
    assert!(zones.iter().any(|z| z == "America/Chicago"));
    assert!(!zones.iter().any(|z| z == "+05:00"));
    assert_eq!(
        schemas["CreateClinic"]["properties"]["timezone"]["$ref"],
        "#/components/schemas/TimeZone"
    );
    let responses = &document["components"]["responses"];
    assert!(responses["MissingOrInvalidAccessToken401"]["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        document["paths"]["/v1/me"]["get"]["responses"]["401"]["$ref"],
        "#/components/responses/MissingOrInvalidAccessToken401"
    );
}

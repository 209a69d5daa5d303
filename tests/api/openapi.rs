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
    // A zone is a string with a pattern (an enum of 597 names broke generated clients); every
    // name the server accepts fits it, and an offset does not.
    let zone = &schemas["TimeZone"];
    assert_eq!(zone["type"], "string");
    assert!(zone.get("enum").is_none());
    let pattern = zone["pattern"].as_str().unwrap();
    assert_eq!(pattern, companion::openapi::exact::TIME_ZONE_PATTERN);
    let fits = |name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-');
        name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && parts.len() <= 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(allowed))
    };
    for tz in chrono_tz::TZ_VARIANTS {
        assert!(fits(tz.name()), "{} does not fit {pattern}", tz.name());
    }
    assert!(!fits("+05:00"));
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

/// Generators read an object schema that names neither its properties nor
/// `additionalProperties` as an object with no members (openapi-typescript's default:
/// `Record<string, never>`), so every object says one or the other; a stored check-in's answers
/// say what they hold, as a submission's do.
#[test]
fn every_object_schema_says_what_members_it_has() {
    const SAYS_WHAT_IT_HOLDS: [&str; 6] = [
        "properties",
        "additionalProperties",
        "allOf",
        "oneOf",
        "anyOf",
        "$ref",
    ];
    fn walk(node: &Value, at: &str, silent: &mut Vec<String>) {
        match node {
            Value::Object(schema) => {
                let is_object = match schema.get("type") {
                    Some(Value::String(kind)) => kind == "object",
                    Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
                    _ => false,
                };
                let says = SAYS_WHAT_IT_HOLDS
                    .iter()
                    .any(|key| schema.contains_key(*key));
                if is_object && !says {
                    silent.push(at.to_owned());
                }
                for (key, value) in schema {
                    walk(value, &format!("{at}/{key}"), silent);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    walk(value, &format!("{at}/{i}"), silent);
                }
            }
            _ => {}
        }
    }
    let document: Value = serde_json::from_str(&companion::openapi::document_json()).unwrap();
    let mut silent = Vec::new();
    walk(&document, "", &mut silent);
    assert!(
        silent.is_empty(),
        "object schemas silent about their members: {silent:?}"
    );
    let scalar = serde_json::json!({"type": ["number", "boolean", "string"]});
    for pointer in [
        "/components/schemas/SubmitCheckIn/properties/answers",
        "/components/schemas/CheckIn/properties/answers",
        "/components/schemas/EarlierVersionView/properties/answers",
    ] {
        assert_eq!(
            document.pointer(&format!("{pointer}/additionalProperties")),
            Some(&scalar),
            "{pointer}"
        );
    }
}

/// A page of a list (`{"items", "next_cursor"}`) refers to its item's component rather than
/// holding a copy of it (which generated clients turn into a second type for the same thing),
/// and every list operation answers with such a page.
#[test]
fn every_page_refers_to_its_items_component() {
    let document: Value = serde_json::from_str(&companion::openapi::document_json()).unwrap();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut pages = std::collections::BTreeSet::new();
    for (name, schema) in schemas {
        let properties = &schema["properties"];
        if properties.get("next_cursor").is_none() {
            continue;
        }
        pages.insert(name.clone());
        assert_eq!(properties["items"]["type"], "array", "{name}: items");
        let reference = properties["items"]["items"]["$ref"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "{name}: items are inline, not a $ref to the item's component: {}",
                    properties["items"]["items"]
                )
            });
        let item = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{name}: {reference} is not a component"));
        assert!(schemas.contains_key(item), "{name}: no component {item}");
        assert_eq!(
            name.strip_prefix("Paginated_"),
            Some(item),
            "{name}: a page of {item}"
        );
    }
    assert!(pages.len() >= 10, "pages: {pages:?}");
    // Every list operation answers with one of those pages, by reference.
    let mut lists = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let takes_cursor = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "cursor"));
            if !takes_cursor {
                continue;
            }
            lists += 1;
            let reference = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: a page by $ref"));
            let page = reference.trim_start_matches("#/components/schemas/");
            assert!(pages.contains(page), "{method} {path}: {page} is no page");
        }
    }
    assert!(lists >= pages.len(), "{lists} list operations");
}

#[tokio::test]
async fn the_accepted_time_zones_are_listed_and_others_refused() {
    let app = TestApp::new(Backend::Sqlite).await;
    let listed = app
        .call(Method::GET, "/v1/time-zones", None, None)
        .await
        .expect(StatusCode::OK);
    let zones: Vec<&str> = listed.body["time_zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z.as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), chrono_tz::TZ_VARIANTS.len());
    assert!(zones.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
    for name in [
        "America/Chicago",
        "Pacific/Auckland",
        "Europe/Dublin",
        "Etc/GMT+5",
    ] {
        assert!(zones.contains(&name), "{name}");
    }
    // A name of the right shape that is no zone is still refused, naming the field.
    let world = app.world().await;
    let refused = app
        .put(
            "/v1/me/preferences",
            &world.patient_a.access,
            serde_json::json!({"timezone": "Mars/Olympus_Mons"}),
        )
        .await;
    crate::harness::assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        refused.body["error"]["fields"]["timezone"].is_string(),
        "{}",
        refused.body
    );
}

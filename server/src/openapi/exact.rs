//! What the derive macros cannot say, added to the generated document so that it states every
//! constraint the server enforces:
//! - a page of a list (`Paginated_<Item>`) refers to its item's component, which the derive
//!   copies inline for a generic type's parameter;
//! - tagged unions (`#[serde(tag = "...")]` enums) become `oneOf` of named variants with a
//!   `discriminator`, each variant closed (`additionalProperties: false`);
//! - every `timezone` is one of the IANA names the server accepts (a shared `TimeZone` enum);
//! - constraints the field attributes cannot reach (each day after a session 1 to 60; working
//!   days different; a session change names something and completes at most; check-in answers
//!   are numbers, booleans or text; a crisis line has a number or a web page);
//! - an object schema that says nothing of its members says `additionalProperties: true`;
//! - error responses repeated across operations are shared components (with their
//!   `WWW-Authenticate` and `Retry-After` headers) rather than copies.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Applies every rewrite to the document (as JSON).
pub fn apply(document: &mut Value) {
    page_items(document);
    tagged_unions(document);
    time_zones(document);
    item_constraints(document);
    open_objects(document);
    shared_responses(document);
}

fn pascal(text: &str) -> String {
    text.replace(['\'', '\u{2019}'], "")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The name under which `Paginated<T>` appears (`Paginated_Alert`), followed by `T`'s.
const PAGE_PREFIX: &str = "Paginated_";

/// Every page's `items` refers to its item's component: utoipa composes a generic type's
/// parameter inline, so each page held a copy of the item's schema (which generated clients
/// turned into a second type per list). The copy is replaced only where it is the component,
/// word for word; a test checks that no page keeps one.
fn page_items(document: &mut Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let pages: Vec<(String, String)> = schemas
        .keys()
        .filter_map(|name| {
            let item = name.strip_prefix(PAGE_PREFIX)?;
            Some((name.clone(), item.to_owned()))
        })
        .collect();
    for (page, item) in pages {
        let Some(component) = schemas.get(&item).cloned() else {
            continue;
        };
        let Some(items) = schemas
            .get_mut(&page)
            .and_then(|p| p.pointer_mut("/properties/items/items"))
        else {
            continue;
        };
        if *items == component {
            *items = json!({"$ref": format!("#/components/schemas/{item}")});
        }
    }
}

/// The property that tags every variant of `one_of` (a required string with one value), with
/// each variant's value.
fn tag_of(one_of: &[Value]) -> Option<(String, Vec<String>)> {
    let first = one_of.first()?.get("properties")?.as_object()?;
    'candidates: for name in first.keys() {
        let mut values = Vec::new();
        for variant in one_of {
            let value = variant
                .get("properties")
                .and_then(|p| p.get(name))
                .filter(|p| p.get("type") == Some(&json!("string")))
                .and_then(|p| p.get("enum"))
                .and_then(Value::as_array)
                .filter(|e| e.len() == 1)
                .and_then(|e| e[0].as_str());
            let required = variant
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.contains(&json!(name)));
            match value {
                Some(value) if required => values.push(value.to_owned()),
                _ => continue 'candidates,
            }
        }
        return Some((name.clone(), values));
    }
    None
}

fn tagged_unions(document: &mut Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut added = Map::new();
    for (name, schema) in schemas.iter_mut() {
        let Some(one_of) = schema.get("oneOf").and_then(Value::as_array).cloned() else {
            continue;
        };
        if one_of
            .iter()
            .any(|v| v.get("type") != Some(&json!("object")))
        {
            continue;
        }
        let Some((tag, values)) = tag_of(&one_of) else {
            continue;
        };
        let mut refs = Vec::new();
        let mut mapping = Map::new();
        for (mut variant, value) in one_of.into_iter().zip(values) {
            let component = format!("{name}{}", pascal(&value));
            let reference = format!("#/components/schemas/{component}");
            if let Some(object) = variant.as_object_mut() {
                object.insert("additionalProperties".into(), json!(false));
                object.insert("title".into(), json!(component));
            }
            added.insert(component, variant);
            refs.push(json!({"$ref": reference}));
            mapping.insert(value, json!(reference));
        }
        if let Some(object) = schema.as_object_mut() {
            object.insert("oneOf".into(), Value::Array(refs));
            object.insert(
                "discriminator".into(),
                json!({"propertyName": tag, "mapping": mapping}),
            );
        }
    }
    schemas.extend(added);
}

/// The shape of an IANA time-zone name: an area and up to two locations (`America/Chicago`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+5`, `UTC`); never an offset such as `+05:00`.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$";

/// Every property named `timezone` that is a string: an IANA name.
fn time_zones(document: &mut Value) {
    fn visit(value: &mut Value) {
        match value {
            Value::Object(object) => {
                if let Some(Value::Object(properties)) = object.get_mut("properties")
                    && let Some(zone) = properties.get_mut("timezone")
                {
                    let description = zone.get("description").cloned();
                    let nullable = zone.get("type") == Some(&json!(["string", "null"]));
                    let string = zone.get("type") == Some(&json!("string"));
                    if nullable || string {
                        let reference = json!({"$ref": "#/components/schemas/TimeZone"});
                        let mut replaced = if nullable {
                            json!({"oneOf": [{"type": "null"}, reference]})
                        } else {
                            reference
                        };
                        if let (Some(description), Some(object)) =
                            (description, replaced.as_object_mut())
                        {
                            object.insert("description".into(), description);
                        }
                        *zone = replaced;
                    }
                }
                object.values_mut().for_each(visit);
            }
            Value::Array(items) => items.iter_mut().for_each(visit),
            _ => {}
        }
    }
    if let Some(components) = document.get_mut("components") {
        visit(components);
    }
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        // A string with a pattern rather than an enum of every zone: 597 values made every
        // generated client carry them, and collided once normalised into identifiers (`GMT0`,
        // `GMT-0` and `GMT+0`). The list is served at `GET /v1/time-zones`.
        schemas.insert(
            "TimeZone".into(),
            json!({
                "type": "string",
                "description": "An IANA time-zone name (never an offset), one of those listed at \
                    `GET /v1/time-zones`; any other is refused with 422.",
                "pattern": TIME_ZONE_PATTERN,
                "maxLength": 64,
                "example": "America/Chicago"
            }),
        );
    }
}

fn item_constraints(document: &mut Value) {
    let patches = [
        (
            "/components/schemas/AnchorAfterSession/properties/days/items",
            json!({"minimum": 1, "maximum": 60}),
        ),
        (
            "/components/schemas/WorkingHours/properties/days",
            json!({"uniqueItems": true}),
        ),
        (
            "/components/schemas/UpdateSession",
            json!({"minProperties": 1}),
        ),
        (
            "/components/schemas/SubmitCheckIn/properties/answers",
            json!({"additionalProperties": {"type": ["number", "boolean", "string"]}}),
        ),
        // A stored check-in's answers are those that validated: numbers, booleans or text too.
        (
            "/components/schemas/CheckIn/properties/answers",
            json!({"additionalProperties": {"type": ["number", "boolean", "string"]}}),
        ),
        (
            "/components/schemas/EarlierVersionView/properties/answers",
            json!({"additionalProperties": {"type": ["number", "boolean", "string"]}}),
        ),
    ];
    // A session is moved or completed here; it is cancelled with DELETE.
    if let Some(Value::Object(status)) =
        document.pointer_mut("/components/schemas/UpdateSession/properties/status")
    {
        status.remove("$ref");
        status.insert("type".into(), json!("string"));
        status.insert("enum".into(), json!(["completed"]));
    }
    // A crisis line is reached somehow: by call, text or web page. (As `allOf`, because the
    // document model keeps no `anyOf` beside an object's properties.)
    if let Some(line) = document.pointer_mut("/components/schemas/CrisisLine") {
        let reachable = json!({"anyOf": [
            {"type": "object", "required": ["call"], "properties": {"call": {"type": "string"}}},
            {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}
        ]});
        let description = line.get("description").cloned();
        let mut combined = json!({"allOf": [line.take(), reachable]});
        if let (Some(description), Some(object)) = (description, combined.as_object_mut()) {
            object.insert("description".into(), description);
        }
        *line = combined;
    }
    for (pointer, patch) in patches {
        if let (Some(Value::Object(target)), Value::Object(patch)) =
            (document.pointer_mut(pointer), patch)
        {
            target.extend(patch);
        }
    }
}

/// An object schema that names neither its properties nor `additionalProperties` (an alert's
/// `inputs`, an export) says `additionalProperties: true`: the same in JSON Schema, but
/// generators read the silence differently (openapi-typescript's default makes it an object
/// with no members, `Record<string, never>`, so a client could read nothing out of it).
fn open_objects(node: &mut Value) {
    const SAYS_WHAT_IT_HOLDS: [&str; 6] = [
        "properties",
        "additionalProperties",
        "allOf",
        "oneOf",
        "anyOf",
        "$ref",
    ];
    match node {
        Value::Object(schema) => {
            let is_object = match schema.get("type") {
                Some(Value::String(kind)) => kind == "object",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "object"),
                _ => false,
            };
            let silent = !SAYS_WHAT_IT_HOLDS
                .iter()
                .any(|key| schema.contains_key(*key));
            if is_object && silent {
                schema.insert("additionalProperties".into(), Value::Bool(true));
            }
            schema.values_mut().for_each(open_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(open_objects),
        _ => {}
    }
}

/// Error responses that appear, word for word, on more than one operation become shared
/// components that the operations refer to.
fn shared_responses(document: &mut Value) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let is_error = |status: &str, response: &Value| {
        (status.starts_with('4') || status.starts_with('5'))
            && response.get("description").is_some()
    };
    for item in paths.values().filter_map(Value::as_object) {
        for op in item.values().filter_map(Value::as_object) {
            for (status, response) in op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if is_error(status, response)
                    && let Some(description) = response.get("description").and_then(Value::as_str)
                {
                    *counts
                        .entry((status.clone(), description.to_owned()))
                        .or_default() += 1;
                }
            }
        }
    }
    let mut shared = Map::new();
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let Some(description) = response
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                let key = (status.clone(), description.clone());
                if !is_error(status, response) || counts.get(&key).copied().unwrap_or(0) < 2 {
                    continue;
                }
                let name = format!("{}{status}", pascal(&description));
                let mut component = response.clone();
                let header = match status.as_str() {
                    "401" => Some(("WWW-Authenticate", "Always `Bearer`.")),
                    "429" | "503" => Some(("Retry-After", "Seconds to wait before trying again.")),
                    _ => None,
                };
                if let (Some((header, what)), Some(object)) = (header, component.as_object_mut()) {
                    object.insert(
                        "headers".into(),
                        json!({header: {"description": what, "schema": {"type": "string"}}}),
                    );
                }
                shared.insert(name.clone(), component);
                *response = json!({"$ref": format!("#/components/responses/{name}")});
            }
        }
    }
    if let Some(components) = document
        .get_mut("components")
        .and_then(Value::as_object_mut)
    {
        let responses = components
            .entry("responses")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(responses) = responses.as_object_mut() {
            responses.extend(shared);
        }
    }
}

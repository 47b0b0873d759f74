//! Metadata values as JSON for reports.

use crate::gguf::Value;
use serde_json::{json, Map, Number, Value as Json};

/// Arrays longer than this are shortened unless the caller asks for everything.
pub const ARRAY_PREVIEW: usize = 8;

/// An f32 as the shortest decimal that reads back to the same f32 (so `1e-5` stays `1e-5`).
pub fn f32_json(x: f32) -> Json {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

/// Type name as gguf-py prints it, with the element type for arrays (`ARRAY[STRING]`).
pub fn type_name(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("ARRAY[{}]", a.elem_type().name()),
        other => other.value_type().name().to_string(),
    }
}

/// A value as JSON. Arrays longer than `limit` become
/// `{"array_of": T, "len": n, "head": [first `limit` elements]}`.
pub fn value_json(v: &Value<'_>, limit: Option<usize>) -> Json {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => f32_json(x),
        Value::F64(x) => Number::from_f64(x).map(Json::Number).unwrap_or(Json::Null),
        Value::Bool(x) => json!(x),
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Array(a) => {
            let take = limit.unwrap_or(usize::MAX);
            let items: Vec<Json> = a.iter().take(take).map(|e| value_json(&e, limit)).collect();
            if (items.len() as u64) < a.len() {
                let mut m = Map::new();
                m.insert("array_of".into(), json!(a.elem_type().name()));
                m.insert("len".into(), json!(a.len()));
                m.insert("head".into(), Json::Array(items));
                Json::Object(m)
            } else {
                Json::Array(items)
            }
        }
    }
}

/// A value for a human: scalars as text, arrays shortened to `limit` elements.
pub fn value_text(v: &Value<'_>, limit: Option<usize>) -> String {
    match v {
        Value::F32(x) => format!("{x}"),
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Array(a) => {
            let take = limit.unwrap_or(usize::MAX);
            let mut parts: Vec<String> =
                a.iter().take(take).map(|e| value_text(&e, limit)).collect();
            if (parts.len() as u64) < a.len() {
                parts.push(format!("... ({} total)", a.len()));
            }
            format!("[{}]", parts.join(", "))
        }
        other => value_json(other, limit).to_string(),
    }
}

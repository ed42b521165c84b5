//! Checks on a client's `response_format` JSON schema before it becomes a grammar on the engine's thread.
//!
//! The grammar is compiled and applied where every client's tokens are decoded, so one huge schema slows everyone
//! (issue 24, F5: a 5,000-value enum held the engine for 9.5 s). Caps, each answered 400 naming the field:
//! the schema's size in bytes (`serve.max_schema_bytes`, default 16 KiB, [`Code::ServerSchemaTooComplex`]), its
//! alternatives (`enum` values + `anyOf`/`oneOf` branches + `type` lists, summed; `serve.max_schema_alternatives`,
//! default 256, same code), repetition bounds (`minItems`, `maxLength`… at most [`MAX_REPEAT`]), a known `type`,
//! local non-recursive `$ref`s (an answer must be able to end); then the grammar converter itself, off the engine's
//! thread ([`check_grammar`]), and what it refuses is 400 too. Messages name fields by path; property names a client
//! chose appear only when they are plain ASCII identifiers.

use karte_core::Code;
use serde_json::Value;

use crate::error::{bad_request, ApiError};
use crate::state::Limits;

/// Largest `minItems`/`maxItems`/`minLength`/`maxLength`/`minProperties`/`maxProperties`: the converter spells a
/// bound out rule by rule, and a longer answer would not fit `max_tokens` anyway.
pub const MAX_REPEAT: u64 = 2048;
/// Nodes visited while following `$ref`s (a diamond of references could otherwise multiply the work).
const MAX_VISITS: usize = 20_000;

const ROOT: &str = "response_format.json_schema.schema";
const TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "object", "array", "null",
];
const COUNTS: [&str; 6] = [
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
];

fn too_complex(what: String) -> ApiError {
    ApiError::new(
        Code::ServerSchemaTooComplex,
        format!(
            "出力形式（JSON スキーマ）が大きすぎます（{what}）。スキーマを小さくしてください。"
        ),
    )
}

fn key_name(k: &str) -> &str {
    if !k.is_empty()
        && k.len() <= 40
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    {
        k
    } else {
        "*"
    }
}

/// The structural checks (size, alternatives, bounds, types, references).
pub fn check(schema: &Value, limits: &Limits) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |v| v.len());
    if bytes > limits.max_schema_bytes {
        return Err(too_complex(format!(
            "{ROOT} が {bytes} バイト、上限は {} バイト",
            limits.max_schema_bytes
        )));
    }
    let mut w = Walk {
        root: schema,
        alternatives: 0,
        max_alternatives: limits.max_schema_alternatives,
        visits: 0,
        refs: Vec::new(),
    };
    w.node(schema, ROOT.to_string())
}

struct Walk<'a> {
    root: &'a Value,
    alternatives: usize,
    max_alternatives: usize,
    visits: usize,
    /// `$ref` targets being expanded: one seen again is a recursion.
    refs: Vec<String>,
}

impl Walk<'_> {
    fn add_alternatives(&mut self, n: usize, path: &str) -> Result<(), ApiError> {
        self.alternatives += n;
        if self.alternatives > self.max_alternatives {
            return Err(too_complex(format!(
                "{path} までで選択肢が {} 個、上限は {} 個",
                self.alternatives, self.max_alternatives
            )));
        }
        Ok(())
    }

    fn node(&mut self, v: &Value, path: String) -> Result<(), ApiError> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(too_complex(format!(
                "{path} の参照（$ref）の展開が多すぎます"
            )));
        }
        let m = match v {
            Value::Bool(_) => return Ok(()),
            Value::Object(m) => m,
            _ => {
                return Err(bad_request(&format!(
                    "{path} はオブジェクトか true/false にしてください"
                )))
            }
        };
        for (k, x) in m {
            let here = format!("{path}.{}", key_name(k));
            match k.as_str() {
                "type" => match x {
                    Value::String(t) if TYPES.contains(&t.as_str()) => {}
                    Value::Array(a)
                        if !a.is_empty()
                            && a.iter()
                                .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))) =>
                    {
                        self.add_alternatives(a.len(), &here)?;
                    }
                    _ => {
                        return Err(bad_request(&format!(
                            "{here} は {} のいずれかにしてください",
                            TYPES.join(", ")
                        )))
                    }
                },
                "enum" => match x {
                    Value::Array(a) if !a.is_empty() => self.add_alternatives(a.len(), &here)?,
                    _ => return Err(bad_request(&format!("{here} は空でない配列にしてください"))),
                },
                "anyOf" | "oneOf" | "allOf" | "prefixItems" => match x {
                    Value::Array(a) if !a.is_empty() => {
                        if k != "allOf" && k != "prefixItems" {
                            self.add_alternatives(a.len(), &here)?;
                        }
                        for (i, s) in a.iter().enumerate() {
                            self.node(s, format!("{here}[{i}]"))?;
                        }
                    }
                    _ => return Err(bad_request(&format!("{here} は空でない配列にしてください"))),
                },
                "properties" | "$defs" | "definitions" | "patternProperties" => match x {
                    Value::Object(props) => {
                        // Definitions are checked where they are used (through `$ref`), and once here for
                        // their own shape.
                        for (name, s) in props {
                            self.node(s, format!("{here}.{}", key_name(name)))?;
                        }
                    }
                    _ => return Err(bad_request(&format!("{here} はオブジェクトにしてください"))),
                },
                "items"
                | "additionalProperties"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else"
                | "additionalItems" => match x {
                    Value::Array(a) => {
                        for (i, s) in a.iter().enumerate() {
                            self.node(s, format!("{here}[{i}]"))?;
                        }
                    }
                    other => self.node(other, here)?,
                },
                _ if COUNTS.contains(&k.as_str()) => match x.as_u64() {
                    Some(n) if n <= MAX_REPEAT => {}
                    _ => {
                        return Err(bad_request(&format!(
                            "{here} は 0 以上 {MAX_REPEAT} 以下の整数にしてください"
                        )))
                    }
                },
                "$ref" => self.reference(x, &here)?,
                // Titles, descriptions, formats, patterns, required, minimum, const…: no repetition to expand.
                _ => {}
            }
        }
        Ok(())
    }

    fn reference(&mut self, x: &Value, here: &str) -> Result<(), ApiError> {
        let Some(r) = x.as_str() else {
            return Err(bad_request(&format!("{here} は文字列にしてください")));
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(bad_request(&format!(
                "{here} はこのスキーマ内（#/ で始まる）の参照にしてください"
            )));
        };
        if self.refs.iter().any(|p| p == pointer) || pointer.is_empty() {
            return Err(bad_request(&format!(
                "{here} が自分自身を参照しています（再帰するスキーマは使えません）"
            )));
        }
        let Some(target) = self.root.pointer(pointer) else {
            return Err(bad_request(&format!(
                "{here} の参照先がスキーマ内にありません"
            )));
        };
        self.refs.push(pointer.to_string());
        let r = self.node(target, here.to_string());
        self.refs.pop();
        r
    }
}

/// The grammar converter (karte-engine, llama.cpp's `json_schema_to_grammar`) on a blocking thread: what it cannot
/// convert is answered 400 here instead of failing on the engine's thread as a server error.
pub async fn check_grammar(schema: Value) -> Result<(), ApiError> {
    let ok =
        tokio::task::spawn_blocking(move || karte_engine::json_schema_grammar(&schema).is_ok())
            .await
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(bad_request(&format!(
            "{ROOT} を出力の文法に変換できません。対応している形（type, properties, items, enum, anyOf など）で書いてください"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(v: Value) -> Option<(Code, String)> {
        check(&v, &Limits::default())
            .err()
            .map(|e| (e.error.code, e.error.message))
    }

    #[test]
    fn karte_s_own_drafting_schema_passes() {
        let s = json!({
            "type": "object",
            "properties": {
                "plan": {"type": "array", "maxItems": 300, "items": {"type": "object", "properties": {
                    "text": {"type": "string", "maxLength": 160},
                    "facts": {"type": "array", "maxItems": 8, "items": {"type": "integer"}}
                }, "required": ["text", "facts"]}}
            },
            "required": ["plan"]
        });
        assert_eq!(code(s), None);
    }

    #[test]
    fn caps_and_unusable_schemas_name_the_field() {
        let values: Vec<String> = (0..5000).map(|i| format!("{i:0>100}")).collect();
        let cases = [
            (
                json!({"type": "string", "enum": values}),
                Code::ServerSchemaTooComplex,
                "バイト",
            ),
            (
                json!({"type": "string", "enum": (0..300).collect::<Vec<_>>()}),
                Code::ServerSchemaTooComplex,
                "schema.enum",
            ),
            (
                json!({"type": "wizard"}),
                Code::ServerBadRequest,
                "schema.type",
            ),
            (
                json!({"type": "array", "minItems": 1_000_000}),
                Code::ServerBadRequest,
                "schema.minItems",
            ),
            (
                json!({"type": "object", "properties": {"note": {"type": "string", "minLength": 100_000_000u64}}}),
                Code::ServerBadRequest,
                "schema.properties.note.minLength",
            ),
            (json!({"$ref": "#"}), Code::ServerBadRequest, "schema.$ref"),
            (
                json!({"$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}),
                Code::ServerBadRequest,
                "再帰",
            ),
            (
                json!({"$ref": "https://example.org/s.json"}),
                Code::ServerBadRequest,
                "#/",
            ),
            (json!(42), Code::ServerBadRequest, "schema は"),
        ];
        for (schema, want, needle) in cases {
            let (c, m) = code(schema.clone()).unwrap_or_else(|| panic!("accepted: {schema}"));
            assert_eq!(c, want, "{m}");
            assert!(m.contains(needle), "{needle:?} not in {m}");
        }
        // A non-recursive local reference is fine.
        assert_eq!(
            code(
                json!({"$defs": {"s": {"type": "string"}}, "type": "array", "items": {"$ref": "#/$defs/s"}})
            ),
            None
        );
    }

    #[test]
    fn property_names_a_client_chose_are_not_repeated_unless_plain() {
        let (_, m) =
            code(json!({"type": "object", "properties": {"山田太郎": {"type": "wizard"}}}))
                .unwrap();
        assert!(!m.contains("山田"), "{m}");
        assert!(m.contains("properties.*.type"), "{m}");
    }
}

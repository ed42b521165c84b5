//! The drafting workload, built exactly as karte-api builds it (karte-core's floor and prompt), without linking
//! karte-api: the sample dictations, and a long one made of several of them.

use karte_engine::{ChatMessage, ChatRequest};

/// `(name, dictation)`, sorted by name, then `long`: the first `long_parts` samples one after another, a visit note
/// of about 2,000 characters.
pub fn samples(long_parts: usize) -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("assets/samples")
        .map(|e| {
            let p = e.expect("dir entry").path();
            (
                p.file_stem().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("sample"),
            )
        })
        .collect();
    out.sort();
    if long_parts > 0 {
        let long = out
            .iter()
            .take(long_parts)
            .map(|(_, t)| t.trim())
            .collect::<Vec<_>>()
            .join("\n");
        out.push(("long".into(), long));
    }
    out
}

/// The request the drafting API sends for `dictation`: system instructions, the floor's items as numbered data,
/// and (with `grammar`) the JSON schema. `max_tokens` caps the answer (karte-api allows twice the source + 256).
pub fn request(dictation: &str, grammar: bool, max_tokens: u32) -> ChatRequest {
    let kind = karte_core::document::default_kind();
    let a = karte_core::pipeline::analyze(dictation, kind).expect("sample analyses");
    let floor = karte_core::pipeline::floor_sections(&a);
    let prompt = karte_core::phrase::build(kind, &floor);
    let mut req = ChatRequest::new(vec![
        ChatMessage::system(&prompt.system),
        ChatMessage::user(&prompt.user),
    ]);
    if grammar {
        req.json_schema = Some(prompt.schema);
    }
    req.max_tokens = max_tokens;
    req
}

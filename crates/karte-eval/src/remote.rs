//! A remote candidate: any OpenAI-compatible endpoint (karte-server, a clinic GPU server) through karte-llm's
//! HTTP client. `NAME=URL` or `NAME=URL#MODEL`; a bearer token, if the server needs one, comes from the
//! environment variable `KARTE_EVAL_TOKEN` (never from the command line, where other users could read it).

use crate::candidate::{Candidate, CandidateInfo, CandidateSpec, EngineCandidate};
use karte_core::{Code, Error, Result};
use karte_llm::{HttpEngine, HttpEngineConfig};
use std::sync::Arc;

pub fn open(spec: &CandidateSpec) -> Result<Box<dyn Candidate>> {
    let (url, model) = match spec.source.split_once('#') {
        Some((u, m)) => (u.to_string(), m.to_string()),
        None => (spec.source.clone(), String::new()),
    };
    let url = url
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let mut cfg = HttpEngineConfig::new(&url, std::env::var("KARTE_EVAL_TOKEN").ok());
    cfg.model = model.clone();
    let engine = HttpEngine::new(cfg)?;
    // The model list is the cheapest standard request: it proves the endpoint answers before any item is run, and
    // names the model the report records.
    let list = engine.models()?;
    let served = if model.is_empty() {
        match list.data.as_slice() {
            [only] => only.id.clone(),
            _ => {
                return Err(Error::new(
                    Code::EvalCandidateInvalid,
                    format!(
                        "{url} は複数のモデルを提供しています。名前=URL#モデル名 の形で選んでください。"
                    ),
                ))
            }
        }
    } else {
        model
    };
    let info = CandidateInfo {
        name: spec.name.clone(),
        kind: "remote".into(),
        source: url,
        sha256: None,
        size_bytes: None,
        model: Some(served),
    };
    Ok(Box::new(EngineCandidate::new(info, Arc::new(engine))))
}

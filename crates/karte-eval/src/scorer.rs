//! The log-likelihood scorer over karte-engine (`Engine::score`: raw context, no chat template, the context's KV
//! cells reused for every continuation).
//!
//! The one place karte-eval uses the engine outside the `ChatEngine` contract, on purpose: canary exposure needs
//! per-token probabilities, which no chat answer carries and OpenAI-compatible servers do not return for a given
//! continuation (`open_scorer` refuses endpoints). Everything else a candidate does goes through the contract.

use crate::canary::Scorer;
use crate::candidate::CandidateSpec;
use karte_core::Result;
use karte_engine::{Engine, EngineConfig};

pub struct EngineScorer(pub Engine);

impl Scorer for EngineScorer {
    fn score(&self, context: &str, continuations: &[String]) -> Result<Vec<f64>> {
        Ok(self
            .0
            .score(context, continuations)?
            .into_iter()
            .map(|s| s.logprob)
            .collect())
    }
}

/// Load a local candidate (GGUF path or manifest name, verified like any model) for scoring.
pub fn open_local(spec: &CandidateSpec) -> Result<Box<dyn Scorer>> {
    let m = karte_models::resolve(Some(&spec.source))?;
    karte_models::verify(&m)?;
    let engine = Engine::load(EngineConfig::new(&m.path, &spec.name))?;
    Ok(Box::new(EngineScorer(engine)))
}

//! The log-likelihood scorer over karte-engine (`Engine::score`: raw context, no chat template, the context's KV
//! cells reused for every continuation).

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

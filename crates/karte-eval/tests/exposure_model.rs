//! Exposure through the real engine scorer (karte-engine `Engine::score`) on the fast model. A canary the model
//! has just read (placed in its context: in-context memorisation stands in for training) must rank first among the
//! samples, exposure log2(K+1); the same computation on a canary it has not seen must give far less.

use karte_core::Result;
use karte_engine::{Engine, EngineConfig};
use karte_eval::canary::{self, make_kit, Scorer};
use karte_eval::scorer::EngineScorer;
use std::path::PathBuf;

fn fast_model() -> PathBuf {
    let dir = std::env::var_os("KARTE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/karte/models"));
    // The file, not the manifest name that CI puts in KARTE_TEST_MODEL.
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model {} missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// The model after it has "seen" `memory`: the text precedes every context.
struct Seen<'a> {
    inner: &'a EngineScorer,
    memory: String,
}

impl Scorer for Seen<'_> {
    fn score(&self, context: &str, conts: &[String]) -> Result<Vec<f64>> {
        self.inner
            .score(&format!("{}{context}", self.memory), conts)
    }
}

#[test]
fn a_canary_in_the_models_context_is_exposed_and_an_unseen_one_is_not() {
    let mut cfg = EngineConfig::new(fast_model(), "smollm2-135m");
    cfg.n_threads = Some(1);
    cfg.n_ctx = 1024;
    let scorer = EngineScorer(Engine::load(cfg).unwrap());
    let kit = make_kit(2, &[1], 21).unwrap();
    let (seen, unseen) = (&kit.canaries[0], &kit.canaries[1]);
    let memory = format!("{}\n{}\n", seen.text, seen.text);
    let model = Seen {
        inner: &scorer,
        memory,
    };
    let k = 63;
    let r = canary::measure("smol", &model, &kit, k, 5, &mut |_, _| {}).unwrap();
    let (a, b) = (&r.canaries[0], &r.canaries[1]);
    assert_eq!(a.id, seen.id);
    assert_eq!(b.id, unseen.id);
    assert_eq!(
        a.rank, 1,
        "the secret the model just read ranks first: {a:?}"
    );
    assert!((a.sampled_rank - 64f64.log2()).abs() < 1e-9);
    assert!(
        a.normal_fit.unwrap() > a.sampled_rank,
        "extrapolation goes beyond the sample: {a:?}"
    );
    assert!(
        b.sampled_rank < a.sampled_rank - 2.0,
        "unseen {b:?} vs seen {a:?}"
    );
    // Real log-likelihoods: negative, and the samples spread.
    assert!(a.secret_logprob < 0.0 && a.sample_sd_logprob > 0.0);
}

//! Candidates: a model to compare, local (a GGUF file run by karte-engine) or remote (an OpenAI-compatible
//! endpoint through karte-llm's HTTP client). Both are a karte-llm [`ChatEngine`] handed to karte-api's
//! `Drafter::with_engine`, so the raw prompts and the full Karte pipeline (floor, phrasing, verification, guard) are
//! exactly the same for every candidate.

use karte_api::{DraftOptions, Drafter};
use karte_core::{Code, DraftOutput, Error, Result};
use karte_engine::{Engine, EngineConfig};
use karte_llm::{CancelToken, ChatEngine, ChatRequest, ChatResponse};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `NAME=PATH_OR_URL` from the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateSpec {
    pub name: String,
    pub source: String,
}

impl CandidateSpec {
    pub fn parse(s: &str) -> Result<CandidateSpec> {
        match s.split_once('=') {
            Some((n, src)) if !n.trim().is_empty() && !src.trim().is_empty() => Ok(CandidateSpec {
                name: n.trim().to_string(),
                source: src.trim().to_string(),
            }),
            _ => Err(Error::new(
                Code::EvalCandidateInvalid,
                "候補モデルは 名前=GGUFファイルのパス または 名前=http(s)://… の形で指定してください。",
            )),
        }
    }
    pub fn is_remote(&self) -> bool {
        self.source.starts_with("http://") || self.source.starts_with("https://")
    }
}

/// What the report states about a candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateInfo {
    pub name: String,
    /// `local` or `remote`.
    pub kind: String,
    /// File name (never the full path: it can contain a login name) or the endpoint URL.
    pub source: String,
    /// sha256 of the model file; `None` for an endpoint.
    pub sha256: Option<String>,
    pub size_bytes: Option<u64>,
    /// The model name the endpoint reports or was asked for.
    pub model: Option<String>,
}

impl CandidateInfo {
    /// The identity results are cached under: the file's content, or the endpoint and its model.
    pub fn cache_identity(&self) -> String {
        match &self.sha256 {
            Some(h) => format!("sha256:{h}"),
            None => format!(
                "url:{}#{}",
                self.source,
                self.model.clone().unwrap_or_default()
            ),
        }
    }
}

pub trait Candidate: Send + Sync {
    fn info(&self) -> &CandidateInfo;
    /// The raw model, no Karte pipeline: the engine contract's request and answer, whose stats carry every speed
    /// the report shows (an endpoint that does not report prompt time leaves prompt speed unmeasured).
    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse>;
    /// The full Karte pipeline with guardrails, on this candidate's model.
    fn draft(&self, dictation: &str) -> Result<DraftOutput>;
    /// Whether peak memory of this process says anything about the candidate (true only in-process).
    fn in_process(&self) -> bool;
}

/// A candidate over a karte-llm [`ChatEngine`]: the raw prompts and the Drafter use the same engine, in this
/// process (karte-engine's `Engine`) or behind an endpoint, through the same contract.
pub struct EngineCandidate {
    info: CandidateInfo,
    engine: Arc<dyn ChatEngine>,
    in_process: bool,
    drafter: Drafter,
}

impl EngineCandidate {
    pub fn new(info: CandidateInfo, engine: Arc<dyn ChatEngine>) -> Self {
        let drafter = Drafter::with_engine(Arc::clone(&engine));
        EngineCandidate {
            info,
            engine,
            in_process: false,
            drafter,
        }
    }

    /// A local GGUF file (or a manifest name): checked (size/sha256 or GGUF header), hashed, loaded once and shared
    /// by the raw prompts and the pipeline.
    pub fn open_local(spec: &CandidateSpec, n_threads: Option<i32>) -> Result<Self> {
        let m = karte_models::resolve(Some(&spec.source))?;
        karte_models::verify(&m)?;
        let sha256 = karte_models::sha256_file(&m.path)?;
        let size = std::fs::metadata(&m.path).ok().map(|x| x.len());
        let mut cfg = EngineConfig::new(&m.path, &spec.name);
        cfg.n_threads = n_threads;
        let engine = Arc::new(Engine::load(cfg)?);
        let info = CandidateInfo {
            name: spec.name.clone(),
            kind: "local".into(),
            source: m.name.clone(),
            sha256: Some(sha256),
            size_bytes: size,
            model: Some(m.name),
        };
        let mut c = Self::new(info, engine);
        c.in_process = true;
        Ok(c)
    }
}

impl Candidate for EngineCandidate {
    fn info(&self) -> &CandidateInfo {
        &self.info
    }

    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse> {
        self.engine.chat(req, &CancelToken::new(), &mut |_| {})
    }

    fn draft(&self, dictation: &str) -> Result<DraftOutput> {
        self.drafter
            .draft(dictation, &DraftOptions::default(), &mut |_| {})
    }

    fn in_process(&self) -> bool {
        self.in_process
    }
}

/// Opens candidates for a run. The runner takes it as a function so a test can hand in its own opener.
pub type Opener<'a> = dyn Fn(&CandidateSpec) -> Result<Box<dyn Candidate>> + 'a;

/// The default opener: GGUF files through karte-engine, URLs through the OpenAI-compatible client.
pub fn open(spec: &CandidateSpec) -> Result<Box<dyn Candidate>> {
    open_with(spec, None)
}

/// [`open`] with a thread count for local models.
pub fn open_with(spec: &CandidateSpec, threads: Option<i32>) -> Result<Box<dyn Candidate>> {
    if spec.is_remote() {
        crate::remote::open(spec)
    } else {
        Ok(Box::new(EngineCandidate::open_local(spec, threads)?))
    }
}

/// A log-likelihood scorer for a candidate (canary exposure).
pub fn open_scorer(spec: &CandidateSpec) -> Result<Box<dyn crate::canary::Scorer>> {
    if spec.is_remote() {
        return Err(Error::new(
            Code::EvalScoringUnsupported,
            "接続先のサーバーはトークンごとの尤度を返さないため、露出度を測れません。GGUF ファイルを指定してください。",
        ));
    }
    crate::scorer::open_local(spec)
}

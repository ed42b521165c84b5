//! karte-engine in this process, behind [`ChatEngine`].
//!
//! Used where a crash of llama.cpp taking the process down is acceptable (CLI runs, evaluation, tests) and inside
//! karte-server itself. The desktop app uses the supervised worker instead.

use std::time::Instant;

use karte_engine::{Engine, EngineConfig, GenEvent, GenerateRequest, StopReason};

use crate::{
    cancelled, CancelToken, ChatEngine, ChatRequest, ChatResponse, ChatStats, EngineKind,
    FinishReason, Piece, Result, Serving,
};

pub struct LocalEngine {
    engine: Engine,
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("model", &self.engine.info().name)
            .finish()
    }
}

impl LocalEngine {
    pub fn load(cfg: EngineConfig) -> Result<Self> {
        Ok(Self {
            engine: Engine::load(cfg)?,
        })
    }

    pub fn from_engine(engine: Engine) -> Self {
        Self { engine }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// The engine's request, field for field.
pub fn to_generate_request(req: &ChatRequest) -> GenerateRequest {
    let mut g = GenerateRequest::new(req.messages.clone());
    g.json_schema = req.json_schema.clone();
    g.max_tokens = req.max_tokens;
    g.temperature = req.temperature;
    g.seed = req.seed;
    g
}

impl ChatEngine for LocalEngine {
    fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_token: &mut dyn FnMut(Piece<'_>),
    ) -> Result<ChatResponse> {
        let t0 = Instant::now();
        let mut ttft = None;
        let mut text = String::new();
        let rx = self.engine.submit(to_generate_request(req), cancel.clone());
        for ev in rx {
            match ev {
                GenEvent::Token(piece) => {
                    ttft.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1000.0);
                    on_token(Piece::Text(&piece));
                    text.push_str(&piece);
                }
                GenEvent::Done(s) => {
                    let finish = match s.stop {
                        StopReason::Eos => FinishReason::Stop,
                        StopReason::MaxTokens | StopReason::MaxTime => FinishReason::Length,
                        StopReason::Cancelled => return Err(cancelled()),
                    };
                    return Ok(ChatResponse {
                        text,
                        stats: ChatStats {
                            model: self.engine.info().name.clone(),
                            kind: EngineKind::InProcess,
                            prompt_tokens: s.prompt_tokens,
                            generated_tokens: s.generated_tokens,
                            time_to_first_token_ms: ttft,
                            total_ms: t0.elapsed().as_secs_f64() * 1000.0,
                            finish,
                        },
                    });
                }
                GenEvent::Error(e) => return Err(e),
            }
        }
        Err(karte_core::Error::new(
            karte_core::Code::EngineFailed,
            "文章生成エンジンが停止しています。アプリを再起動してください。",
        ))
    }

    fn serving(&self) -> Serving {
        Serving::new(EngineKind::InProcess, "この端末のモデルで生成します")
    }
}

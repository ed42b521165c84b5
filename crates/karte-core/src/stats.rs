//! What one generation reports, from whichever engine ran it.
//!
//! The type lives here, not in karte-llm where the engine contract is, because a draft carries it
//! ([`crate::EngineInfo::stats`]) and the window (wasm) reads drafts through karte-core only. karte-llm re-exports
//! it as the contract's stats; karte-engine fills it, karte-server sends it (`karte_llm::openai::Usage`), the HTTP
//! client reads it back, and karte-api, the CLI and karte-eval read rates from it. One type, so a number measured in
//! one place cannot be renamed or recomputed differently in another.

use serde::{Deserialize, Serialize};

/// Why generation ended, with OpenAI's names (`stop`, `length`) so that HTTP and local answers compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer (end-of-sequence).
    Stop,
    /// The token limit was reached: the text may be cut short.
    Length,
    /// The request's time limit was reached: cut short like `Length`, and a client sees it as `length`; kept apart
    /// so that an operator can tell a slow engine from a long answer.
    TimeLimit,
    /// The caller cancelled, or stopped listening.
    Cancelled,
    /// An answer guard withheld part of the answer (OpenAI's `content_filter`): a gateway's guard, read back by
    /// the HTTP client, so a workstation can tell a filtered answer from a complete one.
    ContentFilter,
}

impl FinishReason {
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length | FinishReason::TimeLimit => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::ContentFilter => "content_filter",
        }
    }

    pub fn from_openai(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(FinishReason::Stop),
            "length" => Some(FinishReason::Length),
            "cancelled" => Some(FinishReason::Cancelled),
            "content_filter" => Some(FinishReason::ContentFilter),
            _ => None,
        }
    }
}

/// Which kind of engine produced an answer: the UI shows it (院内サーバー / この端末) and karte-api records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// karte-engine inside this process.
    InProcess,
    /// The supervised `karte-server --local` child process on this workstation.
    LocalWorker,
    /// The clinic's inference server (or any other OpenAI-compatible server).
    Server,
}

impl EngineKind {
    /// The serde name, for attributes and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::InProcess => "in_process",
            EngineKind::LocalWorker => "local_worker",
            EngineKind::Server => "server",
        }
    }

    /// The short Japanese label for the status bar.
    pub fn label_ja(self) -> &'static str {
        match self {
            EngineKind::InProcess | EngineKind::LocalWorker => "この端末",
            EngineKind::Server => "院内サーバー",
        }
    }
}

/// One generation's numbers. Phase timings are `None` where the engine that ran it does not report them (an
/// OpenAI-compatible server other than karte-server): a missing number must not read as a fast one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenStats {
    /// The model's name as the engine reports it (never a file path).
    pub model: String,
    pub kind: EngineKind,
    pub prompt_tokens: u32,
    /// Prompt tokens taken from the engine's prefix cache instead of being decoded (not part of prompt speed).
    #[serde(default)]
    pub cached_tokens: u32,
    pub generated_tokens: u32,
    /// Waiting for a free sequence in the engine's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    /// Decoding the prompt's uncached tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// From the first generated token to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_ms: Option<f64>,
    /// From sending the request to the first text piece, as the caller saw it (network included): what a user
    /// waits for. `None` when no text came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// From sending the request to the end of the answer, as the caller saw it.
    pub total_ms: f64,
    pub finish: FinishReason,
    /// Tokens guessed by prompt lookup and checked in a decode. With `draft_accepted` it tells whether speculation
    /// pays for this kind of text (each rejected guess costs a batch row); both 0 where nothing was guessed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub draft_proposed: u32,
    /// Guessed tokens that greedy decoding confirmed: tokens generated without a decode of their own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub draft_accepted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl GenStats {
    /// Numbers of a request that has not produced anything yet; engines fill them in as they go.
    pub fn new(model: impl Into<String>, kind: EngineKind) -> Self {
        Self {
            model: model.into(),
            kind,
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 0,
            queue_ms: None,
            prompt_ms: None,
            generate_ms: None,
            ttft_ms: None,
            total_ms: 0.0,
            finish: FinishReason::Stop,
            draft_proposed: 0,
            draft_accepted: 0,
        }
    }

    /// Generated tokens per second, the number users compare: over the engine's own generation time where it
    /// reports one, else over the caller's wait after the first token.
    pub fn tokens_per_s(&self) -> Option<f64> {
        match self.generate_ms {
            Some(ms) => rate(self.generated_tokens, ms),
            None => {
                let gen_ms = self.total_ms - self.ttft_ms.unwrap_or(0.0);
                rate(self.generated_tokens.saturating_sub(1), gen_ms)
            }
        }
    }

    /// One document asked in parts, as one request's numbers: counts and times add up, the first part's time to
    /// first text is the document's, and the last part's model and finish are what the reader is told.
    pub fn then(self, next: GenStats) -> GenStats {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        GenStats {
            model: next.model,
            kind: next.kind,
            prompt_tokens: self.prompt_tokens + next.prompt_tokens,
            cached_tokens: self.cached_tokens + next.cached_tokens,
            generated_tokens: self.generated_tokens + next.generated_tokens,
            queue_ms: add(self.queue_ms, next.queue_ms),
            prompt_ms: add(self.prompt_ms, next.prompt_ms),
            generate_ms: add(self.generate_ms, next.generate_ms),
            ttft_ms: self.ttft_ms.or(next.ttft_ms.map(|t| t + self.total_ms)),
            total_ms: self.total_ms + next.total_ms,
            finish: next.finish,
            draft_proposed: self.draft_proposed + next.draft_proposed,
            draft_accepted: self.draft_accepted + next.draft_accepted,
        }
    }

    /// Decoded prompt tokens per second (cached tokens cost nothing and would inflate it); `None` where the engine
    /// does not report prompt time.
    pub fn prompt_tokens_per_s(&self) -> Option<f64> {
        rate(
            self.prompt_tokens.saturating_sub(self.cached_tokens),
            self.prompt_ms?,
        )
    }
}

fn rate(tokens: u32, ms: f64) -> Option<f64> {
    (ms > 0.0 && tokens > 0).then(|| f64::from(tokens) * 1000.0 / ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_prefer_the_engines_own_timings() {
        let mut s = GenStats::new("m", EngineKind::InProcess);
        s.prompt_tokens = 110;
        s.cached_tokens = 10;
        s.generated_tokens = 21;
        s.ttft_ms = Some(1000.0);
        s.total_ms = 3000.0;
        // The caller's view only: 20 tokens after the first, in 2 s.
        assert_eq!(s.tokens_per_s(), Some(10.0));
        assert_eq!(s.prompt_tokens_per_s(), None);
        s.generate_ms = Some(1000.0);
        s.prompt_ms = Some(500.0);
        assert_eq!(s.tokens_per_s(), Some(21.0));
        assert_eq!(s.prompt_tokens_per_s(), Some(200.0));
    }

    #[test]
    fn parts_of_one_document_add_up_as_one_request() {
        let part = |generated: u32, ttft: Option<f64>, total: f64| {
            let mut s = GenStats::new("m", EngineKind::InProcess);
            s.prompt_tokens = 100;
            s.generated_tokens = generated;
            s.generate_ms = Some(f64::from(generated) * 10.0);
            s.ttft_ms = ttft;
            s.total_ms = total;
            s
        };
        let both = part(50, Some(300.0), 1000.0).then(part(30, Some(200.0), 600.0));
        assert_eq!((both.prompt_tokens, both.generated_tokens), (200, 80));
        assert_eq!((both.ttft_ms, both.total_ms), (Some(300.0), 1600.0));
        assert_eq!(both.tokens_per_s(), Some(100.0));
        // A first part that showed nothing: the document's first text came in the second, after the first.
        let late = part(0, None, 500.0).then(part(30, Some(200.0), 600.0));
        assert_eq!(late.ttft_ms, Some(700.0));
    }

    #[test]
    fn a_time_limit_is_a_length_limit_on_the_wire() {
        assert_eq!(FinishReason::TimeLimit.as_openai(), "length");
        assert_eq!(
            FinishReason::from_openai("length"),
            Some(FinishReason::Length)
        );
    }
}

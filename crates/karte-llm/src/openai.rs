//! The OpenAI chat-completions wire format, as karte-server speaks it and [`crate::HttpEngine`] reads it.
//!
//! One definition for both ends, so the server and the client cannot drift apart. Only the fields Karte uses are
//! typed; unknown fields from other servers (llama-server, vLLM) are ignored when reading.
//!
//! The wire types convert to and from the engine contract's own types ([`ChatRequest`], [`GenStats`]) here and
//! nowhere else: the client sends with [`ChatCompletionRequest::from_chat`] and reads [`Usage::apply_to`], the
//! server reads with [`ChatCompletionRequest::to_chat`] and answers with [`Usage::from`].

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, ChatRequest, GenStats};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Newer OpenAI clients send this instead of `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// llama-server's extension, same meaning: `false` keeps this request out of the shared-prefix cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prompt: Option<bool>,
    /// Karte's extension: `"off"` decodes this request without prompt-lookup speculation even where the server runs
    /// with it; `"lookup"` (the same as leaving it out) lets the server's setting decide. Anything else is a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculation: Option<WireSpeculation>,
}

/// The values of [`ChatCompletionRequest::speculation`]: a typed enum so that a typo (`"of"`) is refused rather
/// than read as "on".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireSpeculation {
    Off,
    Lookup,
}

impl ChatCompletionRequest {
    /// The wire form of `req` for `model` (empty: the server's only model). `max_time` stays behind: the server
    /// sets its own.
    pub fn from_chat(req: &ChatRequest, model: &str, stream: bool) -> Self {
        Self {
            model: model.to_string(),
            messages: req.messages.clone(),
            max_tokens: Some(req.max_tokens),
            max_completion_tokens: None,
            temperature: Some(req.temperature),
            seed: Some(req.seed),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
            response_format: req
                .json_schema
                .as_ref()
                .map(|s| ResponseFormat::JsonSchema {
                    json_schema: JsonSchemaFormat {
                        name: "karte".into(),
                        schema: s.clone(),
                        strict: Some(true),
                    },
                }),
            cache_prompt: (!req.prefix_cache).then_some(false),
            speculation: (!req.speculation).then_some(WireSpeculation::Off),
        }
    }

    /// The request as a client meant it, with OpenAI's defaults; a server checks it and applies its limits after.
    pub fn to_chat(&self) -> ChatRequest {
        let mut r = ChatRequest::new(self.messages.clone());
        r.max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(r.max_tokens);
        r.temperature = self.temperature.unwrap_or(0.0);
        r.seed = self.seed.unwrap_or(0);
        r.json_schema = self.response_format.as_ref().and_then(|f| f.schema());
        r.prefix_cache = self.cache_prompt.unwrap_or(true);
        r.speculation = self.speculation != Some(WireSpeculation::Off);
        r
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    /// Any JSON object: mapped to a grammar for a JSON object with any members.
    JsonObject,
    JsonSchema {
        json_schema: JsonSchemaFormat,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: String,
    pub schema: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl ResponseFormat {
    /// The JSON schema the engine's grammar should enforce, if any.
    pub fn schema(&self) -> Option<serde_json::Value> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(serde_json::json!({"type": "object"})),
            ResponseFormat::JsonSchema { json_schema } => Some(json_schema.schema.clone()),
        }
    }
}

/// [`GenStats`] on the wire: OpenAI's token counts, plus Karte's extensions for what OpenAI has no field for (other
/// servers leave them out, and the client then reports those numbers as unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Karte extension: the server's own time to first token (queue wait + prompt), for metrics and benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_ms: Option<f64>,
    /// Karte extension: [`GenStats::queue_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    /// Karte extension: [`GenStats::prompt_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// Karte extension: [`GenStats::generate_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u32,
}

impl From<&GenStats> for Usage {
    fn from(s: &GenStats) -> Self {
        Usage {
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.generated_tokens,
            total_tokens: s.prompt_tokens + s.generated_tokens,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: s.cached_tokens,
            }),
            time_to_first_token_ms: s.ttft_ms,
            queue_ms: s.queue_ms,
            prompt_ms: s.prompt_ms,
            generate_ms: s.generate_ms,
        }
    }
}

impl Usage {
    /// Copies what the server measured into `stats`. The time to first token and the total stay the client's own:
    /// they are what the caller waited, network included.
    pub fn apply_to(&self, stats: &mut GenStats) {
        stats.prompt_tokens = self.prompt_tokens;
        stats.generated_tokens = self.completion_tokens;
        stats.cached_tokens = self
            .prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens);
        stats.queue_ms = self.queue_ms;
        stats.prompt_ms = self.prompt_ms;
        stats.generate_ms = self.generate_ms;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    /// Defaults: upstream engines (TGI, older servers) leave some of these out.
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub owned_by: String,
}

/// OpenAI's error envelope. `code` carries Karte's stable code (`server.unauthorized`…), `type` OpenAI's class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
}

/// `GET /health`: `ready` is false while the model loads or after it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub ready: bool,
    #[serde(default)]
    pub model: Option<String>,
    /// Where the model runs once loaded: "CPU" or the GPU device. IT checks a CUDA build with it, and a CPU
    /// fallback (driver missing, GPU out of memory) shows here, not only in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Upstream mode: each engine karte-server forwards to, with its state (`up`, `down`, `unknown`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamHealth {
    pub url: String,
    pub state: String,
    pub in_flight: usize,
    #[serde(default)]
    pub models: Vec<String>,
}

/// `POST /v1/audio/transcriptions` with `response_format=json` (the default): the text alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub text: String,
}

/// `response_format=verbose_json`: OpenAI's shape, which the `openai` packages parse into their own types, with
/// Karte's additions (`engine`, `speech_seconds`, `corrections`) that other servers leave out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerboseTranscription {
    pub task: String,
    /// OpenAI names the language in full (`japanese`).
    pub language: String,
    pub duration: f64,
    pub text: String,
    pub segments: Vec<TranscriptionSegment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Seconds the voice-activity gate judged to be speech: 0 means the recording held no speech, which tells an
    /// empty text from silence apart from speech that gave no text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_seconds: Option<f64>,
    /// Near-homophones the recogniser replaced with lexicon terms, with what it heard, so the physician can check
    /// them (karte-voice's correction pass). Absent from other servers' answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections: Option<Vec<TranscriptionCorrection>>,
}

/// The window shows the same corrections: one type for the wire and the window.
pub use karte_ipc::TranscriptionCorrection;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionSegment {
    pub id: u32,
    pub seek: u32,
    pub start: f64,
    pub end: f64,
    pub text: String,
    #[serde(default)]
    pub tokens: Vec<u32>,
    #[serde(default)]
    pub temperature: f64,
    pub avg_logprob: f64,
    #[serde(default)]
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineKind, FinishReason};

    /// The per-request opt-out: only `"off"` turns speculation off for the request; its absence and `"lookup"`
    /// leave the server's setting in charge; any other value is refused as a malformed body (HTTP 400), not read
    /// as "on".
    #[test]
    fn speculation_opt_out_on_the_wire() {
        let body = |extra: &str| {
            format!(r#"{{"messages":[{{"role":"user","content":"肺炎の経過を記載"}}]{extra}}}"#)
        };
        let ok = [
            ("", true),
            (r#","speculation":"off""#, false),
            (r#","speculation":"lookup""#, true),
            (r#","speculation":null"#, true),
        ];
        for (extra, may_speculate) in ok {
            let wire: ChatCompletionRequest = serde_json::from_str(&body(extra)).unwrap();
            assert_eq!(wire.to_chat().speculation, may_speculate, "{extra}");
        }
        for extra in [
            r#","speculation":"of""#,
            r#","speculation":false"#,
            r#","speculation":"ngram""#,
        ] {
            assert!(
                serde_json::from_str::<ChatCompletionRequest>(&body(extra)).is_err(),
                "{extra}"
            );
        }
        // The client sends the field only to opt out, so servers that do not know it (llama-server) see nothing.
        let req = ChatRequest::new(vec![ChatMessage::user("u")]);
        let json =
            serde_json::to_string(&ChatCompletionRequest::from_chat(&req, "m", false)).unwrap();
        assert!(!json.contains("speculation"), "{json}");
    }

    #[test]
    fn a_request_survives_the_wire() {
        let mut req = ChatRequest::new(vec![ChatMessage::system("s"), ChatMessage::user("u")]);
        req.json_schema = Some(serde_json::json!({"type": "object"}));
        req.max_tokens = 77;
        req.temperature = 0.5;
        req.seed = 9;
        req.prefix_cache = false;
        req.speculation = false;
        let wire = ChatCompletionRequest::from_chat(&req, "m", true);
        let json = serde_json::to_string(&wire).unwrap();
        let back: ChatCompletionRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_chat(), req);
    }

    #[test]
    fn stats_survive_the_wire_except_the_clients_own_waits() {
        let mut s = GenStats::new("m", EngineKind::Server);
        s.prompt_tokens = 100;
        s.cached_tokens = 60;
        s.generated_tokens = 20;
        s.queue_ms = Some(1.0);
        s.prompt_ms = Some(2.0);
        s.generate_ms = Some(3.0);
        s.ttft_ms = Some(4.0);
        s.total_ms = 10.0;
        let json = serde_json::to_string(&Usage::from(&s)).unwrap();
        let usage: Usage = serde_json::from_str(&json).unwrap();
        let mut client = GenStats::new("m", EngineKind::Server);
        client.ttft_ms = Some(40.0);
        client.total_ms = 100.0;
        client.finish = FinishReason::Length;
        usage.apply_to(&mut client);
        assert_eq!(
            client,
            GenStats {
                ttft_ms: Some(40.0),
                total_ms: 100.0,
                finish: FinishReason::Length,
                ..s
            }
        );
        // A server that sends OpenAI's fields only: the timings are unknown, not zero.
        let plain: Usage =
            serde_json::from_str(r#"{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}"#)
                .unwrap();
        let mut c = GenStats::new("m", EngineKind::Server);
        plain.apply_to(&mut c);
        assert_eq!(
            (c.prompt_tokens, c.generated_tokens, c.prompt_ms),
            (3, 2, None)
        );
    }
}

//! The owning thread: pre-load checks, model + context lifetime, generation, and the llama-bench clone.

use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use karte_core::{Code, Error, Result};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{DecodeError, LlamaModelLoadError};

use crate::gguf::{self, HeaderError, Shape};
use crate::utf8::Utf8Stream;
use crate::{
    display_name, BenchResult, EngineConfig, GenEvent, GenStats, GenerateRequest, Job, ModelInfo,
    StopReason,
};

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Pre-load checks (caller's thread)
// ---------------------------------------------------------------------------------------------------------------

/// Checks existence, format and memory before llama.cpp touches the file; returns the file size.
///
/// The memory check runs before the header is judged so that a huge file is reported as "too big for this PC" even
/// if its header is also odd: that is the message that tells the nurse what to do (close apps / use a smaller model).
pub(crate) fn preflight(cfg: &EngineConfig) -> Result<u64> {
    let path = &cfg.model_path;
    let file = display_name(path);
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Err(not_found(&file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(&file)),
        Err(_) => return Err(unreadable(&file)),
    };
    let size = meta.len();
    match gguf::check_magic(path) {
        Ok(Ok(())) => {}
        Ok(Err(HeaderError::Truncated)) => return Err(truncated(&file, size)),
        Ok(Err(HeaderError::Invalid(_))) => return Err(not_gguf(&file)),
        Err(_) => return Err(unreadable(&file)),
    }
    let header = gguf::read_header(path).map_err(|_| unreadable(&file))?;
    let shape = header.as_ref().ok().and_then(gguf::Header::shape);
    let needed = estimate_memory(size, shape, cfg.n_ctx, cfg.n_batch);
    let available = available_memory();
    tracing::info!(
        file_mib = size / MIB,
        needed_mib = needed / MIB,
        available_mib = available / MIB,
        n_ctx = cfg.n_ctx,
        "model preflight"
    );
    if available > 0 && needed > available {
        return Err(Error::new(
            Code::ModelInsufficientMemory,
            format!(
                "メモリが足りないため、モデル（{file}）を読み込めません（必要: 約 {} MiB、空き: {} MiB）。\
                 ほかのアプリを閉じてから再度お試しください。改善しない場合は管理者に連絡してください。",
                needed.div_ceil(MIB),
                available / MIB
            ),
        ));
    }
    match header {
        Ok(h) => {
            tracing::debug!(
                required_bytes = h.required_len,
                file_bytes = size,
                "gguf header ok"
            );
            Ok(size)
        }
        Err(HeaderError::Truncated) => Err(truncated(&file, size)),
        Err(HeaderError::Invalid(what)) => {
            tracing::warn!(what, "gguf header invalid");
            Err(not_gguf(&file))
        }
    }
}

/// Model file (mmapped, so it must fit in page cache to run at speed) + f16 KV cache for `n_ctx` + the compute
/// buffer llama.cpp reserves for one micro-batch (logits and attention scores) + a fixed allowance for the runtime.
///
/// Without shape metadata we assume 256 KiB of KV per token, which covers 7B-class models without GQA: refusing a
/// model that might have fit is better than letting the OS kill the app mid-note.
pub(crate) fn estimate_memory(
    file_size: u64,
    shape: Option<Shape>,
    n_ctx: u32,
    n_batch: u32,
) -> u64 {
    let n_ctx = u64::from(n_ctx);
    let n_ubatch = u64::from(n_batch.min(512));
    let (kv, compute) = match shape {
        Some(s) => (
            n_ctx * s.n_layer * s.n_head_kv * (s.k_dim + s.v_dim) * 2,
            n_ubatch * (s.n_vocab + n_ctx * s.n_head) * 4,
        ),
        None => (n_ctx * 256 * 1024, 256 * MIB),
    };
    file_size
        .saturating_add(kv)
        .saturating_add(compute)
        .saturating_add(64 * MIB)
}

/// `MemAvailable`, lowered to the cgroup's headroom when the process runs under a memory limit (containers, systemd
/// slices): the kernel kills at the cgroup limit, not at the machine's.
fn available_memory() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let mut avail = sys.available_memory();
    if sys.total_memory() > 0 {
        if let Some(cg) = sys.cgroup_limits() {
            if cg.total_memory < sys.total_memory() {
                avail = avail.min(cg.total_memory.saturating_sub(cg.rss));
            }
        }
    }
    avail
}

fn not_found(file: &str) -> Error {
    Error::new(
        Code::ModelNotFound,
        format!("モデルファイル（{file}）が見つかりません。モデルを再取得するか、管理者に連絡してください。"),
    )
}

fn unreadable(file: &str) -> Error {
    Error::new(
        Code::ModelLoadFailed,
        format!("モデルファイル（{file}）を読み取れません。ファイルの権限を確認するか、管理者に連絡してください。"),
    )
}

fn truncated(file: &str, size: u64) -> Error {
    Error::new(
        Code::ModelTruncated,
        format!(
            "モデルファイル（{file}、{} MiB）が途中で切れています。ダウンロードが完了していない可能性があります。\
             モデルを再取得してください。",
            size / MIB
        ),
    )
}

fn not_gguf(file: &str) -> Error {
    Error::new(
        Code::ModelLoadFailed,
        format!("モデルファイル（{file}）は対応している形式（GGUF）ではないか、壊れています。モデルを再取得してください。"),
    )
}

fn engine_error(detail: &str) -> Error {
    Error::new(
        Code::EngineFailed,
        format!("文章生成エンジンでエラーが発生しました（{detail}）。もう一度お試しください。続く場合はアプリを再起動してください。"),
    )
}

fn decode_error(e: DecodeError) -> Error {
    match e {
        DecodeError::NoKvCacheSlot => Error::new(
            Code::EngineFailed,
            "作業領域（コンテキスト）が足りません。入力を短くしてから再度お試しください。",
        ),
        DecodeError::NTokensZero => engine_error("decode: empty batch"),
        DecodeError::Unknown(c) => engine_error(&format!("decode {c}")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The owning thread
// ---------------------------------------------------------------------------------------------------------------

/// llama.cpp's global state may be initialised only once per process (and freeing it while a model lives is
/// undefined), so the backend is created on first use and never dropped.
fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp would otherwise print hundreds of lines to stderr; tracing lets the app filter them.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            tracing::error!(error = %e, "llama backend init failed");
            engine_error("backend init")
        })
}

pub(crate) type Ready = Result<(Arc<LlamaModel>, ModelInfo)>;

pub(crate) fn run(
    cfg: EngineConfig,
    file_size: u64,
    shutdown: crate::CancelToken,
    ready: SyncSender<Ready>,
    jobs: Receiver<Job>,
) {
    let file = display_name(&cfg.model_path);
    let t0 = Instant::now();
    let loaded = catch_unwind(AssertUnwindSafe(|| load_model(&cfg, &file)));
    let (backend, model) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err(load_failed(&file)));
            return;
        }
    };
    let threads = cfg.threads();
    let ctx = catch_unwind(AssertUnwindSafe(|| {
        model.new_context(backend, context_params(cfg.n_ctx, cfg.n_batch, threads))
    }));
    let ctx = match ctx {
        Ok(Ok(ctx)) => ctx,
        _ => {
            let _ = ready.send(Err(Error::new(
                Code::ModelLoadFailed,
                format!(
                    "モデル（{file}）の作業領域を確保できませんでした。ほかのアプリを閉じてから再度お試しください。\
                     改善しない場合は管理者に連絡してください。"
                ),
            )));
            return;
        }
    };
    let info = ModelInfo {
        name: cfg.model_name.clone(),
        n_params: model.n_params(),
        n_ctx_train: model.n_ctx_train(),
        size_bytes: file_size,
    };
    tracing::info!(
        load_ms = t0.elapsed().as_secs_f64() * 1e3,
        n_params = info.n_params,
        n_ctx = cfg.n_ctx,
        n_batch = cfg.n_batch,
        threads,
        "model loaded"
    );
    let template = model.chat_template(None).unwrap_or_else(|_| {
        tracing::warn!("model has no chat template; using chatml");
        chatml()
    });
    if ready.send(Ok((Arc::clone(&model), info))).is_err() {
        return;
    }
    let mut worker = Worker {
        shutdown,
        backend,
        model: &model,
        ctx,
        template,
        n_batch: cfg.n_batch,
        threads,
    };
    for job in jobs {
        worker.handle(job);
    }
    // `worker` (and with it the context) is dropped here, before this thread's handle on the model.
}

fn load_model(cfg: &EngineConfig, file: &str) -> Result<(&'static LlamaBackend, Arc<LlamaModel>)> {
    let backend = backend()?;
    let params = LlamaModelParams::default();
    let model = LlamaModel::load_from_file(backend, &cfg.model_path, &params).map_err(|e| match e {
        LlamaModelLoadError::PathToStrError(_) | LlamaModelLoadError::NullError(_) => Error::new(
            Code::ModelLoadFailed,
            format!("モデルファイル（{file}）の保存場所の名前に使用できない文字が含まれています。管理者に連絡してください。"),
        ),
        LlamaModelLoadError::NullResult => load_failed(file),
    })?;
    Ok((backend, Arc::new(model)))
}

fn load_failed(file: &str) -> Error {
    Error::new(
        Code::ModelLoadFailed,
        format!("モデル（{file}）を読み込めませんでした。ファイルが壊れているか、対応していないモデルです。モデルを再取得してください。"),
    )
}

fn chatml() -> LlamaChatTemplate {
    LlamaChatTemplate::new("chatml").expect("static template name has no NUL")
}

/// `with_no_perf(false)`: llama.cpp skips its timers otherwise and its own timings read "inf".
fn context_params(n_ctx: u32, n_batch: u32, threads: i32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_no_perf(false)
}

struct Worker<'m> {
    shutdown: crate::CancelToken,
    backend: &'static LlamaBackend,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: LlamaChatTemplate,
    n_batch: u32,
    threads: i32,
}

impl Worker<'_> {
    /// A panic inside llama-cpp-2 (it has `expect`s on FFI results) becomes an error for that job only; the next job
    /// starts from a cleared KV cache, so the engine stays usable. A C-level abort (GGML_ASSERT) cannot be caught.
    fn handle(&mut self, job: Job) {
        if self.shutdown.is_cancelled() {
            match job {
                Job::Generate { events, .. } => {
                    let _ = events.send(GenEvent::Error(crate::stopped_error()));
                }
                Job::Bench { reply, .. } => {
                    let _ = reply.send(Err(crate::stopped_error()));
                }
            }
            return;
        }
        match job {
            Job::Generate {
                req,
                cancel,
                events,
            } => {
                let mut sink = |s: &str| events.send(GenEvent::Token(s.to_owned())).is_ok();
                let res =
                    catch_unwind(AssertUnwindSafe(|| self.generate(&req, &cancel, &mut sink)));
                let event = match res {
                    Ok(Ok(stats)) => GenEvent::Done(stats),
                    Ok(Err(e)) => {
                        tracing::warn!(code = %e.code, "generation failed");
                        GenEvent::Error(e)
                    }
                    Err(_) => {
                        tracing::error!("generation panicked");
                        GenEvent::Error(engine_error("panic"))
                    }
                };
                let _ = events.send(event);
            }
            Job::Bench {
                n_prompt,
                n_gen,
                reps,
                reply,
            } => {
                let res = catch_unwind(AssertUnwindSafe(|| self.bench(n_prompt, n_gen, reps)))
                    .unwrap_or_else(|_| Err(engine_error("panic")));
                let _ = reply.send(res);
            }
        }
    }

    fn prompt(&self, req: &GenerateRequest) -> Result<String> {
        let msgs = req
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::new(
                    Code::InputInvalidUtf8,
                    "入力に使用できない文字（NUL 文字）が含まれています。入力を確認してください。",
                )
            })?;
        // llama.cpp's matcher recognises a fixed list of templates; an unrecognised Jinja template fails here, and
        // ChatML is what the models we ship use.
        self.model
            .apply_chat_template(&self.template, &msgs, true)
            .or_else(|_| {
                tracing::warn!("chat template not recognised by llama.cpp; using chatml");
                self.model
                    .apply_chat_template(&chatml(), &msgs, true)
                    .map_err(|_| engine_error("chat template"))
            })
    }

    fn sampler(&self, req: &GenerateRequest) -> Result<Sampling> {
        let grammar = match &req.json_schema {
            None => None,
            Some(schema) => {
                let gbnf = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|_| {
                    Error::new(
                        Code::EngineFailed,
                        "出力形式（JSON スキーマ）を文法に変換できませんでした。開発者に連絡してください。",
                    )
                })?;
                Some(
                    LlamaSampler::grammar(self.model, &gbnf, "root").map_err(|_| {
                        Error::new(
                            Code::EngineFailed,
                            "出力形式の文法を読み込めませんでした。開発者に連絡してください。",
                        )
                    })?,
                )
            }
        };
        let chain = if req.temperature > 0.0 {
            LlamaSampler::chain_simple([
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::temp(req.temperature),
                LlamaSampler::dist(req.seed),
            ])
        } else {
            LlamaSampler::chain_simple([LlamaSampler::greedy()])
        };
        Ok(Sampling { grammar, chain })
    }

    /// `sink` returns false when nobody listens any more; that ends the generation like a cancel.
    fn generate(
        &mut self,
        req: &GenerateRequest,
        cancel: &crate::CancelToken,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenStats> {
        if req.max_tokens == 0 {
            return Err(Error::new(
                Code::ConfigInvalid,
                "出力上限のトークン数は 1 以上にしてください。",
            ));
        }
        let vocab = self.model.vocab();
        let prompt = self.prompt(req)?;
        // add_special/parse_special as llama-server does: the template's markers must become control tokens.
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        drop(prompt);
        let n_prompt = tokens.len();
        let n_ctx = self.ctx.n_ctx() as usize;
        let max_tokens = req.max_tokens as usize;
        if n_prompt == 0 {
            return Err(Error::new(
                Code::InputEmpty,
                "入力が空です。内容を入力してから再度お試しください。",
            ));
        }
        if n_prompt + max_tokens > n_ctx {
            tracing::warn!(n_prompt, max_tokens, n_ctx, "prompt too long");
            return Err(Error::new(
                Code::EngineFailed,
                format!(
                    "入力が長すぎます（入力 {n_prompt} トークン＋出力上限 {max_tokens} トークンが上限 {n_ctx} トークンを超えています）。\
                     入力を短く分けてから再度お試しください。"
                ),
            ));
        }
        let mut sampler = self.sampler(req)?;
        let mut stats = GenStats {
            prompt_tokens: n_prompt as u32,
            generated_tokens: 0,
            prompt_ms: 0.0,
            generate_ms: 0.0,
            stop: StopReason::Cancelled,
        };

        // Each request starts from an empty cache: requests are independent dictations.
        self.ctx.clear_kv_cache();
        let n_batch = self.n_batch as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let t_prompt = Instant::now();
        for (chunk_idx, chunk) in tokens.chunks(n_batch).enumerate() {
            if cancel.is_cancelled() || self.shutdown.is_cancelled() {
                stats.prompt_ms = ms(t_prompt);
                return Ok(stats);
            }
            batch.clear();
            for (i, &tok) in chunk.iter().enumerate() {
                let pos = chunk_idx * n_batch + i;
                batch
                    .add(tok, pos as i32, &[0], pos + 1 == n_prompt)
                    .map_err(|_| engine_error("batch"))?;
            }
            self.ctx.decode(&mut batch).map_err(decode_error)?;
        }
        stats.prompt_ms = ms(t_prompt);

        let t_gen = Instant::now();
        let mut utf8 = Utf8Stream::default();
        let mut text = String::new();
        let mut piece = Vec::with_capacity(32);
        let mut single = LlamaBatch::new(1, 1);
        let mut pos = n_prompt;
        let mut listening = true;
        stats.stop = StopReason::MaxTokens;
        while (stats.generated_tokens as usize) < max_tokens {
            if cancel.is_cancelled() || self.shutdown.is_cancelled() {
                stats.stop = StopReason::Cancelled;
                break;
            }
            let token = sampler.next(&self.ctx)?;
            if vocab.is_eog(token) {
                stats.stop = StopReason::Eos;
                break;
            }
            stats.generated_tokens += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let s = utf8.push(&piece);
            if !s.is_empty() {
                text.push_str(&s);
                if !sink(&s) {
                    listening = false;
                    stats.stop = StopReason::Cancelled;
                    break;
                }
            }
            if (stats.generated_tokens as usize) == max_tokens {
                break; // the last token's logits would never be used
            }
            single.clear();
            single
                .add(token, pos as i32, &[0], true)
                .map_err(|_| engine_error("batch"))?;
            pos += 1;
            self.ctx.decode(&mut single).map_err(decode_error)?;
        }
        let rest = utf8.finish();
        if !rest.is_empty() && listening {
            text.push_str(&rest);
            sink(&rest);
        }
        stats.generate_ms = ms(t_gen);
        tracing::info!(
            prompt_tokens = stats.prompt_tokens,
            generated_tokens = stats.generated_tokens,
            prompt_ms = stats.prompt_ms,
            generate_ms = stats.generate_ms,
            stop = ?stats.stop,
            constrained = req.json_schema.is_some(),
            "generation finished"
        );
        if stats.stop == StopReason::Cancelled {
            if !listening {
                tracing::debug!("receiver dropped; generation abandoned");
            }
            return Ok(stats);
        }
        // Under a grammar the text is valid JSON exactly when the grammar reached its end; running out of tokens
        // first leaves a prefix, which callers must never receive as if it were a result.
        if req.json_schema.is_some() && serde_json::from_str::<serde_json::Value>(&text).is_err() {
            return Err(Error::new(
                Code::EngineBadOutput,
                format!(
                    "生成結果が出力上限（{max_tokens} トークン）までに完成しませんでした。入力を短くするか、もう一度お試しください。"
                ),
            ));
        }
        Ok(stats)
    }

    /// Mirrors llama-bench (tools/llama-bench/llama-bench.cpp): one context per test sized `n_prompt` (pp) or `n_gen`
    /// (tg); pp warms up with a full prompt run, tg with one token; every rep clears the KV cache; pp decodes random
    /// tokens in `n_batch` chunks, tg decodes one random token per step with a synchronize and no sampling; speed is
    /// the mean of per-rep tokens/s and the spread is the sample standard deviation.
    fn bench(&mut self, n_prompt: u32, n_gen: u32, reps: u32) -> Result<BenchResult> {
        let vocab = self.model.vocab();
        let n_vocab = vocab.n_tokens().max(1) as u32;
        let bos = vocab.should_add_bos().then(|| vocab.bos());
        let mut rng = XorShift(0x2545_F491);
        let mut pp = Vec::new();
        let mut tg = Vec::new();
        if n_prompt > 0 {
            let mut ctx = self
                .model
                .new_context(
                    self.backend,
                    context_params(n_prompt, self.n_batch, self.threads),
                )
                .map_err(|_| engine_error("bench context"))?;
            ctx.clear_kv_cache();
            bench_prompt(&mut ctx, n_prompt, self.n_batch, n_vocab, bos, &mut rng)?;
            for _ in 0..reps {
                ctx.clear_kv_cache();
                let t = Instant::now();
                bench_prompt(&mut ctx, n_prompt, self.n_batch, n_vocab, bos, &mut rng)?;
                pp.push(f64::from(n_prompt) / t.elapsed().as_secs_f64());
            }
        }
        if n_gen > 0 {
            let mut ctx = self
                .model
                .new_context(
                    self.backend,
                    context_params(n_gen, self.n_batch, self.threads),
                )
                .map_err(|_| engine_error("bench context"))?;
            ctx.clear_kv_cache();
            bench_gen(&mut ctx, 1, n_vocab, bos, &mut rng)?;
            for _ in 0..reps {
                ctx.clear_kv_cache();
                let t = Instant::now();
                bench_gen(&mut ctx, n_gen, n_vocab, bos, &mut rng)?;
                tg.push(f64::from(n_gen) / t.elapsed().as_secs_f64());
            }
        }
        let res = BenchResult {
            n_prompt,
            n_gen,
            reps,
            n_threads: self.threads,
            pp_tokens_per_s: mean(&pp),
            tg_tokens_per_s: mean(&tg),
            pp_stddev: stdev(&pp),
            tg_stddev: stdev(&tg),
        };
        tracing::info!(?res, "bench finished");
        Ok(res)
    }
}

/// Grammar first, then top-k/top-p/temperature/dist (or greedy), with llama.cpp's own shortcut from
/// `common_sampler_sample`: sample without the grammar, and only if the grammar rejects that token mask the whole
/// vocabulary and sample again.
///
/// Putting the grammar sampler inside the chain instead checks every vocabulary entry against the grammar on every
/// step: with Qwen2.5's 151k-token vocabulary that halved generation speed (31 vs 57 tokens/s on 2 cores). The
/// shortcut returns exactly the token the masked chain would for greedy decoding (masking only removes candidates), so
/// the output is unchanged; with temperature it is the same rejection sampling llama-server uses.
struct Sampling {
    grammar: Option<LlamaSampler>,
    chain: LlamaSampler,
}

impl Sampling {
    fn next(&mut self, ctx: &LlamaContext<'_>) -> Result<LlamaToken> {
        let Some(grammar) = self.grammar.as_mut() else {
            // `sample` accepts the token into the chain itself.
            return Ok(self.chain.sample(ctx, -1));
        };
        let mut cur = ctx.token_data_array_ith(-1);
        cur.apply_sampler(&mut self.chain);
        let first = cur
            .selected_token()
            .ok_or_else(|| engine_error("sampler"))?;
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(first, 1.0, 0.0)], false);
        single.apply_sampler(grammar);
        let token = if single
            .data
            .first()
            .is_some_and(|d| d.logit() != f32::NEG_INFINITY)
        {
            first
        } else {
            let mut cur = ctx.token_data_array_ith(-1);
            cur.apply_sampler(grammar);
            cur.apply_sampler(&mut self.chain);
            cur.selected_token()
                .ok_or_else(|| engine_error("grammar"))?
        };
        // Exactly one accept per sampler and token: a second grammar accept aborts the process (GGML_ASSERT).
        grammar
            .try_accept(token)
            .map_err(|_| engine_error("grammar accept"))?;
        self.chain.accept(token);
        Ok(token)
    }
}

fn bench_prompt(
    ctx: &mut LlamaContext<'_>,
    n_prompt: u32,
    n_batch: u32,
    n_vocab: u32,
    bos: Option<LlamaToken>,
    rng: &mut XorShift,
) -> Result<()> {
    let mut tokens = vec![LlamaToken(0); n_batch as usize];
    let mut processed = 0;
    while processed < n_prompt {
        let n = (n_prompt - processed).min(n_batch) as usize;
        for (i, t) in tokens[..n].iter_mut().enumerate() {
            *t = match bos {
                Some(b) if processed == 0 && i == 0 => b,
                _ => LlamaToken((rng.next() % n_vocab) as i32),
            };
        }
        let mut batch = LlamaBatch::get_one(&tokens[..n]).map_err(|_| engine_error("batch"))?;
        ctx.decode(&mut batch).map_err(decode_error)?;
        processed += n as u32;
    }
    ctx.synchronize();
    Ok(())
}

fn bench_gen(
    ctx: &mut LlamaContext<'_>,
    n_gen: u32,
    n_vocab: u32,
    bos: Option<LlamaToken>,
    rng: &mut XorShift,
) -> Result<()> {
    let mut token = bos.unwrap_or_else(|| LlamaToken((rng.next() % n_vocab) as i32));
    let mut batch = LlamaBatch::new(1, 1);
    let start = ctx.kv_cache_seq_pos_max(0) + 1;
    for pos in (start..).take(n_gen as usize) {
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|_| engine_error("batch"))?;
        ctx.decode(&mut batch).map_err(decode_error)?;
        ctx.synchronize();
        token = LlamaToken((rng.next() % n_vocab) as i32);
    }
    Ok(())
}

struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// llama-bench's formula: sample standard deviation, 0 for fewer than two samples.
fn stdev(v: &[f64]) -> f64 {
    if v.len() <= 1 {
        return 0.0;
    }
    let n = v.len() as f64;
    let m = mean(v);
    let sq: f64 = v.iter().map(|x| x * x).sum();
    (sq / (n - 1.0) - m * m * n / (n - 1.0)).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdev_matches_llama_bench_formula() {
        assert_eq!(stdev(&[5.0]), 0.0);
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!((stdev(&v) - 2.138_089_935).abs() < 1e-6);
    }

    #[test]
    fn memory_estimate_grows_with_context() {
        let shape = Shape {
            n_layer: 24,
            n_head: 14,
            n_head_kv: 2,
            k_dim: 64,
            v_dim: 64,
            n_vocab: 151_936,
        };
        let small = estimate_memory(491 * MIB, Some(shape), 512, 512);
        let big = estimate_memory(491 * MIB, Some(shape), 32_768, 512);
        assert!(small > 491 * MIB && big > small);
        assert!(estimate_memory(0, None, 4096, 512) >= 1024 * MIB);
    }
}

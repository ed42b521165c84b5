//! The owning thread: pre-load checks, model + context lifetime, generation, and the llama-bench clone.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
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
use llama_cpp_2::vocab::LlamaVocab;
use llama_cpp_2::{DecodeError, LlamaBackendDeviceType, LlamaModelLoadError};

use crate::gguf::{self, HeaderError, Shape};
use crate::utf8::Utf8Stream;
use crate::{
    display_name, BenchResult, ChatRequest, EngineConfig, FinishReason, GenEvent, GenStats, Job,
    ModelInfo, Speculation,
};
use karte_core::EngineKind;

const MIB: u64 = 1024 * 1024;
/// llama.cpp's limit on sequence ids per context (`LLAMA_MAX_SEQ`).
const LLAMA_MAX_SEQ: u32 = 256;
/// Most tokens one prompt-lookup guess proposes. Longer guesses are rarely kept whole, and every row a decode
/// verifies in vain costs time on a CPU.
const MAX_DRAFT: usize = 8;
/// Longest n-gram looked up, then shorter ones: a 3-token match predicts a copied phrase far better than one token.
const MAX_NGRAM: usize = 3;

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
    counters: Arc<crate::Counters>,
    ready: SyncSender<Ready>,
    jobs: Receiver<Job>,
) {
    let file = display_name(&cfg.model_path);
    let t0 = Instant::now();
    let loaded = catch_unwind(AssertUnwindSafe(|| load_model(&cfg, &file)));
    let (backend, model, accelerator) = match loaded {
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
    let n_parallel = cfg.n_parallel.min(cfg.n_batch) as i32;
    let n_cache = cfg.prefix_cache.min(LLAMA_MAX_SEQ - 1 - n_parallel as u32) as i32;
    // Unified KV: every sequence draws on all `n_ctx` cells (a split cache would give each 1/n of them), and a
    // sequence copy only tags cells instead of copying data.
    let params = context_params(cfg.n_ctx, cfg.n_batch, threads)
        .with_flash_attention_policy(flash_attention(cfg.speculation))
        .with_n_seq_max((n_parallel + n_cache + 1) as u32)
        .with_kv_unified(true);
    let ctx = catch_unwind(AssertUnwindSafe(|| model.new_context(backend, params)));
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
        accelerator,
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
        counters,
        backend,
        model: &model,
        model_name: cfg.model_name.clone(),
        n_ctx: ctx.n_ctx() as usize,
        ctx,
        template,
        n_batch: cfg.n_batch,
        threads,
        free_seqs: (0..n_parallel).rev().collect(),
        free_cache_seqs: (n_parallel..n_parallel + n_cache).rev().collect(),
        score_seq: n_parallel + n_cache,
        slots: Vec::new(),
        waiting: VecDeque::new(),
        cache: Vec::new(),
        tick: 0,
        batch: LlamaBatch::new(cfg.n_batch as usize, 1),
        speculation: cfg.speculation,
    };
    worker.serve(&jobs);
    // `worker` (and with it the context) is dropped here, before this thread's handle on the model.
}

/// Offloads every layer to the first GPU when the build has a GPU backend (`--features cuda`) and a device answers;
/// otherwise, or when loading onto the GPU fails (driver missing or too old, out of VRAM), loads on the CPU and logs
/// why. Returns where the model runs, for logs and for the UI.
fn load_model(
    cfg: &EngineConfig,
    file: &str,
) -> Result<(&'static LlamaBackend, Arc<LlamaModel>, String)> {
    let backend = backend()?;
    let gpu = llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .find(|d| d.device_type == LlamaBackendDeviceType::Gpu);
    match (&gpu, cfg.gpu) {
        (Some(dev), true) => {
            let params = LlamaModelParams::default().with_n_gpu_layers(u32::MAX);
            match LlamaModel::load_from_file(backend, &cfg.model_path, &params) {
                Ok(model) => {
                    let where_ = format!("{} ({})", dev.name, dev.description);
                    tracing::info!(device = %where_, "model offloaded to GPU");
                    return Ok((backend, Arc::new(model), where_));
                }
                Err(e) => {
                    tracing::warn!(device = %dev.name, error = %e, "GPU load failed; falling back to CPU");
                }
            }
        }
        (Some(dev), false) => {
            tracing::info!(device = %dev.name, "GPU present but disabled by configuration")
        }
        (None, _) if cfg!(feature = "cuda") => {
            tracing::warn!(
                "built with CUDA but no GPU device answered (driver or device missing); using CPU"
            );
        }
        (None, _) => tracing::debug!("no GPU backend in this build; using CPU"),
    }
    let params = LlamaModelParams::default().with_n_gpu_layers(0);
    let model = LlamaModel::load_from_file(backend, &cfg.model_path, &params).map_err(|e| match e {
        LlamaModelLoadError::PathToStrError(_) | LlamaModelLoadError::NullError(_) => Error::new(
            Code::ModelLoadFailed,
            format!("モデルファイル（{file}）の保存場所の名前に使用できない文字が含まれています。管理者に連絡してください。"),
        ),
        LlamaModelLoadError::NullResult => load_failed(file),
    })?;
    Ok((backend, Arc::new(model), "CPU".to_string()))
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

/// Plain attention under prompt lookup, llama.cpp's choice (flash attention on the CPU) otherwise;
/// `KARTE_FLASH_ATTN=auto|on|off` overrides both.
///
/// ggml's CPU flash attention sums a lone query token over per-thread pieces of the KV cache once it holds 512
/// cells, but several query tokens row by row (and 64 or more in tiles): a token checked among lookup guesses gets
/// other logits than the same token decoded alone, and greedy decoding flips at near-ties (2 of 3 sample drafts
/// differed within 96 tokens). Plain attention computes every row the same way whatever the batch.
pub(crate) fn flash_attention(speculation: Speculation) -> llama_cpp_sys_2::llama_flash_attn_type {
    match std::env::var("KARTE_FLASH_ATTN").as_deref() {
        Ok("on") => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        Ok("off") => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        Ok("auto") => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        _ if speculation == Speculation::Lookup => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        _ => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
    }
}

/// Where a request is in its life on the worker.
struct Slot {
    seq: i32,
    tokens: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache (copied from the prefix cache or decoded).
    n_past: usize,
    /// The sampled token to feed at the next step; `None` while the prompt is still being decoded.
    next: Option<LlamaToken>,
    /// Index in the current batch whose logits this slot samples from after the decode.
    logits_at: Option<i32>,
    sampler: Sampling,
    constrained: bool,
    /// The request's own switch for the prefix cache (see `ChatRequest::prefix_cache`).
    prefix_cache: bool,
    max_tokens: usize,
    deadline: Option<Instant>,
    cancel: crate::CancelToken,
    events: crate::EventSink,
    listening: bool,
    utf8: Utf8Stream,
    /// Kept only to check the JSON shape at the end under a grammar; never logged.
    text: String,
    submitted: Instant,
    t_prompt: Instant,
    t_gen: Option<Instant>,
    stats: GenStats,
    /// Set when the model ended the answer itself.
    done: Option<FinishReason>,
    /// Prompt lookup runs for this request (engine switch on and greedy decoding).
    lookup: bool,
    /// Generated tokens so far (lookup only): with the prompt, where guesses are looked up.
    generated: Vec<LlamaToken>,
    /// Tokens guessed after `next` in the current batch, at the batch rows right after `logits_at`.
    draft: Vec<LlamaToken>,
}

impl Slot {
    fn reserved(&self) -> usize {
        self.tokens.len() + self.max_tokens
    }
    fn pos(&self) -> usize {
        self.tokens.len() + self.stats.generated_tokens as usize - 1
    }

    /// Whether a token after the one just kept may still be kept in this step: the same limits `retire_stopped`
    /// applies between steps, checked per kept token so that speculation never lets an answer run past one.
    fn may_continue(&self, shutdown: bool) -> bool {
        self.done.is_none()
            && self.listening
            && !shutdown
            && !self.cancel.is_cancelled()
            && (self.stats.generated_tokens as usize) < self.max_tokens
            && self.deadline.is_none_or(|d| Instant::now() < d)
    }

    /// Takes one sampled token: the end of the answer, or a token counted, remembered as the next to feed and
    /// streamed.
    fn keep(&mut self, token: LlamaToken, vocab: &LlamaVocab<'_>, piece: &mut Vec<u8>) {
        if vocab.is_eog(token) {
            self.done = Some(FinishReason::Stop);
            return;
        }
        self.stats.generated_tokens += 1;
        self.next = Some(token);
        if self.lookup {
            self.generated.push(token);
        }
        piece.clear();
        vocab.token_to_piece_into(token, piece, false, None);
        let text = self.utf8.push(piece);
        if !text.is_empty() {
            if self.stats.ttft_ms.is_none() {
                self.stats.ttft_ms = Some(ms(self.submitted));
            }
            if self.constrained {
                self.text.push_str(&text);
            }
            if self.events.send(GenEvent::Token(text)).is_err() {
                self.listening = false;
            }
        }
    }
}

/// Prompt lookup: the tokens that followed the latest earlier occurrence of the sequence's last `n` tokens (n from
/// [`MAX_NGRAM`] down to 1) in prompt + answer, at most `max` of them, into `out` (left empty when nothing matches).
///
/// The latest occurrence rather than the first: an answer that cites its source moves through it in order, so the
/// nearest earlier match is the likeliest one to continue.
fn lookup_draft(
    prompt: &[LlamaToken],
    generated: &[LlamaToken],
    max: usize,
    out: &mut Vec<LlamaToken>,
) {
    out.clear();
    let len = prompt.len() + generated.len();
    let at = |i: usize| {
        if i < prompt.len() {
            prompt[i]
        } else {
            generated[i - prompt.len()]
        }
    };
    for n in (1..=MAX_NGRAM).rev() {
        if len <= n || max == 0 {
            continue;
        }
        let tail = len - n;
        for start in (0..tail).rev() {
            if (0..n).all(|k| at(start + k) == at(tail + k)) {
                let from = start + n;
                out.extend((from..(from + max).min(len)).map(at));
                return;
            }
        }
    }
}

/// A request accepted by the worker but not yet given a sequence.
struct Pending {
    tokens: Vec<LlamaToken>,
    sampler: Sampling,
    req: ChatRequest,
    cancel: crate::CancelToken,
    events: crate::EventSink,
    submitted: Instant,
}

/// A recent prompt whose KV cells stay in the context under their own sequence id.
struct CacheEntry {
    seq: i32,
    tokens: Vec<LlamaToken>,
    last_used: u64,
}

struct Worker<'m> {
    shutdown: crate::CancelToken,
    counters: Arc<crate::Counters>,
    backend: &'static LlamaBackend,
    model: &'m LlamaModel,
    /// What the stats call the model (the configured name, never the path).
    model_name: String,
    ctx: LlamaContext<'m>,
    template: LlamaChatTemplate,
    n_batch: u32,
    threads: i32,
    n_ctx: usize,
    /// Sequence ids `0..n_parallel` serve requests, the next `prefix_cache` ids hold cached prefixes, and the last
    /// one is scratch space for scoring.
    free_seqs: Vec<i32>,
    free_cache_seqs: Vec<i32>,
    score_seq: i32,
    slots: Vec<Slot>,
    waiting: VecDeque<Pending>,
    cache: Vec<CacheEntry>,
    tick: u64,
    batch: LlamaBatch<'static>,
    speculation: Speculation,
}

impl Worker<'_> {
    /// Continuous batching: between decode steps, take new jobs, start waiting requests on free sequences, and
    /// finish those that are done; each step is one `llama_decode` over every active sequence.
    fn serve(&mut self, jobs: &Receiver<Job>) {
        let mut open = true;
        loop {
            if open && self.slots.is_empty() && self.waiting.is_empty() {
                match jobs.recv() {
                    Ok(job) => self.take(job),
                    Err(_) => open = false,
                }
            }
            while open {
                match jobs.try_recv() {
                    Ok(job) => self.take(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if self.shutdown.is_cancelled() || !open {
                for p in self.waiting.drain(..) {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    self.counters.failed_total.fetch_add(1, Ordering::Relaxed);
                    let _ = p.events.send(GenEvent::Error(crate::stopped_error()));
                }
            }
            self.admit();
            if self.slots.is_empty() {
                if !open {
                    return;
                }
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| self.step())) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.fail_all(&e),
                Err(_) => {
                    tracing::error!("generation step panicked");
                    self.fail_all(&engine_error("panic"));
                }
            }
        }
    }

    /// A panic inside llama-cpp-2 (it has `expect`s on FFI results) becomes an error for that job only; the KV cache
    /// is cleared so the engine stays usable. A C-level abort (GGML_ASSERT) cannot be caught.
    fn take(&mut self, job: Job) {
        if self.shutdown.is_cancelled() {
            match job {
                Job::Generate { events, .. } => {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    let _ = events.send(GenEvent::Error(crate::stopped_error()));
                }
                Job::Bench { reply, .. } => {
                    let _ = reply.send(Err(crate::stopped_error()));
                }
                Job::Score { reply, .. } => {
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
                submitted,
            } => match catch_unwind(AssertUnwindSafe(|| self.prepare(&req))) {
                Ok(Ok((tokens, sampler))) => self.waiting.push_back(Pending {
                    tokens,
                    sampler,
                    req: *req,
                    cancel,
                    events,
                    submitted,
                }),
                res => {
                    let e = res.unwrap_or_else(|_| Err(engine_error("panic"))).err();
                    let e = e.unwrap_or_else(|| engine_error("prepare"));
                    tracing::warn!(code = %e.code, "request refused");
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    self.counters.failed_total.fetch_add(1, Ordering::Relaxed);
                    let _ = events.send(GenEvent::Error(e));
                }
            },
            Job::Score {
                context,
                continuations,
                reply,
            } => {
                let seq = self.score_seq;
                let res = catch_unwind(AssertUnwindSafe(|| {
                    // Room for the longest possible scoring run; cached prefixes are the only thing to give up.
                    let active: usize = self.slots.iter().map(Slot::reserved).sum();
                    let want =
                        context.len() + continuations.iter().map(String::len).max().unwrap_or(0);
                    self.evict_until(active + want.min(self.n_ctx));
                    score(
                        self.model,
                        &mut self.ctx,
                        seq,
                        self.n_batch,
                        &context,
                        &continuations,
                    )
                }))
                .unwrap_or_else(|_| {
                    let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                    Err(engine_error("panic"))
                });
                let _ = reply.send(res);
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

    /// Everything that can be refused before the request waits for a sequence: template, tokens, size, grammar.
    fn prepare(&self, req: &ChatRequest) -> Result<(Vec<LlamaToken>, Sampling)> {
        if req.max_tokens == 0 {
            return Err(Error::new(
                Code::ConfigInvalid,
                "出力上限のトークン数は 1 以上にしてください。",
            ));
        }
        let prompt = self.prompt(req)?;
        // add_special/parse_special as llama-server does: the template's markers must become control tokens.
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        drop(prompt);
        let n_prompt = tokens.len();
        let max_tokens = req.max_tokens as usize;
        let n_ctx = self.n_ctx;
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
        Ok((tokens, self.sampler(req)?))
    }

    /// Starts waiting requests, oldest first, while a sequence is free and their worst case (prompt + `max_tokens`)
    /// fits in the KV cells not promised to running requests; cached prefixes give way, oldest first.
    fn admit(&mut self) {
        while let Some(p) = self.waiting.front() {
            if p.cancel.is_cancelled() {
                let p = self.waiting.pop_front().expect("front exists");
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                self.counters
                    .cancelled_total
                    .fetch_add(1, Ordering::Relaxed);
                let mut stats = self.empty_stats(&p.tokens, FinishReason::Cancelled);
                stats.queue_ms = Some(ms(p.submitted));
                stats.total_ms = ms(p.submitted);
                let _ = p.events.send(GenEvent::Done(stats));
                continue;
            }
            let need = p.tokens.len() + p.req.max_tokens as usize;
            let active: usize = self.slots.iter().map(Slot::reserved).sum();
            if self.free_seqs.is_empty() || active + need > self.n_ctx {
                return;
            }
            let p = self.waiting.pop_front().expect("front exists");
            let seq = self.free_seqs.pop().expect("checked non-empty");
            self.tick += 1;
            // Longest common token prefix with a cached prompt; the last prompt token is always decoded so that
            // there are logits to sample the first answer token from.
            let mut reuse = 0;
            if let Some(e) = self
                .cache
                .iter_mut()
                .filter(|_| p.req.prefix_cache)
                .max_by_key(|e| common_prefix(&e.tokens, &p.tokens))
            {
                reuse = common_prefix(&e.tokens, &p.tokens).min(p.tokens.len() - 1);
                if reuse > 0 {
                    e.last_used = self.tick;
                    let copied =
                        self.ctx
                            .copy_kv_cache_seq(e.seq, seq, Some(0), Some(reuse as u32));
                    if copied.is_err() {
                        reuse = 0;
                    }
                }
            }
            self.evict_until(active + need);
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .prompt_tokens_total
                .fetch_add(p.tokens.len() as u64, Ordering::Relaxed);
            self.counters
                .cached_tokens_total
                .fetch_add(reuse as u64, Ordering::Relaxed);
            let mut stats = self.empty_stats(&p.tokens, FinishReason::Length);
            stats.queue_ms = Some(ms(p.submitted));
            stats.cached_tokens = reuse as u32;
            self.slots.push(Slot {
                seq,
                n_past: reuse,
                next: None,
                logits_at: None,
                sampler: p.sampler,
                constrained: p.req.json_schema.is_some(),
                prefix_cache: p.req.prefix_cache,
                max_tokens: p.req.max_tokens as usize,
                deadline: p.req.max_time.map(|d| p.submitted + d),
                cancel: p.cancel,
                events: p.events,
                listening: true,
                utf8: Utf8Stream::default(),
                text: String::new(),
                submitted: p.submitted,
                t_prompt: Instant::now(),
                t_gen: None,
                stats,
                done: None,
                lookup: self.speculation == Speculation::Lookup
                    && p.req.temperature <= 0.0
                    && p.req.speculation,
                generated: Vec::new(),
                draft: Vec::new(),
                tokens: p.tokens,
            });
            self.counters
                .active
                .store(self.slots.len(), Ordering::Relaxed);
        }
    }

    /// Drops cached prefixes, least recently used first, until `used` plus the cache fits in the context.
    ///
    /// The count is conservative: a running request's reservation includes the prompt cells it shares with a
    /// cached prefix, so the sum can only overstate the cells in use and a decode never runs out of them.
    fn evict_until(&mut self, used: usize) {
        while used + self.cache.iter().map(|e| e.tokens.len()).sum::<usize>() > self.n_ctx {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((i, _)) = self
            .cache
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_used)
        else {
            return false;
        };
        let e = self.cache.swap_remove(i);
        let _ = self.ctx.clear_kv_cache_seq(Some(e.seq as u32), None, None);
        self.free_cache_seqs.push(e.seq);
        self.counters
            .prefix_cache_entries
            .store(self.cache.len(), Ordering::Relaxed);
        true
    }

    /// Keeps a just-decoded prompt's cells under a cache sequence id. A cached prompt that is a prefix of this one is
    /// replaced (the new one covers it); one that already covers this prompt is only marked as used.
    fn remember(&mut self, slot: usize) {
        if !self.slots[slot].prefix_cache
            || (self.free_cache_seqs.is_empty() && self.cache.is_empty())
        {
            return; // cache disabled, for the engine or for this request
        }
        self.tick += 1;
        let tokens = &self.slots[slot].tokens;
        let src = self.slots[slot].seq;
        if let Some(e) = self
            .cache
            .iter_mut()
            .find(|e| common_prefix(&e.tokens, tokens) == tokens.len())
        {
            e.last_used = self.tick;
            return;
        }
        let active: usize = self.slots.iter().map(Slot::reserved).sum();
        let dst = if let Some(i) = self
            .cache
            .iter()
            .position(|e| common_prefix(&e.tokens, tokens) == e.tokens.len())
        {
            let e = self.cache.swap_remove(i);
            let _ = self.ctx.clear_kv_cache_seq(Some(e.seq as u32), None, None);
            e.seq
        } else {
            if self.free_cache_seqs.is_empty() && !self.evict_oldest() {
                return;
            }
            self.free_cache_seqs.pop().expect("checked non-empty")
        };
        let tokens = self.slots[slot].tokens.clone();
        self.evict_until(active + tokens.len());
        if active + tokens.len() > self.n_ctx
            || self
                .ctx
                .copy_kv_cache_seq(src, dst, Some(0), Some(tokens.len() as u32))
                .is_err()
        {
            self.free_cache_seqs.push(dst);
            return;
        }
        self.cache.push(CacheEntry {
            seq: dst,
            tokens,
            last_used: self.tick,
        });
        self.counters
            .prefix_cache_entries
            .store(self.cache.len(), Ordering::Relaxed);
    }

    /// One decode over every active sequence: one token each for those generating (plus its prompt-lookup guess),
    /// then prompt chunks for those still reading their prompt, up to `n_batch` tokens in all; then each sequence
    /// with fresh logits samples, and keeps guessed tokens for as long as they are what it samples.
    fn step(&mut self) -> Result<()> {
        self.retire_stopped();
        if self.slots.is_empty() {
            return Ok(());
        }
        let n_batch = self.n_batch as usize;
        let model = self.model;
        let vocab = model.vocab();
        self.batch.clear();
        let mut budget = n_batch;
        // Guesses only fill rows that no sequence's own next token needs.
        let mut spare =
            n_batch.saturating_sub(self.slots.iter().filter(|s| s.next.is_some()).count());
        for s in self.slots.iter_mut() {
            s.logits_at = None;
            s.draft.clear();
            let Some(tok) = s.next else { continue };
            let pos = s.pos();
            self.batch
                .add(tok, pos as i32, &[s.seq], true)
                .map_err(|_| engine_error("batch"))?;
            s.logits_at = Some(self.batch.n_tokens() - 1);
            budget -= 1;
            // A guess never reaches past `max_tokens`: the token sampled after the last kept guess is the last.
            let room = s
                .max_tokens
                .saturating_sub(s.stats.generated_tokens as usize + 1)
                .min(MAX_DRAFT)
                .min(spare);
            if !s.lookup || room == 0 {
                continue;
            }
            let mut draft = std::mem::take(&mut s.draft);
            lookup_draft(&s.tokens, &s.generated, room, &mut draft);
            if let Some(eog) = draft.iter().position(|&t| vocab.is_eog(t)) {
                draft.truncate(eog);
            }
            draft.truncate(s.sampler.admits(&draft));
            for (k, &d) in draft.iter().enumerate() {
                self.batch
                    .add(d, (pos + 1 + k) as i32, &[s.seq], true)
                    .map_err(|_| engine_error("batch"))?;
            }
            spare -= draft.len();
            budget -= draft.len();
            s.draft = draft;
        }
        for s in self.slots.iter_mut().filter(|s| s.next.is_none()) {
            if budget == 0 {
                break;
            }
            let n = (s.tokens.len() - s.n_past).min(budget);
            for i in s.n_past..s.n_past + n {
                let last = i + 1 == s.tokens.len();
                self.batch
                    .add(s.tokens[i], i as i32, &[s.seq], last)
                    .map_err(|_| engine_error("batch"))?;
                if last {
                    s.logits_at = Some(self.batch.n_tokens() - 1);
                }
            }
            s.n_past += n;
            budget -= n;
        }
        self.ctx.decode(&mut self.batch).map_err(decode_error)?;

        let shutdown = self.shutdown.is_cancelled();
        let mut piece = Vec::with_capacity(32);
        for i in 0..self.slots.len() {
            let Some(idx) = self.slots[i].logits_at else {
                continue;
            };
            if self.slots[i].next.is_none() {
                self.slots[i].stats.prompt_ms = Some(ms(self.slots[i].t_prompt));
                self.slots[i].t_gen = Some(Instant::now());
                self.remember(i);
            }
            let s = &mut self.slots[i];
            // Position of the token fed this step; the guesses sit right after it.
            let fed = s.next.map(|_| s.pos());
            let draft = std::mem::take(&mut s.draft);
            let mut kept = 0;
            loop {
                let token = s.sampler.next(&self.ctx, idx + kept as i32)?;
                s.keep(token, &vocab, &mut piece);
                if draft.get(kept) != Some(&token) || !s.may_continue(shutdown) {
                    break;
                }
                // The guess at this row was the token just kept: its logits are the next step's, already computed.
                kept += 1;
            }
            if let (Some(fed), false) = (fed, draft.is_empty()) {
                s.stats.draft_proposed += draft.len() as u32;
                s.stats.draft_accepted += kept as u32;
                self.counters
                    .draft_proposed_total
                    .fetch_add(draft.len() as u64, Ordering::Relaxed);
                self.counters
                    .draft_accepted_total
                    .fetch_add(kept as u64, Ordering::Relaxed);
                // Cells of the guesses not kept: the next token goes where the first of them was.
                if kept < draft.len() {
                    self.ctx
                        .clear_kv_cache_seq(Some(s.seq as u32), Some((fed + 1 + kept) as u32), None)
                        .map_err(|_| engine_error("kv"))?;
                }
            }
            s.draft = draft;
            s.draft.clear();
        }
        self.retire_stopped();
        Ok(())
    }

    /// Finishes every slot that hit a limit, was cancelled or lost its listener, and frees its sequence.
    fn retire_stopped(&mut self) {
        let shutdown = self.shutdown.is_cancelled();
        let now = Instant::now();
        let mut i = 0;
        while i < self.slots.len() {
            let s = &mut self.slots[i];
            let stop = if s.done.is_some() {
                s.done
            } else if shutdown || s.cancel.is_cancelled() || !s.listening {
                Some(FinishReason::Cancelled)
            } else if s.stats.generated_tokens as usize >= s.max_tokens {
                Some(FinishReason::Length)
            } else if s.deadline.is_some_and(|d| now >= d) {
                Some(FinishReason::TimeLimit)
            } else {
                None
            };
            match stop {
                Some(stop) => {
                    let s = self.slots.swap_remove(i);
                    // Counted before the caller hears `Done`, so load_info never lags what a client has seen.
                    self.counters
                        .active
                        .store(self.slots.len(), Ordering::Relaxed);
                    self.finish(s, stop);
                }
                None => i += 1,
            }
        }
        self.counters
            .active
            .store(self.slots.len(), Ordering::Relaxed);
    }

    fn finish(&mut self, mut s: Slot, stop: FinishReason) {
        let _ = self.ctx.clear_kv_cache_seq(Some(s.seq as u32), None, None);
        self.free_seqs.push(s.seq);
        s.stats.finish = stop;
        if s.t_gen.is_none() {
            s.stats.prompt_ms = Some(ms(s.t_prompt));
        }
        s.stats.generate_ms = Some(s.t_gen.map_or(0.0, ms));
        s.stats.total_ms = ms(s.submitted);
        let c = &self.counters;
        c.generated_tokens_total
            .fetch_add(u64::from(s.stats.generated_tokens), Ordering::Relaxed);
        tracing::info!(
            seq = s.seq,
            prompt_tokens = s.stats.prompt_tokens,
            cached_tokens = s.stats.cached_tokens,
            generated_tokens = s.stats.generated_tokens,
            queue_ms = s.stats.queue_ms,
            ttft_ms = s.stats.ttft_ms,
            prompt_ms = s.stats.prompt_ms,
            generate_ms = s.stats.generate_ms,
            stop = ?s.stats.finish,
            constrained = s.constrained,
            "generation finished"
        );
        if stop == FinishReason::Cancelled {
            if !s.listening {
                tracing::debug!(seq = s.seq, "receiver dropped; generation abandoned");
            }
            c.cancelled_total.fetch_add(1, Ordering::Relaxed);
            let _ = s.events.send(GenEvent::Done(s.stats));
            return;
        }
        // Under a grammar the text is valid JSON exactly when the grammar reached its end; running out of tokens
        // or time first leaves a prefix, which callers must never receive as if it were a result.
        if s.constrained && serde_json::from_str::<serde_json::Value>(&s.text).is_err() {
            c.failed_total.fetch_add(1, Ordering::Relaxed);
            let max_tokens = s.stats.generated_tokens;
            let _ = s.events.send(GenEvent::Error(Error::new(
                Code::EngineBadOutput,
                format!(
                    "生成結果が出力上限（{max_tokens} トークン）までに完成しませんでした。入力を短くするか、もう一度お試しください。"
                ),
            )));
            return;
        }
        c.completed_total.fetch_add(1, Ordering::Relaxed);
        let _ = s.events.send(GenEvent::Done(s.stats));
    }

    /// A failed decode leaves the batch's cells in an unknown state: every running request gets the error, and
    /// the cache (prefixes included) starts again from empty.
    fn fail_all(&mut self, e: &Error) {
        tracing::warn!(code = %e.code, active = self.slots.len(), "decode step failed");
        self.counters.active.store(0, Ordering::Relaxed);
        for s in self.slots.drain(..) {
            self.counters.failed_total.fetch_add(1, Ordering::Relaxed);
            self.free_seqs.push(s.seq);
            let _ = s.events.send(GenEvent::Error(e.clone()));
        }
        for e in self.cache.drain(..) {
            self.free_cache_seqs.push(e.seq);
        }
        self.ctx.clear_kv_cache();
        self.counters.active.store(0, Ordering::Relaxed);
        self.counters
            .prefix_cache_entries
            .store(0, Ordering::Relaxed);
    }

    fn empty_stats(&self, tokens: &[LlamaToken], finish: FinishReason) -> GenStats {
        let mut stats = GenStats::new(self.model_name.clone(), EngineKind::InProcess);
        stats.prompt_tokens = tokens.len() as u32;
        stats.finish = finish;
        stats
    }

    fn prompt(&self, req: &ChatRequest) -> Result<String> {
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

    fn sampler(&self, req: &ChatRequest) -> Result<Sampling> {
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

/// Log-likelihoods of `continuations` after `context` in sequence `seq`, which must be empty on entry and is left
/// empty on return.
///
/// The context is decoded once and its last logits kept; each continuation is then decoded after it (all outputs
/// on) and its cells removed again, so the context's cells serve every continuation. A one-token continuation needs
/// no decode at all.
pub(crate) fn score(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    seq: i32,
    n_batch: u32,
    context: &str,
    continuations: &[String],
) -> Result<Vec<crate::Scored>> {
    let vocab = model.vocab();
    let ctx_tokens = vocab.tokenize(context.as_bytes(), true, false);
    if ctx_tokens.is_empty() {
        return Err(Error::new(
            Code::InputEmpty,
            "評価の文脈が空です。文脈を入力してから再度お試しください。",
        ));
    }
    let conts: Vec<Vec<LlamaToken>> = continuations
        .iter()
        .map(|c| vocab.tokenize(c.as_bytes(), false, false))
        .collect();
    let n_ctx = ctx.n_ctx() as usize;
    let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
    if ctx_tokens.len() + longest > n_ctx {
        tracing::warn!(
            context_tokens = ctx_tokens.len(),
            longest,
            n_ctx,
            "score input too long"
        );
        return Err(Error::new(
            Code::InputTooLarge,
            format!(
                "評価の入力が長すぎます（文脈 {} トークン＋続き {longest} トークンが上限 {n_ctx} トークンを超えています）。",
                ctx_tokens.len()
            ),
        ));
    }
    let n_batch = n_batch as usize;
    let mut batch = LlamaBatch::new(n_batch, 1);
    let t0 = Instant::now();
    let res = (|| {
        for (chunk_idx, chunk) in ctx_tokens.chunks(n_batch).enumerate() {
            batch.clear();
            for (i, &tok) in chunk.iter().enumerate() {
                let pos = chunk_idx * n_batch + i;
                batch
                    .add(tok, pos as i32, &[seq], pos + 1 == ctx_tokens.len())
                    .map_err(|_| engine_error("batch"))?;
            }
            ctx.decode(&mut batch).map_err(decode_error)?;
        }
        let ctx_logits = ctx.get_logits_ith(batch.n_tokens() - 1).to_vec();
        let base = ctx_tokens.len();
        let mut out = Vec::with_capacity(conts.len());
        for cont in &conts {
            let Some((&first, _)) = cont.split_first() else {
                out.push(crate::Scored {
                    logprob: 0.0,
                    n_tokens: 0,
                    greedy: true,
                });
                continue;
            };
            let (mut lp, mut greedy) = token_logprob(&ctx_logits, first);
            // Token k predicts token k + 1: the last token is never fed.
            let feed = &cont[..cont.len() - 1];
            for (chunk_idx, chunk) in feed.chunks(n_batch).enumerate() {
                batch.clear();
                for (i, &tok) in chunk.iter().enumerate() {
                    let pos = base + chunk_idx * n_batch + i;
                    batch
                        .add(tok, pos as i32, &[seq], true)
                        .map_err(|_| engine_error("batch"))?;
                }
                ctx.decode(&mut batch).map_err(decode_error)?;
                for i in 0..chunk.len() {
                    let next = cont[chunk_idx * n_batch + i + 1];
                    let (l, g) = token_logprob(ctx.get_logits_ith(i as i32), next);
                    lp += l;
                    greedy &= g;
                }
            }
            ctx.clear_kv_cache_seq(Some(seq as u32), Some(base as u32), None)
                .map_err(|_| engine_error("kv"))?;
            out.push(crate::Scored {
                logprob: lp,
                n_tokens: cont.len() as u32,
                greedy,
            });
        }
        Ok(out)
    })();
    let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    tracing::info!(
        context_tokens = ctx_tokens.len(),
        continuations = conts.len(),
        score_ms = ms(t0),
        "score finished"
    );
    res
}

/// `log softmax(logits)[token]` in f64 (a 150k-entry sum in f32 loses digits), and whether `token` is the argmax.
fn token_logprob(logits: &[f32], token: LlamaToken) -> (f64, bool) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let l = logits
        .get(token.0 as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    (f64::from(l - max) - sum.ln(), l >= max)
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
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
    /// How many leading tokens of `draft` the grammar allows in turn, checked on a copy so that the request's own
    /// grammar advances only over tokens that are kept. Without a grammar every token is allowed.
    fn admits(&self, draft: &[LlamaToken]) -> usize {
        let Some(grammar) = self.grammar.as_ref().filter(|_| !draft.is_empty()) else {
            return draft.len();
        };
        let mut g = grammar.clone();
        for (i, &t) in draft.iter().enumerate() {
            let mut single =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(t, 1.0, 0.0)], false);
            single.apply_sampler(&mut g);
            let allowed = single
                .data
                .first()
                .is_some_and(|d| d.logit() != f32::NEG_INFINITY);
            if !allowed || g.try_accept(t).is_err() {
                return i;
            }
        }
        draft.len()
    }

    /// `idx` is the batch position whose logits to sample from.
    fn next(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken> {
        let Some(grammar) = self.grammar.as_mut() else {
            // `sample` accepts the token into the chain itself.
            return Ok(self.chain.sample(ctx, idx));
        };
        let mut cur = ctx.token_data_array_ith(idx);
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
            let mut cur = ctx.token_data_array_ith(idx);
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

    fn toks(v: &[i32]) -> Vec<LlamaToken> {
        v.iter().map(|&x| LlamaToken(x)).collect()
    }

    #[test]
    fn lookup_copies_what_followed_the_latest_earlier_match() {
        let prompt = toks(&[1, 2, 3, 4, 5, 6, 1, 2, 3, 7, 8]);
        let mut out = Vec::new();
        // The tail 1 2 3 occurs at 0 and at 6: the later one is continued, up to the end of what exists.
        lookup_draft(&prompt, &toks(&[9, 1, 2, 3]), 8, &mut out);
        assert_eq!(out, toks(&[7, 8, 9, 1, 2, 3]));
        lookup_draft(&prompt, &toks(&[9, 1, 2, 3]), 2, &mut out);
        assert_eq!(out, toks(&[7, 8]));
    }

    #[test]
    fn lookup_falls_back_to_shorter_ngrams_and_may_find_nothing() {
        let mut out = Vec::new();
        lookup_draft(&toks(&[5, 6, 7]), &toks(&[9, 6]), 8, &mut out);
        assert_eq!(out, toks(&[7, 9, 6]), "only the last token matches");
        lookup_draft(&toks(&[1]), &toks(&[2]), 8, &mut out);
        assert!(out.is_empty());
        lookup_draft(&toks(&[1, 1]), &[], 0, &mut out);
        assert!(out.is_empty(), "no room, no guess");
    }

    #[test]
    fn speculation_parses_the_documented_values() {
        assert_eq!(Speculation::parse(" Lookup "), Some(Speculation::Lookup));
        assert_eq!(Speculation::parse("off"), Some(Speculation::Off));
        assert_eq!(Speculation::parse("ngram"), None);
        assert_eq!(Speculation::default(), Speculation::Off);
    }

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

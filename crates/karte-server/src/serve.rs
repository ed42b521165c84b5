//! Starting the server: the clinic server (`karte serve`, `karte-server`) and the local worker (`--local`) are the
//! same code with different set-ups.
//!
//! Local worker protocol (what karte-llm's supervisor relies on):
//! - it listens on `127.0.0.1:0` (a random free port) and prints `KARTE_SERVER_LISTENING <addr>` as one line on
//!   stdout once bound (the clinic server prints the same line);
//! - its only token comes from `KARTE_WORKER_TOKEN` in its environment, never argv (argv is visible to every user
//!   through `ps`); the variable is read once and the value kept only as a hash;
//! - it stops when its stdin reaches end of file, so a parent that dies for any reason takes its worker with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use karte_core::{Code, Error, Result};
use karte_engine::EngineConfig;
use tokio::io::AsyncReadExt;

use crate::conn::{self, ConnLimits};
use crate::state::{AppState, Limits, LogReload};
use crate::tokens::{Holder, NewToken, Role, TokenStore};

pub use karte_ipc::worker::{LISTENING_PREFIX, TOKEN_ENV as WORKER_TOKEN_ENV};
pub const ADMIN_TOKEN_ENV: &str = "KARTE_ADMIN_TOKEN";

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Manifest name or GGUF path; `None` = the manifest's default.
    pub model: Option<String>,
    pub threads: Option<i32>,
    /// Prompt lookup for greedy requests; `None` = the engine's default (off). `KARTE_SPECULATION` wins at load.
    pub speculation: Option<karte_engine::Speculation>,
    pub n_ctx: u32,
    pub limits: Limits,
    pub tls: Option<TlsFiles>,
    /// Where `tokens.json` lives; `None` keeps tokens in memory (the local worker).
    pub data_dir: Option<PathBuf>,
    pub local: bool,
    /// Header-read, handshake and idle timeouts and the connection cap.
    pub conn: ConnLimits,
    /// Serve plain HTTP on a non-loopback address anyway (`--insecure-plaintext`); refused otherwise.
    pub insecure_plaintext: bool,
    /// Upstream mode: OpenAI-compatible engines instead of a local model (as given; checked in [`build_state`]).
    pub upstreams: Vec<String>,
    /// Where `upstreams` came from, named in the error when one is wrong: `--upstream` or `serve.upstreams`.
    pub upstreams_from: &'static str,
    pub upstream: karte_settings::UpstreamSettings,
    pub guard: karte_settings::ServeGuardSettings,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            model: None,
            threads: None,
            speculation: None,
            n_ctx: EngineConfig::DEFAULT_N_CTX,
            limits: Limits::default(),
            tls: None,
            data_dir: None,
            local: false,
            conn: ConnLimits::default(),
            insecure_plaintext: false,
            upstreams: Vec::new(),
            upstreams_from: "--upstream",
            upstream: karte_settings::UpstreamSettings::default(),
            guard: karte_settings::ServeGuardSettings::default(),
        }
    }

    /// The local worker: loopback, random port, memory-only tokens, one request at a time (one user).
    pub fn local() -> Self {
        let mut o = Self::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        o.local = true;
        o.limits.parallel = 1;
        // One user's draft on a slow ward PC may take minutes; the clinic server's 120 s bound (there to share a
        // GPU fairly) would cut it short. The client's own total bound (karte-llm, 600 s) is the limit here.
        o.limits.request_timeout = std::time::Duration::from_secs(600);
        o
    }

    /// Fills what the command line left open from the settings file (the command line wins).
    pub fn apply_settings(&mut self, s: &karte_llm::Settings) {
        if self.model.is_none() {
            self.model.clone_from(&s.model.name);
        }
        if self.threads.is_none() {
            self.threads = s.model.threads;
        }
        if self.speculation.is_none() {
            self.speculation = s.model.speculation.map(|v| match v {
                karte_settings::SpeculationSetting::Off => karte_engine::Speculation::Off,
                karte_settings::SpeculationSetting::Lookup => karte_engine::Speculation::Lookup,
            });
        }
        if let Some(q) = s.serve.max_queue {
            self.limits.max_queue = q;
        }
        if let (Some(p), false) = (s.serve.parallel, self.local) {
            self.limits.parallel = p.max(1);
        }
        if let Some(t) = s.serve.max_tokens {
            self.limits.max_tokens = t;
        }
        if let Some(t) = s.serve.request_timeout_s {
            self.limits.request_timeout = std::time::Duration::from_secs(t);
        }
        let secs = std::time::Duration::from_secs;
        if let Some(t) = s.serve.header_read_timeout_s {
            self.conn.header_read = secs(t);
        }
        if let Some(t) = s.serve.tls_handshake_timeout_s {
            self.conn.handshake = secs(t);
        }
        if let Some(t) = s.serve.idle_timeout_s {
            self.conn.idle = secs(t);
        }
        if s.serve.max_connections.is_some() {
            self.conn.max_connections = s.serve.max_connections;
        }
        if let Some(b) = s.serve.max_schema_bytes {
            self.limits.max_schema_bytes = b;
        }
        if let Some(a) = s.serve.max_schema_alternatives {
            self.limits.max_schema_alternatives = a;
        }
        if let Some(u) = s.serve.rate_limit_unit_tokens {
            self.limits.rate_limit_unit_tokens = u.max(1);
        }
        self.insecure_plaintext |= s.serve.insecure_plaintext;
        if self.upstreams.is_empty() && !self.local && !s.serve.upstreams.is_empty() {
            self.upstreams.clone_from(&s.serve.upstreams);
            self.upstreams_from = "設定ファイルの serve.upstreams";
        }
        self.upstream = s.serve.upstream.clone();
        self.guard.clone_from(&s.serve.guard);
        if !self.local {
            if self.tls.is_none() {
                if let (Some(cert), Some(key)) = (&s.serve.tls_cert, &s.serve.tls_key) {
                    self.tls = Some(TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: s.serve.client_ca.clone(),
                    });
                }
            }
            if self.data_dir.is_none() {
                self.data_dir.clone_from(&s.serve.data_dir);
            }
        }
    }
}

/// Refuses plain HTTP on an address other hosts can reach, unless asked for explicitly (then a warning is logged):
/// bearer tokens, the admin token and pseudonymised clinical text would cross the ward network in clear.
pub fn check_listen(opts: &ServeOptions) -> Result<()> {
    if opts.local || opts.tls.is_some() || opts.listen.ip().is_loopback() {
        return Ok(());
    }
    if opts.insecure_plaintext {
        tracing::warn!(
            addr = %opts.listen,
            "serving plain HTTP (no TLS) on a non-loopback address: tokens and pseudonymised text cross the \
             network unencrypted (--insecure-plaintext)"
        );
        return Ok(());
    }
    Err(Error::new(
        Code::ServerPlaintextRefused,
        format!(
            "{} は他の端末から接続できるアドレスですが、TLS（--tls-cert と --tls-key）が設定されていません。\
             このままではトークンと仮名化した診療内容が暗号化されずにネットワークを流れます。\
             TLS を設定してください（閉じたネットワークで意図して平文にする場合に限り --insecure-plaintext、\
             設定ファイルでは [serve] insecure_plaintext = true）。",
            opts.listen
        ),
    ))
}

/// Default home of the clinic server's token store.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("KARTE_SERVER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/karte-server"))
}

fn tls_error(what: &str) -> Error {
    Error::new(
        Code::LlmTls,
        format!(
            "TLS の設定を読み込めません（{what}）。証明書と秘密鍵のファイルを確認してください。"
        ),
    )
}

/// rustls server config from PEM files; with a client CA, connections without a certificate it signed are refused
/// during the handshake.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read = |p: &PathBuf, what: &str| std::fs::read(p).map_err(|_| tls_error(what));
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(&files.cert, "証明書")?[..])
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| tls_error("証明書"))?;
    let key = rustls_pemfile::private_key(&mut &read(&files.key, "秘密鍵")?[..])
        .ok()
        .flatten()
        .ok_or_else(|| tls_error("秘密鍵"))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|_| tls_error("プロトコル"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut &read(ca, "クライアントCA")?[..]) {
                roots
                    .add(c.map_err(|_| tls_error("クライアントCA"))?)
                    .map_err(|_| tls_error("クライアントCA"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|_| tls_error("クライアントCA"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|_| tls_error("証明書と秘密鍵の組み合わせ"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Builds the shared state: token store (file or memory), the tokens from the environment, limits.
pub fn build_state(
    opts: &ServeOptions,
    log_reload: Option<LogReload>,
) -> Result<(Arc<AppState>, Option<EngineConfig>)> {
    // Upstream mode loads no model: the URLs are checked first, so that a wrong one stops the start-up.
    let upstreams = opts
        .upstreams
        .iter()
        .map(|u| karte_llm::upstream::parse_url(u, opts.upstreams_from))
        .collect::<Result<Vec<_>>>()?;
    let model = if upstreams.is_empty() {
        let model = karte_models::resolve(opts.model.as_deref())?;
        if model.entry.is_some() {
            karte_models::verify(&model)?;
        }
        Some(model)
    } else {
        None
    };
    let (tokens, audit) = if opts.local {
        (TokenStore::memory(), crate::audit::Audit::none())
    } else {
        let dir = opts.data_dir.clone().unwrap_or_else(default_data_dir);
        (TokenStore::open(&dir)?, crate::audit::Audit::open(&dir)?)
    };
    if opts.local {
        let tok = std::env::var(WORKER_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    Code::WorkerStartFailed,
                    "生成プロセスの起動情報（トークン）がありません。アプリを再起動してください。",
                )
            })?;
        // Gone from the environment before anything else could read or inherit it.
        std::env::remove_var(WORKER_TOKEN_ENV);
        tokens.insert(
            &NewToken {
                name: "desktop".into(),
                holder: Holder::Workstation,
                role: Role::Client,
                rate_limit_per_min: None,
            },
            &tok,
        )?;
    } else {
        for (var, role, name) in [
            (karte_llm::settings::TOKEN_ENV, Role::Client, "env-client"),
            (ADMIN_TOKEN_ENV, Role::Admin, "env-admin"),
        ] {
            if let Some(t) = std::env::var(var).ok().filter(|t| !t.is_empty()) {
                let info = tokens.insert(
                    &NewToken {
                        name: name.into(),
                        holder: Holder::User,
                        role,
                        rate_limit_per_min: None,
                    },
                    &t,
                )?;
                if info.revoked_unix.is_some() {
                    // Registering the same secret again does not revive it: say so, or the operator is left
                    // wondering why the variable is refused.
                    tracing::warn!(
                        token_id = %info.id,
                        variable = var,
                        "the token in this environment variable was revoked and stays refused: set a new value"
                    );
                }
            }
        }
    }
    let mut limits = opts.limits.clone();
    // A request's body gets the same bound as its head.
    limits.read_timeout = opts.conn.header_read;
    let model_name = model
        .as_ref()
        .map_or_else(|| "upstream".into(), |m| m.name.clone());
    let mut state = AppState::new(model_name, tokens, limits, opts.local);
    state.audit = audit;
    state.log_reload = log_reload;
    // The local worker's one client is the desktop, which guards the stream and the stored draft against the
    // dictation itself; a second guard reading the whole prompt could only disagree with it.
    state.guard = if opts.local {
        crate::guard::GuardPolicy::off()
    } else {
        crate::guard::GuardPolicy::new(&opts.guard)?
    };
    let Some(model) = model else {
        let ms = std::time::Duration::from_millis;
        let creds = crate::credentials::load()?;
        tracing::info!(credentials = %creds.summary, "upstream credentials");
        let cfg = karte_llm::upstream::UpstreamConfig {
            connect_timeout: ms(opts.upstream.connect_timeout_ms),
            idle_timeout: ms(opts.upstream.idle_timeout_ms),
            total_timeout: opts.limits.request_timeout,
            probe_timeout: ms(opts.upstream.probe_timeout_ms),
            tls: creds.tls,
        };
        let token = creds.token;
        state.upstream_credentials = Some(creds.summary);
        // reqwest's blocking clients own a runtime of their own, which must not be built (or dropped) on an async
        // thread: the pool is made on a plain one.
        let pool = std::thread::scope(|s| {
            s.spawn(|| karte_llm::upstream::UpstreamPool::new(&upstreams, token, &cfg))
                .join()
                .map_err(|_| internal())
        })??;
        state.upstream = Some(Arc::new(pool));
        return Ok((Arc::new(state), None));
    };
    let mut cfg = EngineConfig::new(&model.path, &model.name);
    cfg.n_threads = opts.threads;
    if let Some(s) = opts.speculation {
        cfg.speculation = s;
    }
    cfg.n_parallel = opts.limits.parallel.max(1);
    // The KV cells are shared by the sequences decoded together: room for each one's prompt and answer.
    cfg.n_ctx = opts.n_ctx.saturating_mul(cfg.n_parallel);
    // What the engine refuses as too long (prompt + max_tokens over its cells), checked before it is asked.
    state.context_tokens = cfg.n_ctx as usize;
    cfg.max_queue = opts.limits.max_queue;
    // One cached prompt per sequence, as llama-server keeps one per slot: many workstations send the same drafting
    // instructions with different dictations, and with fewer entries than clients in flight each new prompt evicts
    // the one the next request would have reused. Entries give their cells back when a request needs them.
    cfg.prefix_cache = cfg.n_parallel.max(EngineConfig::DEFAULT_PREFIX_CACHE);
    Ok((Arc::new(state), Some(cfg)))
}

/// Binds, announces the address on stdout, loads the model in the background and serves until shutdown
/// (stdin closed for the local worker, Ctrl-C / SIGTERM otherwise).
pub async fn serve(opts: ServeOptions, log_reload: Option<LogReload>) -> Result<()> {
    check_listen(&opts)?;
    let (state, engine_cfg) = build_state(&opts, log_reload)?;
    let listener = std::net::TcpListener::bind(opts.listen).map_err(|_| {
        Error::new(
            Code::ConfigInvalid,
            format!(
                "{} で待ち受けできません（使用中か権限がありません）。",
                opts.listen
            ),
        )
    })?;
    listener.set_nonblocking(true).map_err(|_| internal())?;
    let addr = listener.local_addr().map_err(|_| internal())?;
    let tls = opts.tls.as_ref().map(tls_config).transpose()?;
    let descriptors = conn::raise_descriptor_limit();
    let cap = conn::connection_cap(opts.conn.max_connections, descriptors);
    if let Some(asked) = opts.conn.max_connections.filter(|&m| m > cap) {
        tracing::warn!(
            asked,
            max_connections = cap,
            descriptor_limit = descriptors,
            "serve.max_connections lowered to stay under the file-descriptor limit (raise LimitNOFILE)"
        );
    }
    let counters = Arc::clone(&state.metrics.conn);
    let capped =
        conn::CappedListener::new(listener, cap, Arc::clone(&counters)).map_err(|_| internal())?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{LISTENING_PREFIX}{addr}");
        let _ = out.flush();
    }
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        local = opts.local,
        max_connections = cap,
        descriptor_limit = descriptors,
        header_read_timeout_s = opts.conn.header_read.as_secs_f64(),
        tls_handshake_timeout_s = opts.conn.handshake.as_secs_f64(),
        idle_timeout_s = opts.conn.idle.as_secs_f64(),
        "listening"
    );
    let mode = if engine_cfg.is_some() {
        "model"
    } else {
        "upstream"
    };
    state.audit(crate::audit::Event::Server {
        action: "start".into(),
        mode: mode.into(),
        credentials: state.upstream_credentials.clone(),
    });
    if let Some(head) = state.audit.head() {
        // The head in the ordinary log, which IT ships elsewhere: what shows a trail cut off at its end.
        tracing::info!(audit_head = %head, "audit trail opened");
    }
    match engine_cfg {
        Some(cfg) => state.load_in_background(cfg),
        None => spawn_probes(&state, opts.upstream.probe_interval_s),
    }
    let audited = Arc::clone(&state);

    let handle: axum_server::Handle<conn::PeerAddr> = axum_server::Handle::new();
    let h = handle.clone();
    let local = opts.local;
    tokio::spawn(async move {
        if local {
            // The parent keeps our stdin open; EOF means it closed it or died.
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            tracing::info!("stdin closed: shutting down");
        } else {
            shutdown_signal().await;
        }
        h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });

    let app = crate::app::router(state);
    let server = axum_server::Server::<conn::PeerAddr>::from_listener(capped)
        .handle(handle)
        .http1_only()
        .accept_error_handler({
            let counters = Arc::clone(&counters);
            move |_peer, e| {
                // Never the peer's address: only what happened.
                if e.kind() == std::io::ErrorKind::TimedOut {
                    counters
                        .closed_handshake_timeout
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    tracing::debug!(kind = ?e.kind(), "connection not accepted");
                }
            }
        });
    let res = match tls {
        Some(cfg) => {
            let rc = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(rc)
                .handshake_timeout(opts.conn.handshake);
            server
                .acceptor(conn::Guard::new(tls, opts.conn, counters))
                .serve(app.into_make_service())
                .await
        }
        None => {
            server
                .acceptor(conn::Guard::new(
                    axum_server::accept::DefaultAcceptor::new(),
                    opts.conn,
                    counters,
                ))
                .serve(app.into_make_service())
                .await
        }
    };
    audited.audit(crate::audit::Event::Server {
        action: "stop".into(),
        mode: mode.into(),
        credentials: None,
    });
    if let Some(head) = audited.audit.head() {
        tracing::info!(audit_head = %head, "audit trail closed");
    }
    res.map_err(|_| internal())
}

/// Upstream mode: probes every upstream now and then every `interval_s` seconds, off the async threads. An
/// upstream a request found failing is out of rotation until the next probe it passes.
fn spawn_probes(state: &Arc<AppState>, interval_s: u64) {
    let Some(pool) = state.upstream.clone() else {
        return;
    };
    tracing::info!(
        upstreams = pool.upstreams().len(),
        interval_s,
        "upstream mode: probing"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval_s.max(1)));
        loop {
            tick.tick().await;
            let p = Arc::clone(&pool);
            let _ = tokio::task::spawn_blocking(move || p.probe_all()).await;
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn internal() -> Error {
    Error::new(
        Code::Internal,
        "サーバーを起動できませんでした。ログを確認してください。",
    )
}

//! The command-line surface shared by the `karte-server` binary and `karte serve`: one set of flags, one start-up.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{ServeOptions, TlsFiles};

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Local worker mode: loopback, random port, token from KARTE_WORKER_TOKEN, stops when stdin closes.
    #[arg(long)]
    pub local: bool,
    /// Address to listen on (default: the settings file's serve.listen, else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Manifest name or GGUF path.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub threads: Option<i32>,
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback --listen address (refused without TLS otherwise; a warning is logged).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Token store directory (default /var/lib/karte-server or KARTE_SERVER_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// JSON log files, rotated daily.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Requests waiting beyond those being decoded; more get 429 with Retry-After.
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// Requests decoded together in one llama context (continuous batching); default 4, 1 for --local.
    #[arg(long)]
    pub parallel: Option<u32>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Upper bound on one request's generation time, in seconds.
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Upstream mode: an OpenAI-compatible engine (llama-server, vLLM, TGI) to forward to instead of loading a
    /// model, e.g. http://10.0.0.5:8000. Repeat for several; wins over the settings file's serve.upstreams.
    #[arg(long = "upstream", value_name = "URL", conflicts_with_all = ["local", "model"])]
    pub upstreams: Vec<String>,
    #[command(subcommand)]
    pub action: Option<ServeAction>,
}

/// What the server's operator does besides serving.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ServeAction {
    /// Store the upstream engines' credentials in the OS keyring (upstream mode): checked first, then written.
    Credentials {
        /// The bearer token is read from this environment variable, never from the command line.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
        /// Client certificate (PEM) for upstreams that require mutual TLS.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// The CA (PEM) that issued the upstreams' certificates: trusted instead of the public roots.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Check the audit trail's chain (<data-dir>/audit.jsonl); exit status 1 and the first broken line if edited.
    VerifyAudit {
        /// The server's data directory (default: as `karte serve` finds it).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// The operator's actions: no server is started.
fn act(action: ServeAction, data_dir: Option<PathBuf>) -> karte_core::Result<()> {
    use karte_core::{Code, Error};
    match action {
        ServeAction::Credentials {
            token_env,
            client_cert,
            client_key,
            ca,
        } => {
            let token = token_env
                .map(|var| {
                    std::env::var(&var).map_err(|_| {
                        Error::new(
                            Code::ConfigInvalid,
                            format!("環境変数 {var} にトークンがありません。キーリングは変更していません。"),
                        )
                    })
                })
                .transpose()?;
            let backend = karte_store::vault::KeyringBackend::from_env()?;
            let shown = crate::credentials::install(
                backend,
                &crate::credentials::Source {
                    token: token.as_deref(),
                    client_cert: client_cert.as_deref(),
                    client_key: client_key.as_deref(),
                    ca: ca.as_deref(),
                },
            )?;
            println!("上流サーバー用の資格情報をキーリングに保存しました。次回の起動から使われます。\n{shown}");
            Ok(())
        }
        ServeAction::VerifyAudit { data_dir: given } => {
            let dir = given
                .or(data_dir)
                .unwrap_or_else(crate::serve::default_data_dir);
            let (n, head) = crate::audit::verify(&dir.join(crate::audit::FILE_NAME))?;
            println!("監査ログに異常はありません（{n} 件、最新のハッシュ {head}）。");
            Ok(())
        }
    }
}

/// Reads the settings file, sets up logging, and serves until shutdown. The command line wins over the settings.
pub fn run(a: ServeArgs) -> karte_core::Result<()> {
    let settings = karte_llm::Settings::load()?;
    if let Some(action) = a.action {
        return act(action, a.data_dir.or(settings.serve.data_dir));
    }
    let log_dir = a.log_dir.clone().or_else(|| settings.serve.log_dir.clone());
    let (reload, _guard) = crate::logging::init(&a.log_level, log_dir.as_deref());
    let mut opts = if a.local {
        ServeOptions::local()
    } else {
        let listen = match (a.listen, &settings.serve.listen) {
            (Some(l), _) => l,
            (None, Some(s)) => s.parse().map_err(|_| {
                karte_core::Error::new(
                    karte_core::Code::ConfigInvalid,
                    "設定ファイルの serve.listen が正しいアドレスではありません（例: 0.0.0.0:8443）。",
                )
            })?,
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        ServeOptions::new(listen)
    };
    opts.model = a.model;
    opts.threads = a.threads;
    opts.data_dir = a.data_dir;
    opts.insecure_plaintext = a.insecure_plaintext;
    opts.upstreams = a.upstreams;
    if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
        opts.tls = Some(TlsFiles {
            cert,
            key,
            client_ca: a.client_ca,
        });
    }
    opts.apply_settings(&settings);
    if let Some(q) = a.max_queue {
        opts.limits.max_queue = q;
    }
    if let Some(p) = a.parallel {
        opts.limits.parallel = p.max(1);
    }
    if let Some(t) = a.max_tokens {
        opts.limits.max_tokens = t;
    }
    if let Some(t) = a.request_timeout {
        opts.limits.request_timeout = std::time::Duration::from_secs(t);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|_| {
            karte_core::Error::new(
                karte_core::Code::Internal,
                "サーバーを起動できませんでした。",
            )
        })?;
    rt.block_on(crate::serve(opts, Some(reload)))
}

//! Structured JSON logs with daily rotation and a run-time level switch.
//!
//! What gets logged is decided at the call sites: request ids, token ids, sizes (message count, characters),
//! statuses and timings. Never message text, never a token: the privacy rule of every Karte crate.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter};

use crate::state::LogReload;

/// llama.cpp's own chatter stays at warn unless asked for.
fn filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!(
        "{level},llama-cpp-2=warn,llama_cpp_2=warn,hyper=warn"
    ))
}

/// Installs the global subscriber: JSON on stderr, and JSON files rotated daily in `log_dir` when given. The
/// returned guard flushes the file writer and must live as long as the process.
pub fn init(
    level: &str,
    log_dir: Option<&Path>,
) -> (
    LogReload,
    Option<tracing_appender::non_blocking::WorkerGuard>,
) {
    let (filter_layer, handle) = reload::Layer::new(filter(level));
    let stderr = fmt::layer().json().with_writer(std::io::stderr);
    let (file, guard) = match log_dir {
        Some(d) => {
            let appender = tracing_appender::rolling::daily(d, "karte-server.log");
            let (nb, guard) = tracing_appender::non_blocking(appender);
            (Some(fmt::layer().json().with_writer(nb)), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter_layer)
        .with(stderr)
        .with(file)
        .try_init();
    let reload: LogReload =
        Box::new(move |lvl: &str| handle.reload(filter(lvl)).map_err(|e| e.to_string()));
    (reload, guard)
}

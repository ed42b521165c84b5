//! karte-server: an OpenAI-compatible inference server over karte-engine, or a guarded gateway in front of
//! OpenAI-compatible engines (upstream mode: llama-server, vLLM, TGI), with a management API.
//!
//! The same library runs as the clinic's GPU server (`karte serve`, `karte-server`) and as the workstation's local
//! worker (`karte-server --local`, started and supervised by the desktop app through karte-llm). One HTTP API for
//! both means one client path, and a llama.cpp abort in the worker costs the worker process, not the app.
//!
//! - [`audit`]: who asked for which answer and how it ended, administrator acts; hash-chained, no clinical text
//! - [`app`]: the router; handlers authenticate, call the library and shape answers, nothing more
//! - [`chat`]: request limits, the bounded queue (429 + Retry-After), the engine bridge, cancellation on disconnect
//! - [`guard`]: the answer guard on every answer, streamed or whole, local or upstream (`content_filter`)
//! - [`schema`]: caps and checks on a client's `response_format` JSON schema (size, alternatives, bounds)
//! - [`tokens`]: bearer tokens stored hashed, roles, rate limits
//! - [`metrics`]: Prometheus text
//! - [`conn`]: the connection cap and the header-read, handshake and idle timeouts (slow and idle clients)
//! - [`credentials`]: the upstream engines' token, client certificate and CA, in the OS keyring
//! - [`serve`]: TLS (rustls, optional client certificates), the local-worker protocol, start-up
//! - [`logging`]: JSON logs with rotation and a run-time level

pub mod app;
pub mod audit;
pub mod chat;
pub mod cli;
pub mod conn;
pub mod credentials;
pub mod error;
pub mod guard;
pub mod logging;
pub mod metrics;
pub mod schema;
pub mod serve;
pub mod state;
pub mod tokens;
pub mod voice;

pub use serve::{serve, ServeOptions, TlsFiles};
pub use state::Limits;

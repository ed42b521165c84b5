//! The one settings file hospital IT manages, read by the CLI, the desktop app, the server and the uploader alike.
//!
//! Where: `$KARTE_SETTINGS` if set, else `/etc/karte/settings.toml` (Linux), `/Library/Application Support/Karte/
//! settings.toml` (macOS), `%ProgramData%\Karte\settings.toml` (Windows). A machine-wide, root-owned file rather
//! than a per-user one, because IT pushes it with the installer and users must not point their workstation at
//! another server or another upload endpoint: editing it is the administrator's act, not a user's setting.
//!
//! A missing file means "local model only, no upload configured"; a file that exists but does not parse, or holds
//! a key this build does not know (`deny_unknown_fields`), is an error (`config.invalid`) rather than a silent
//! fallback, so that a typo does not quietly send a ward's notes to the wrong place.
//!
//! Plain data only: what each section *means* (an HTTP client, an uploader) is built by the crate that uses it
//! (karte-llm, karte-server, karte-sync), so this crate stays a leaf that every one of them can depend on.

use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming another settings file (tests, unusual installs).
pub const SETTINGS_ENV: &str = "KARTE_SETTINGS";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The clinic server this workstation drafts with when it is healthy. Absent: always the local model.
    #[serde(default)]
    pub server: Option<ServerSettings>,
    #[serde(default)]
    pub model: ModelSettings,
    /// Used by `karte serve` / `karte-server` on the clinic machine.
    #[serde(default)]
    pub serve: ServeSettings,
    /// Upload of signed documents to the hospital's cloud platform. Absent: documents wait in the queue.
    #[serde(default)]
    pub sync: Option<SyncSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// e.g. `https://karte-gpu.example.local:8443`
    pub url: String,
    /// PEM of the server certificate or the hospital CA: the only certificate trusted for this server.
    #[serde(default)]
    pub pinned_cert: Option<PathBuf>,
    /// Client certificate and key (PEM) when the server requires mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// File holding this workstation's bearer token (mode 0600); else `$KARTE_SERVER_TOKEN`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long a connection attempt may take before the local model takes over.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Longest silence in a streamed answer before it counts as a failure.
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// `false`: dictation audio is transcribed on this workstation only and never sent to the clinic server. Text
    /// is pseudonymised before it leaves the workstation; a voice cannot be, so a hospital may keep it in the ward.
    #[serde(default = "default_true")]
    pub send_audio: bool,
}

fn default_true() -> bool {
    true
}

fn default_connect_ms() -> u64 {
    1500
}
fn default_idle_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// A name from models/manifest.toml or a path to a GGUF file; absent = the manifest's default.
    #[serde(default)]
    pub name: Option<String>,
    /// Threads for generation; absent = every core.
    #[serde(default)]
    pub threads: Option<i32>,
    /// Prompt-lookup speculative decoding for greedy requests (`"lookup"` or `"off"`); absent = the engine's
    /// default, off. Here so that IT can turn it on for a machine whose llama.cpp build it pays on, without a new
    /// build; the environment's `KARTE_SPECULATION` still wins, so one process can be started the other way.
    #[serde(default)]
    pub speculation: Option<SpeculationSetting>,
}

/// The values of `[model] speculation`. Its own small enum rather than karte-engine's, because this crate is the
/// leaf every other one reads settings through; the server maps it onto the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeculationSetting {
    Off,
    Lookup,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Token store and other state; default `/var/lib/karte-server`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// JSON logs, rotated daily; absent = stderr only.
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
    /// Requests waiting beyond this get 429 with Retry-After.
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// Requests decoded together (continuous batching); default 4.
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Upper bound on `max_tokens` of any request.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Upper bound on the time one request may generate, in seconds.
    #[serde(default)]
    pub request_timeout_s: Option<u64>,
    /// Serve plain HTTP on a non-loopback `listen` address (no TLS). Refused unless set; logged as a warning.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// Seconds a request's head (and then its body) may take to arrive once the client starts sending it; a
    /// connection that trickles it slower is closed. Default 10.
    #[serde(default)]
    pub header_read_timeout_s: Option<u64>,
    /// Seconds a TLS handshake may take. Default 10.
    #[serde(default)]
    pub tls_handshake_timeout_s: Option<u64>,
    /// Seconds a connection may stay open without a request (new, or kept alive after an answer). Default 60.
    #[serde(default)]
    pub idle_timeout_s: Option<u64>,
    /// Open connections at most; further ones wait in the kernel's queue until one closes. Default: 1024, and
    /// never more than the process's file-descriptor limit minus a reserve.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Largest `response_format` JSON schema accepted, in bytes. Default 16384.
    #[serde(default)]
    pub max_schema_bytes: Option<usize>,
    /// Most alternatives (`enum` values + `anyOf`/`oneOf` branches, summed over the schema). Default 256.
    #[serde(default)]
    pub max_schema_alternatives: Option<usize>,
    /// Tokens that count as one more request against a token's `rate_limit_per_min` (prompt + `max_tokens` on
    /// admission, prompt + generated when it ends). Default 1024.
    #[serde(default)]
    pub rate_limit_unit_tokens: Option<u32>,
    /// Upstream mode: OpenAI-compatible engines (llama-server, vLLM, TGI) that answer instead of a model loaded
    /// here, e.g. `["http://10.0.0.5:8000"]` (scheme, host, port; no `/v1`). Empty = serve the local model.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Upstream timeouts and health probing; defaults in [`UpstreamSettings`].
    #[serde(default)]
    pub upstream: UpstreamSettings,
    /// The answer guard on every `/v1/chat/completions` answer, in both modes.
    #[serde(default)]
    pub guard: ServeGuardSettings,
}

/// `[serve.upstream]`: how long karte-server waits for an upstream engine and how often it probes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Connecting to an upstream; past it the request goes to the next one. Default 2000.
    #[serde(default = "default_upstream_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the upstream's headers or its next streamed piece. Default 60000.
    #[serde(default = "default_upstream_idle_ms")]
    pub idle_timeout_ms: u64,
    /// Seconds between `/health` probes of each upstream (an upstream out of rotation comes back on the first
    /// probe it passes). Default 5.
    #[serde(default = "default_probe_interval_s")]
    pub probe_interval_s: u64,
    /// A probe's own timeout. Default 2000.
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
}

fn default_upstream_connect_ms() -> u64 {
    2000
}
fn default_upstream_idle_ms() -> u64 {
    60_000
}
fn default_probe_interval_s() -> u64 {
    5
}
fn default_probe_timeout_ms() -> u64 {
    2000
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: default_upstream_connect_ms(),
            idle_timeout_ms: default_upstream_idle_ms(),
            probe_interval_s: default_probe_interval_s(),
            probe_timeout_ms: default_probe_timeout_ms(),
        }
    }
}

/// What the server's answer guard does with an answer the harm policy blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// The blocked sentence is replaced by a refusal and the answer ends with `finish_reason: content_filter`:
    /// there for free text; a structured (JSON schema) answer goes on with the sentence withheld, so it parses.
    #[default]
    Block,
    /// The answer passes unchanged; the verdict is counted in `/metrics`.
    Flag,
    /// No guard.
    Off,
}

/// `[serve.guard]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeGuardSettings {
    #[serde(default)]
    pub mode: GuardMode,
    /// Per harm-policy category (`self_harm`, `overdose`, …), instead of `mode`: e.g. `overdose = "flag"` where a
    /// pharmacist reviews every dose anyway. Names are checked against the policy at start-up.
    #[serde(default)]
    pub categories: std::collections::BTreeMap<String, GuardMode>,
}

/// `[sync]`: where signed documents go and under which identity policy. Secrets are not settings: the client
/// certificate, its key, the bearer token and the pseudonym key live in the keyring (`karte queue credentials`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// The platform's FHIR base URL (https only); Bundles are POSTed to `{endpoint}/Bundle`.
    pub endpoint: String,
    /// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (as `openssl x509 -pubkey | openssl pkey
    /// -pubin -outform der | openssl dgst -sha256 -binary | base64` prints it). Several are allowed, for a key
    /// rollover: any one must match. Checked in addition to normal certificate validation, never instead of it.
    pub spki_sha256: Vec<String>,
    /// PEM file of the CA(s) that issue the platform's certificate; without it, the Mozilla root set.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the hospital's policy allows identifying data in the Bundle (patient id, unpseudonymised text).
    /// Off unless written here as `true`.
    #[serde(default)]
    pub include_identifying_data: bool,
    /// 10-digit 保険医療機関コード: the JP Core patient-id system when identifying data is allowed, and the
    /// issuing facility of JP-CLINS documents (their Bundle and Composition identifiers need it).
    #[serde(default)]
    pub facility_code: Option<String>,
    /// The hospital's name, as JP-CLINS documents name their issuing facility (作成機関).
    #[serde(default)]
    pub facility_name: Option<String>,
    /// Per-request limit (connect + send + answer), seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// First retry delay; doubled per attempt up to `retry_max_ms`, each with random jitter.
    #[serde(default = "default_base")]
    pub retry_base_ms: u64,
    #[serde(default = "default_max")]
    pub retry_max_ms: u64,
}

fn default_timeout() -> u64 {
    30
}
fn default_base() -> u64 {
    2_000
}
fn default_max() -> u64 {
    15 * 60 * 1000
}

/// `config.invalid` naming the file (a path is not personal data) and what is wrong with it, never a value from it
/// (a value could be a token).
pub fn invalid(path: &Path, why: &str) -> Error {
    Error::new(
        Code::ConfigInvalid,
        format!(
            "設定ファイル {} を読み込めません（{why}）。システム管理者に連絡してください（README の「設定ファイル」）。",
            path.display()
        ),
    )
}

impl Settings {
    /// The settings file's location on this machine (see the module docs).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(SETTINGS_ENV).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if cfg!(windows) {
            let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
            PathBuf::from(base).join("Karte").join("settings.toml")
        } else if cfg!(target_os = "macos") {
            PathBuf::from("/Library/Application Support/Karte/settings.toml")
        } else {
            PathBuf::from("/etc/karte/settings.toml")
        }
    }

    /// Reads the machine's settings; a missing file gives the defaults.
    pub fn load() -> Result<Settings> {
        Self::load_from(&Self::default_path())
    }

    pub fn load_from(path: &Path) -> Result<Settings> {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::parse(&s).map_err(|why| invalid(path, &why)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(_) => Err(invalid(path, "読み取り権限がありません")),
        }
    }

    /// Parses and checks the TOML text; the error names the offending key and line.
    pub fn parse(text: &str) -> std::result::Result<Settings, String> {
        let s: Settings = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|sp| text[..sp.start.min(text.len())].lines().count().max(1));
            match line {
                Some(l) => format!("{l} 行目: {msg}"),
                None => msg,
            }
        })?;
        if let Some(srv) = &s.server {
            if !(srv.url.starts_with("http://") || srv.url.starts_with("https://")) {
                return Err("server.url は http:// か https:// で始めてください".into());
            }
            if srv.client_cert.is_some() != srv.client_key.is_some() {
                return Err("client_cert と client_key は両方指定してください".into());
            }
        }
        if s.serve.tls_cert.is_some() != s.serve.tls_key.is_some() {
            return Err("serve.tls_cert と serve.tls_key は両方指定してください".into());
        }
        s.serve.check()?;
        if let Some(sync) = &s.sync {
            sync.check()?;
        }
        Ok(s)
    }
}

impl ServeSettings {
    /// Zero would disable a timeout or a cap by accident: refuse it, naming the key.
    fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("header_read_timeout_s", self.header_read_timeout_s),
            ("tls_handshake_timeout_s", self.tls_handshake_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("request_timeout_s", self.request_timeout_s),
            ("max_connections", self.max_connections.map(|v| v as u64)),
            ("max_schema_bytes", self.max_schema_bytes.map(|v| v as u64)),
            (
                "max_schema_alternatives",
                self.max_schema_alternatives.map(|v| v as u64),
            ),
            (
                "rate_limit_unit_tokens",
                self.rate_limit_unit_tokens.map(u64::from),
            ),
        ];
        for (key, v) in positive {
            if v == Some(0) {
                return Err(format!("serve.{key} は 1 以上にしてください"));
            }
        }
        Ok(())
    }
}

impl SyncSettings {
    fn check(&self) -> std::result::Result<(), String> {
        if !self.endpoint.starts_with("https://") {
            return Err("sync.endpoint は https:// で始まる URL にしてください".into());
        }
        if self.spki_sha256.is_empty() {
            return Err("sync.spki_sha256 に証明書の公開鍵ピンを1つ以上書いてください".into());
        }
        if self.pins().is_none() {
            return Err("sync.spki_sha256 は SHA-256 の Base64（44文字）にしてください".into());
        }
        if let Some(code) = &self.facility_code {
            if code.len() != 10 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err("sync.facility_code は10桁の保険医療機関コードにしてください".into());
            }
        }
        Ok(())
    }

    /// The pins as raw digests; `None` if one is not a base64 SHA-256 (a `sha256/` prefix is accepted).
    pub fn pins(&self) -> Option<Vec<[u8; 32]>> {
        use base64::Engine;
        self.spki_sha256
            .iter()
            .map(|p| {
                let p = p.trim();
                let p = p.strip_prefix("sha256/").unwrap_or(p);
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            })
            .collect()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    pub fn bundle_url(&self) -> String {
        format!("{}/Bundle", self.endpoint.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn audio_can_be_kept_on_the_workstation() {
        let s =
            Settings::parse("[server]\nurl = \"https://k.example\"\nsend_audio = false\n").unwrap();
        assert!(!s.server.unwrap().send_audio);
        let e = Settings::parse("[server]\nurl = \"https://k.example\"\nsend_audio = \"no\"\n")
            .unwrap_err();
        assert!(e.contains("3 行目") && e.contains("boolean"), "{e}");
    }

    #[test]
    fn full_example_parses() {
        let s = Settings::parse(&format!(
            r#"
[server]
url = "https://karte-gpu.example.local:8443"
pinned_cert = "/etc/karte/clinic-ca.pem"
token_file = "/etc/karte/token"

[model]
name = "qwen2.5-coder-0.5b"
threads = 4

[serve]
listen = "0.0.0.0:8443"
tls_cert = "/etc/karte/server.pem"
tls_key = "/etc/karte/server.key"
max_queue = 32
insecure_plaintext = false
header_read_timeout_s = 10
tls_handshake_timeout_s = 10
idle_timeout_s = 60
max_connections = 1024
max_schema_bytes = 16384
max_schema_alternatives = 256
rate_limit_unit_tokens = 1024

[sync]
endpoint = "https://fhir.example.jp/r4/"
spki_sha256 = ["{PIN}"]
ca_file = "/etc/karte/platform-ca.pem"
facility_code = "1312345678"
facility_name = "カルテ記念病院"
"#
        ))
        .unwrap();
        let srv = s.server.unwrap();
        assert_eq!(srv.connect_timeout_ms, 1500);
        assert!(
            srv.send_audio,
            "audio may go to the server unless IT says no"
        );
        assert_eq!(s.model.threads, Some(4));
        assert_eq!(s.serve.max_queue, Some(32));
        assert_eq!(
            (
                s.serve.header_read_timeout_s,
                s.serve.tls_handshake_timeout_s,
                s.serve.idle_timeout_s,
                s.serve.max_connections,
            ),
            (Some(10), Some(10), Some(60), Some(1024))
        );
        assert_eq!(
            (
                s.serve.max_schema_bytes,
                s.serve.max_schema_alternatives,
                s.serve.rate_limit_unit_tokens,
            ),
            (Some(16384), Some(256), Some(1024))
        );
        assert!(!s.serve.insecure_plaintext);
        let sync = s.sync.unwrap();
        assert_eq!(sync.bundle_url(), "https://fhir.example.jp/r4/Bundle");
        assert!(
            !sync.include_identifying_data,
            "identifying data must be off unless written"
        );
        assert_eq!((sync.timeout_secs, sync.retry_base_ms), (30, 2_000));
        assert_eq!(sync.pins().unwrap().len(), 1);
    }

    /// `[model] speculation`: the two values the issue names, its absence (the engine's default), and what is
    /// refused with the line and the allowed values: the looser spellings the environment variable takes (`on`,
    /// `true`) are not settings values, so a file cannot mean two things.
    #[test]
    fn speculation_is_lookup_or_off() {
        let ok = [
            (
                "[model]\nspeculation = \"lookup\"\n",
                Some(SpeculationSetting::Lookup),
            ),
            (
                "[model]\nspeculation = \"off\"\n",
                Some(SpeculationSetting::Off),
            ),
            (
                "[model]\nname = \"qwen2.5-coder-0.5b\"\nthreads = 2\nspeculation = \"lookup\"\n",
                Some(SpeculationSetting::Lookup),
            ),
            ("[model]\nname = \"qwen2.5-coder-0.5b\"\n", None),
            ("", None),
        ];
        for (text, want) in ok {
            assert_eq!(
                Settings::parse(text).unwrap().model.speculation,
                want,
                "{text:?}"
            );
        }
        let bad = [
            ("[model]\nspeculation = \"on\"\n", "2 行目"),
            ("[model]\nspeculation = \"Lookup\"\n", "2 行目"),
            ("[model]\nspeculation = \"ngram\"\n", "2 行目"),
            ("[model]\nspeculation = true\n", "2 行目"),
            ("[model]\nspeculative = \"lookup\"\n", "speculative"),
        ];
        for (text, needle) in bad {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            if text.contains("speculation = \"") {
                assert!(e.contains("lookup") && e.contains("off"), "{text:?}: {e}");
            }
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            ("[server]\nurl = \"ftp://x\"\n", "http"),
            (
                "[server]\nurl = \"https://x\"\nclient_cert = \"a\"\n",
                "client_key",
            ),
            ("[model]\nthreads = \"four\"\n", "2 行目"),
            ("[modle]\n", "modle"),
            (
                "[sync]\nendpoint = \"http://x\"\nspki_sha256 = [\"PIN\"]",
                "https",
            ),
            (
                "[sync]\nendpoint = \"https://x\"\nspki_sha256 = []",
                "spki_sha256",
            ),
            (
                "[sync]\nendpoint = \"https://x\"\nspki_sha256 = [\"abc\"]",
                "Base64",
            ),
            (
                "[sync]\nendpoint = \"https://x\"\nspki_sha256 = [\"PIN\"]\nfacility_code = \"12\"",
                "10桁",
            ),
            (
                "[sync]\nendpoint = \"https://x\"\nspki_sha256 = [\"PIN\"]\nunknown = 1",
                "unknown",
            ),
            ("[sync]\nspki_sha256 = [\"PIN\"]", "endpoint"),
            ("[serve]\nidle_timeout_s = 0\n", "serve.idle_timeout_s"),
            ("[serve]\nmax_connections = 0\n", "serve.max_connections"),
            ("[serve]\nheader_read_timeout = 5\n", "header_read_timeout"),
        ];
        for (text, needle) in cases {
            let e = Settings::parse(&text.replace("PIN", PIN)).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let prefixed =
            format!("[sync]\nendpoint = \"https://x\"\nspki_sha256 = [\"sha256/{PIN}\"]");
        assert_eq!(
            Settings::parse(&prefixed)
                .unwrap()
                .sync
                .unwrap()
                .pins()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn missing_file_is_defaults_and_a_bad_one_is_config_invalid_naming_it() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            Settings::load_from(&d.path().join("none.toml")).unwrap(),
            Settings::default()
        );
        let bad = d.path().join("settings.toml");
        std::fs::write(
            &bad,
            "[sync]\nendpoint = \"http://plain\"\nspki_sha256 = []\n",
        )
        .unwrap();
        let e = Settings::load_from(&bad).unwrap_err();
        assert_eq!(e.code, Code::ConfigInvalid);
        assert!(e.message.contains(&bad.display().to_string()), "{e}");
    }
}

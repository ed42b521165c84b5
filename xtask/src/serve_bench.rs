//! `cargo xtask bench-serve`: serving throughput and time to first token under concurrent streaming clients, for
//! llama.cpp's `llama-server` against karte-server (built and started here; or karte-engine in-process, or any
//! OpenAI-compatible URL), same model, same thread count, same slots and KV cells, same run, rounds interleaved so
//! machine noise hits both sides.
//!
//! - Throughput: N = 1, 4, 16 clients, each sending requests one after another (closed loop) for a fixed number of
//!   requests; aggregate generated tokens/s over the scenario's wall time, and p50/p95 time to first token.
//! - Prefix cache: one client, a ~1,000-token shared instruction prefix plus a different short dictation per
//!   request; time to first token with the prompt cache on and off (`cache_prompt` per request on both servers;
//!   in-process karte-engine: `prefix_cache` entries vs 0). The first request of each series warms the cache and is not counted.
//!
//! llama-server is built once from the llama-cpp-python sdist's `tools/server` (with `tools/ui` and `tools/mtmd`)
//! copied into a copy of the llama.cpp tree that llama-cpp-sys-2 vendors, like `cargo xtask bench` does for
//! llama-bench, so both sides run the same ggml sources with the same cmake defaults (GGML_NATIVE=OFF).

use crate::run as sh;
use crate::{cargo, step, target_dir};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const THREADS: u32 = 2;
/// Slots on both sides: the highest concurrency measured.
const PARALLEL: u32 = 16;
/// KV cells in all: karte-server gives each sequence 4,096, so llama-server gets the same total.
const N_CTX: u32 = 4096 * PARALLEL;
const CONCURRENCY: [usize; 3] = [1, 4, 16];

struct Opts {
    model: String,
    rounds: usize,
    requests_per_client: usize,
    max_tokens: u32,
    prefix_requests: usize,
    /// What stands for karte: karte-server built and started here (the default), karte-engine in-process, or an
    /// OpenAI-compatible URL already running (bearer token in `KARTE_BENCH_TOKEN`).
    karte: Karte,
    /// Compare against karte-engine serving one request at a time (n_parallel = 1) instead of llama-server.
    serial_reference: bool,
    /// Cargo profile for the in-process engine (`release`, or `dev` whose dependencies are built at -O2).
    profile: String,
    /// `--upstreams N` (N >= 2): karte-server over N llama-servers, each pinned to its own core with one thread,
    /// against karte-server over one such llama-server. 1 = the other modes.
    upstreams: usize,
    /// `[serve.guard] mode` of the gateway (`--karte gateway`, `--upstreams N`): `block` is what hospitals run.
    guard: String,
}

/// The progress line of one round at one concurrency (every mode prints the same).
fn round_step(o: &Opts, round: usize, clients: usize) {
    step(&format!(
        "bench-serve: {}: round {}/{}, {clients} clients x {} requests, {} tokens max",
        o.model,
        round + 1,
        o.rounds,
        o.requests_per_client,
        o.max_tokens
    ));
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        model: crate::TEST_MODEL.to_string(),
        rounds: 2,
        requests_per_client: 2,
        max_tokens: 64,
        prefix_requests: 6,
        karte: Karte::Server,
        serial_reference: false,
        profile: "release".into(),
        upstreams: 1,
        guard: "block".into(),
    };
    let mut karte_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--model" => o.model = val()?.clone(),
            "--rounds" => o.rounds = val()?.parse()?,
            "--requests" => o.requests_per_client = val()?.parse()?,
            "--max-tokens" => o.max_tokens = val()?.parse()?,
            "--prefix-requests" => o.prefix_requests = val()?.parse()?,
            "--karte" => {
                karte_given = true;
                o.karte = match val()?.as_str() {
                    "server" => Karte::Server,
                    "engine" => Karte::Engine,
                    "gateway" => Karte::Gateway,
                    url if url.starts_with("http") => Karte::Url(url.to_string()),
                    other => bail!("--karte server|engine|gateway|URL, not {other}"),
                }
            }
            "--upstreams" => o.upstreams = val()?.parse()?,
            "--guard" => {
                o.guard = match val()?.as_str() {
                    g @ ("block" | "flag" | "off") => g.to_string(),
                    other => bail!("--guard block|flag|off, not {other}"),
                }
            }
            "--reference" => match val()?.as_str() {
                "llama-server" => o.serial_reference = false,
                "engine-serial" => o.serial_reference = true,
                other => bail!("--reference llama-server|engine-serial, not {other}"),
            },
            "--profile" => o.profile = val()?.clone(),
            other => bail!(
                "unknown option {other} (use --model NAME, --rounds N, --requests N, --max-tokens N, \
                 --prefix-requests N, --karte server|engine|gateway|URL, --reference llama-server|engine-serial, \
                 --profile P, --upstreams N, --guard block|flag|off)"
            ),
        }
    }
    if o.upstreams == 0 {
        bail!("--upstreams needs 1 or more");
    }
    if o.upstreams > 1 {
        // Several upstreams only make sense behind the gateway.
        if karte_given && o.karte != Karte::Gateway {
            bail!("--upstreams N compares karte-server in upstream mode: use it with --karte gateway (or alone)");
        }
        o.karte = Karte::Gateway;
    }
    if o.rounds == 0 || o.requests_per_client == 0 {
        bail!("--rounds and --requests need 1 or more");
    }
    Ok(o)
}

#[derive(Clone, PartialEq)]
enum Karte {
    Server,
    Engine,
    Url(String),
    /// karte-server in upstream mode in front of the same llama-server the reference talks to directly.
    Gateway,
}

/// One request's outcome, the same shape from both transports.
#[derive(Debug, Clone)]
struct Record {
    start_ms: f64,
    end_ms: f64,
    ttft_ms: f64,
    tokens: u64,
}

/// What a scenario asks for: per client, its requests in order.
#[derive(Clone)]
struct Scenario {
    clients: Vec<Vec<(String, String, u32)>>,
}

impl Scenario {
    fn to_json(&self) -> Value {
        json!({"clients": self.clients.iter().map(|reqs| reqs.iter().map(|(s, u, m)| json!({
            "system": s, "user": u, "max_tokens": m})).collect::<Vec<_>>()).collect::<Vec<_>>()})
    }
}

const TOPICS: &[&str] = &[
    "a nurse on a night shift",
    "a doctor in a mountain village",
    "a hospital cat",
    "a broken thermometer",
    "a busy emergency room",
    "a patient who loves gardening",
    "an old ambulance",
    "a pharmacist and a riddle",
];

/// `round` is in every prompt: a server that stays up for the whole run (both do) would otherwise answer a later
/// round's identical prompts from its prompt cache, which measures cache size rather than serving, and no ward sends
/// the same dictation twice. `session`: when both sides reach the SAME engine (the gateway modes), each side's
/// prompts start with their own number, so that the side that runs second does not find the first side's prompts
/// in the engine's cache (only the chat template's first tokens are shared, equally by both).
fn throughput_scenario(
    round: usize,
    n: usize,
    per_client: usize,
    max_tokens: u32,
    session: Option<usize>,
) -> Scenario {
    let system = match session {
        Some(s) => format!("Session {s:03}. You are a helpful assistant."),
        None => "You are a helpful assistant.".to_string(),
    };
    Scenario {
        clients: (0..n)
            .map(|c| {
                (0..per_client)
                    .map(|r| {
                        let topic = TOPICS[(c * per_client + r) % TOPICS.len()];
                        (
                            system.clone(),
                            format!("Write a long story about {topic} (round {round}, client {c}, request {r})."),
                            max_tokens,
                        )
                    })
                    .collect()
            })
            .collect(),
    }
}

const DICTATIONS: &[&str] = &[
    "The patient reports a dry cough for three days and a mild fever.",
    "The patient reports pain in the left knee after a fall yesterday.",
    "The patient reports headaches in the morning and poor sleep.",
    "The patient reports nausea after meals since last week.",
    "The patient reports itching on both arms since starting a new soap.",
    "The patient reports shortness of breath when climbing stairs.",
    "The patient reports a sore throat and difficulty swallowing.",
    "The patient reports back pain after lifting a heavy box.",
];

fn prefix_scenario(instructions: &str, n: usize, max_tokens: u32) -> Scenario {
    Scenario {
        clients: vec![(0..n)
            .map(|i| {
                (
                    instructions.to_string(),
                    DICTATIONS[i % DICTATIONS.len()].to_string(),
                    max_tokens,
                )
            })
            .collect()],
    }
}

/// A synthetic drafting instruction of about `target` tokens, sized with the server's own tokenizer.
fn instructions(server: &str, target: usize) -> Result<String> {
    let paragraph = "Write the note in four sections: Subjective, Objective, Assessment and Plan. \
        Use only facts stated in the dictation; never invent findings, doses or test results. \
        Keep each sentence short and clinical. Mark anything uncertain for the doctor to check. ";
    let mut text = String::from("You are a clinical documentation assistant for a hospital ward. ");
    let mut n = 0;
    while n < target {
        text.push_str(paragraph);
        n = count_tokens(server, &text)?;
    }
    Ok(text)
}

fn count_tokens(server: &str, text: &str) -> Result<usize> {
    let v: Value = ureq::post(&format!("{server}/tokenize"))
        .send_json(json!({"content": text}))?
        .body_mut()
        .read_json()?;
    Ok(v["tokens"].as_array().context("tokens")?.len())
}

// ---------------------------------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------------------------------

/// Streams one chat completion and times it. Tokens are the server's `usage.completion_tokens` when it reports
/// them (`stream_options.include_usage`), else the number of content chunks.
fn http_request(
    (url, token): (&str, &str),
    (system, user, max_tokens): &(String, String, u32),
    cache_prompt: bool,
    t0: Instant,
) -> Result<Record> {
    let start = t0.elapsed();
    let body = json!({
        "model": "bench",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
        "cache_prompt": cache_prompt,
    });
    let sent = Instant::now();
    let resp = ureq::post(&format!("{url}/v1/chat/completions"))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(body)?;
    let mut ttft = None;
    let (mut chunks, mut usage) = (0u64, None);
    for line in BufReader::new(resp.into_body().into_reader()).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data.trim() == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).context("SSE chunk")?;
        if let Some(u) = v["usage"]["completion_tokens"].as_u64() {
            usage = Some(u);
        }
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            ttft.get_or_insert_with(|| sent.elapsed().as_secs_f64() * 1e3);
            chunks += 1;
        }
    }
    Ok(Record {
        start_ms: start.as_secs_f64() * 1e3,
        end_ms: t0.elapsed().as_secs_f64() * 1e3,
        ttft_ms: ttft.context("no content streamed")?,
        tokens: usage.unwrap_or(chunks),
    })
}

fn run_http(url: &str, token: &str, sc: &Scenario, cache_prompt: bool) -> Result<Vec<Record>> {
    let t0 = Instant::now();
    let handles: Vec<_> = sc
        .clients
        .iter()
        .cloned()
        .map(|reqs| {
            let (url, token) = (url.to_string(), token.to_string());
            std::thread::spawn(move || -> Result<Vec<Record>> {
                reqs.iter()
                    .map(|r| http_request((&url, &token), r, cache_prompt, t0))
                    .collect()
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.extend(h.join().map_err(|_| anyhow!("client thread panicked"))??);
    }
    Ok(out)
}

/// One side of the comparison.
enum Side {
    /// An OpenAI-compatible server (llama-server, karte-server) and its bearer token.
    Http(String, String),
    /// karte-engine in-process with this many parallel sequences.
    Engine {
        bin: PathBuf,
        model: PathBuf,
        parallel: u32,
    },
}

impl Side {
    /// `cache`: llama-server's `cache_prompt`, or karte-engine's prefix cache (4 entries vs off).
    fn run(&self, sc: &Scenario, cache: bool) -> Result<Vec<Record>> {
        match self {
            Side::Http(url, token) => run_http(url, token, sc, cache),
            Side::Engine {
                bin,
                model,
                parallel,
            } => run_engine(bin, model, sc, *parallel, if cache { 4 } else { 0 }),
        }
    }
}

fn run_engine(
    bin: &Path,
    model: &Path,
    sc: &Scenario,
    parallel: u32,
    prefix_cache: u32,
) -> Result<Vec<Record>> {
    let file = std::env::temp_dir().join(format!("karte-serve-bench-{}.json", std::process::id()));
    fs::write(&file, sc.to_json().to_string())?;
    let out = Command::new(bin)
        .arg("--model")
        .arg(model)
        .args([
            "--threads",
            &THREADS.to_string(),
            "--parallel",
            &parallel.to_string(),
            "--n-ctx",
            &N_CTX.to_string(),
            "--prefix-cache",
            &prefix_cache.to_string(),
            "--scenario",
        ])
        .arg(&file)
        .output()?;
    let _ = fs::remove_file(&file);
    if !out.status.success() {
        bail!(
            "serve_load failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok(Record {
                start_ms: v["start_ms"].as_f64().context("start_ms")?,
                end_ms: v["end_ms"].as_f64().context("end_ms")?,
                ttft_ms: v["ttft_ms"].as_f64().context("ttft_ms")?,
                tokens: v["tokens"].as_u64().context("tokens")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Aggregation
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    tokens_per_s: f64,
    p50_ttft: f64,
    p95_ttft: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest-rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summarize(records: &[Record]) -> Summary {
    let start = records
        .iter()
        .map(|r| r.start_ms)
        .fold(f64::INFINITY, f64::min);
    let end = records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let tokens: u64 = records.iter().map(|r| r.tokens).sum();
    let mut ttft: Vec<f64> = records.iter().map(|r| r.ttft_ms).collect();
    ttft.sort_by(f64::total_cmp);
    Summary {
        tokens_per_s: tokens as f64 / ((end - start) / 1e3),
        p50_ttft: percentile(&ttft, 50.0),
        p95_ttft: percentile(&ttft, 95.0),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

// ---------------------------------------------------------------------------------------------------------------
// llama-server
// ---------------------------------------------------------------------------------------------------------------

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_llama_server(bin: &Path, model: &Path, port: u16) -> Result<(Server, String)> {
    start_llama_server_on(bin, model, port, None)
}

/// `cpu`: pin the server to this one core (`taskset -c`) with one thread, so that several of them do not share a
/// core and each is a bottleneck of its own (`--upstreams N`); `None`: [`THREADS`] threads, unpinned.
fn start_llama_server_on(
    bin: &Path,
    model: &Path,
    port: u16,
    cpu: Option<usize>,
) -> Result<(Server, String)> {
    let log_name = match cpu {
        Some(c) => format!("llama-server-bench-cpu{c}.log"),
        None => "llama-server-bench.log".to_string(),
    };
    let log = fs::File::create(target_dir().join(&log_name))?;
    let threads = if cpu.is_some() { 1 } else { THREADS };
    // taskset execs the server, so the child's pid is the server's and dropping [`Server`] kills it.
    let mut cmd = match cpu {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", &c.to_string()]).arg(bin);
            t
        }
        None => Command::new(bin),
    };
    let child = cmd
        .arg("-m")
        .arg(model)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-t",
            &threads.to_string(),
            "-tb",
            &threads.to_string(),
            "-c",
            &N_CTX.to_string(),
            "-np",
            &PARALLEL.to_string(),
            "--kv-unified",
            "--no-webui",
        ])
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, "llama-server", &log_name)?;
    Ok((server, url))
}

/// karte-server as a clinic would run it, with llama-server's thread count and slot count; its context is sized
/// by the server itself (4,096 cells per sequence), and llama-server gets the same total (`N_CTX`).
fn start_karte_server(bin: &Path, model: &Path, port: u16) -> Result<(Server, String, String)> {
    let data = target_dir().join("karte-server-bench");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data)?;
    let token = format!("bench-{}-{}", std::process::id(), port);
    let log = fs::File::create(target_dir().join("karte-server-bench.log"))?;
    let child = Command::new(bin)
        .arg("--model")
        .arg(model)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--threads",
            &THREADS.to_string(),
            "--parallel",
            &PARALLEL.to_string(),
            "--log-level",
            "warn",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("KARTE_SERVER_TOKEN", &token)
        // No settings file of this machine may change what is measured.
        .env("KARTE_SETTINGS", data.join("none.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url, "karte-server", "karte-server-bench.log")?;
    Ok((server, url, token))
}

/// karte-server in upstream mode in front of `upstreams`, with the answer guard in `guard` mode and otherwise the
/// defaults a hospital starts from (the settings file holds the guard mode, the probe interval and the timeouts
/// below). `name` tells the logs apart.
fn start_gateway(
    bin: &Path,
    upstreams: &[String],
    guard: &str,
    port: u16,
    name: &str,
) -> Result<(Server, String, String)> {
    let data = target_dir().join(format!("karte-gateway-bench-{name}"));
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data)?;
    let settings = data.join("settings.toml");
    // Probed every second rather than 5: the bench waits for every upstream to be in rotation before measuring.
    // Connect and probe timeouts 10 s rather than 2: llama-server's listen backlog is small (cpp-httplib's 5) and
    // with its threads spinning on both cores its accept thread falls behind 16 simultaneous connects, so a
    // dropped SYN (retried after 1 s, then 3 s) would take the only upstream out of rotation mid-measurement. What
    // is measured is the gateway's cost, not its failover.
    fs::write(
        &settings,
        format!(
            "[serve.guard]\nmode = \"{guard}\"\n\n[serve.upstream]\nprobe_interval_s = 1\n\
             connect_timeout_ms = 10000\nprobe_timeout_ms = 10000\n"
        ),
    )?;
    let token = format!("bench-{}-{}", std::process::id(), port);
    let log_name = format!("karte-gateway-bench-{name}.log");
    let log = fs::File::create(target_dir().join(&log_name))?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log-level",
        "warn",
    ]);
    for u in upstreams {
        cmd.args(["--upstream", u]);
    }
    let child = cmd
        .arg("--data-dir")
        .arg(&data)
        .env("KARTE_SERVER_TOKEN", &token)
        .env("KARTE_SETTINGS", &settings)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()?;
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    wait_upstreams_up(&url, upstreams.len(), &log_name)?;
    Ok((server, url, token))
}

/// Waits until the gateway's `/health` lists `n` upstreams `up`: with fewer in rotation a two-upstream run would
/// measure one.
fn wait_upstreams_up(url: &str, n: usize, log: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        // 503 (none up yet) is an Err in ureq: only a 200 body is read.
        if let Ok(mut r) = ureq::get(&format!("{url}/health")).call() {
            let v: Value = r.body_mut().read_json()?;
            let up = v["upstreams"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|u| u["state"] == "up").count());
            if up == n {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!(
        "karte-server did not have {n} upstream(s) up within 120 s (see {})",
        target_dir().join(log).display()
    )
}

fn wait_healthy(url: &str, what: &str, log: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ureq::get(&format!("{url}/health"))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!(
        "{what} did not become healthy in 120 s (see {})",
        target_dir().join(log).display()
    )
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Where llama-server is built and cached, outside the clone so that every worktree and CI run shares it.
pub const LLAMA_SERVER_CACHE: &str = "/var/cache/karte/llama-server";

/// What the cached binary was built from: the crate's llama.cpp version, the sdist the server sources come from,
/// and the cmake flags. A binary whose stamp differs (Cargo.lock moved to a new llama-cpp-sys-2) is rebuilt.
fn llama_server_stamp() -> Result<String> {
    let tree = crate::bench::llama_cpp_sys_tree()?;
    Ok(format!(
        "llama.cpp={}\nserver-sources={}\nflags={}\n",
        tree.display(),
        crate::bench::SDIST,
        LLAMA_SERVER_FLAGS.join(" ")
    ))
}

/// Beyond `bench::cmake_build`'s shared defaults (CPU only, GGML_NATIVE=OFF): the server without its web UI.
const LLAMA_SERVER_FLAGS: [&str; 3] = [
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
];

/// Build llama-server once into [`LLAMA_SERVER_CACHE`]: skipped when the binary is there and its stamp matches the
/// sources and flags it would be built from now (`cargo xtask llama-server`; `cargo xtask test` runs it first so
/// that the upstream-mode tests run against a real llama-server).
pub fn build_llama_server() -> Result<PathBuf> {
    let cache = PathBuf::from(LLAMA_SERVER_CACHE);
    let bin = cache.join("build/bin/llama-server");
    let stamp_file = cache.join("karte-stamp.txt");
    let stamp = llama_server_stamp()?;
    if bin.exists() && fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(bin);
    }
    step("llama-server: building llama.cpp's llama-server from the crate's sources (once, ~15-25 minutes on 2 cores)");
    let _ = fs::remove_file(&stamp_file);
    let sdist = crate::bench::sdist_llama_cpp()?;
    let tree = cache.join("tree");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::create_dir_all(&cache)?;
    sh(Command::new("cp")
        .arg("-r")
        .arg(crate::bench::llama_cpp_sys_tree()?)
        .arg(&tree))?;
    for t in ["server", "ui", "mtmd"] {
        let dst = tree.join("tools").join(t);
        let _ = fs::remove_dir_all(&dst);
        sh(Command::new("cp")
            .arg("-r")
            .arg(sdist.join("tools").join(t))
            .arg(&dst))?;
    }
    // The sdist's server reads its MCP config with `fs_open_ifstream`, a helper the crate's (older) `common` lacks;
    // on Linux it is a plain ifstream. The only source change, and it is in a feature the bench does not use.
    let mcp = tree.join("tools/server/server-mcp.cpp");
    fs::write(
        &mcp,
        fs::read_to_string(&mcp)?.replace(
            "fs_open_ifstream(params.mcp_servers_config, std::ios::in)",
            "std::ifstream(params.mcp_servers_config, std::ios::in)",
        ),
    )?;
    fs::create_dir_all(tree.join("scripts"))?;
    fs::copy(
        sdist.join("scripts/ui-assets.cmake"),
        tree.join("scripts/ui-assets.cmake"),
    )?;
    // The web UI needs npm or a download: the server builds without it (API only), which is all a bench needs.
    fs::write(
        tree.join("tools/CMakeLists.txt"),
        "find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(mtmd)\n\
         add_subdirectory(ui)\nadd_subdirectory(server)\n",
    )?;
    crate::bench::cmake_build(
        &tree,
        &cache.join("build"),
        "llama-server",
        &LLAMA_SERVER_FLAGS,
    )?;
    fs::write(&stamp_file, stamp)?;
    Ok(bin)
}

// ---------------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------------

pub fn bench_serve(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let m = karte_models::resolve(Some(&o.model)).map_err(|e| anyhow!("{}", e.message))?;
    karte_models::verify(&m).map_err(|e| anyhow!("{}", e.message))?;
    if o.serial_reference && o.karte != Karte::Engine {
        bail!(
            "--reference engine-serial compares the engine with itself: use it with --karte engine"
        );
    }
    if o.karte == Karte::Gateway {
        return bench_gateway(&o, &m.path);
    }
    let built = |what: &str, args: &[&str], file: &str| -> Result<PathBuf> {
        step(&format!("bench-serve: building {what} ({})", o.profile));
        sh(cargo().args(["build", "--profile", &o.profile]).args(args))?;
        let dir = if o.profile == "dev" {
            "debug"
        } else {
            &o.profile
        };
        Ok(target_dir().join(dir).join(file))
    };
    let engine_bin = if o.karte == Karte::Engine {
        Some(built(
            "karte-engine's serve_load",
            &["-p", "karte-engine", "--example", "serve_load"],
            "examples/serve_load",
        )?)
    } else {
        None
    };
    let engine = |parallel| Side::Engine {
        bin: engine_bin.clone().expect("built above"),
        model: m.path.clone(),
        parallel,
    };
    // llama-server runs in every mode: its /tokenize sizes the shared instruction prefix.
    let llama_server = build_llama_server()?;
    let (_server, ref_url) = start_llama_server(&llama_server, &m.path, free_port()?)?;
    let (reference, ref_label) = if o.serial_reference {
        (engine(1), "engine one-at-a-time")
    } else {
        (Side::Http(ref_url.clone(), String::new()), "llama-server")
    };
    let mut _karte_server = None;
    let (karte, karte_label) = match &o.karte {
        Karte::Url(url) => (
            Side::Http(
                url.clone(),
                std::env::var("KARTE_BENCH_TOKEN").unwrap_or_default(),
            ),
            "karte-server",
        ),
        Karte::Engine => (engine(PARALLEL), "karte-engine"),
        Karte::Server => {
            let bin = built(
                "karte-server",
                &["-p", "karte-server", "--bin", "karte-server"],
                "karte-server",
            )?;
            let (server, url, token) = start_karte_server(&bin, &m.path, free_port()?)?;
            _karte_server = Some(server);
            (Side::Http(url, token), "karte-server")
        }
        Karte::Gateway => unreachable!("bench_gateway measured the gateway and returned above"),
    };
    let instructions = instructions(&ref_url, 1000)?;
    let n_instr = count_tokens(&ref_url, &instructions)?;

    // [concurrency] -> per round summaries for (reference, karte)
    let mut tp: Vec<(Vec<Summary>, Vec<Summary>)> = vec![Default::default(); CONCURRENCY.len()];
    // (ref off, ref on, karte off, karte on) per round: p50 TTFT over the warm requests
    let mut px: Vec<[f64; 4]> = Vec::new();
    for round in 0..o.rounds {
        for (i, &n) in CONCURRENCY.iter().enumerate() {
            round_step(&o, round, n);
            let sc = throughput_scenario(round, n, o.requests_per_client, o.max_tokens, None);
            // Alternate which side goes first so that a slow minute does not always land on the same one.
            let (r, k) = if round % 2 == 0 {
                let r = summarize(&reference.run(&sc, true)?);
                (r, summarize(&karte.run(&sc, true)?))
            } else {
                let k = summarize(&karte.run(&sc, true)?);
                (summarize(&reference.run(&sc, true)?), k)
            };
            eprintln!(
                "    {ref_label} {:.1} t/s TTFT p50 {:.0} p95 {:.0} ms | {karte_label} {:.1} t/s TTFT p50 {:.0} \
                 p95 {:.0} ms",
                r.tokens_per_s, r.p50_ttft, r.p95_ttft, k.tokens_per_s, k.p50_ttft, k.p95_ttft
            );
            tp[i].0.push(r);
            tp[i].1.push(k);
        }
        step(&format!(
            "bench-serve: round {}/{}: {n_instr}-token shared prefix, TTFT with the prompt cache off and on",
            round + 1,
            o.rounds
        ));
        let sc = prefix_scenario(&instructions, o.prefix_requests, 8);
        let warm = |v: Vec<Record>| {
            let mut t: Vec<f64> = v.iter().skip(1).map(|r| r.ttft_ms).collect();
            t.sort_by(f64::total_cmp);
            percentile(&t, 50.0)
        };
        let row = [
            warm(reference.run(&sc, false)?),
            warm(reference.run(&sc, true)?),
            warm(karte.run(&sc, false)?),
            warm(karte.run(&sc, true)?),
        ];
        eprintln!(
            "    {ref_label} off {:.0} on {:.0} ms | {karte_label} off {:.0} on {:.0} ms",
            row[0], row[1], row[2], row[3]
        );
        px.push(row);
    }

    let mut t = format!(
        "| clients | {ref_label} t/s | {karte_label} t/s | ratio | {ref_label} TTFT p50 / p95 (ms) | \
         {karte_label} TTFT p50 / p95 (ms) |\n|---:|---:|---:|---:|---:|---:|\n"
    );
    for (i, &n) in CONCURRENCY.iter().enumerate() {
        let avg = |v: &[Summary]| Summary {
            tokens_per_s: mean(&v.iter().map(|s| s.tokens_per_s).collect::<Vec<_>>()),
            p50_ttft: mean(&v.iter().map(|s| s.p50_ttft).collect::<Vec<_>>()),
            p95_ttft: mean(&v.iter().map(|s| s.p95_ttft).collect::<Vec<_>>()),
        };
        let (r, k) = (avg(&tp[i].0), avg(&tp[i].1));
        t.push_str(&format!(
            "| {n} | {:.1} | {:.1} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} |\n",
            r.tokens_per_s,
            k.tokens_per_s,
            k.tokens_per_s / r.tokens_per_s,
            r.p50_ttft,
            r.p95_ttft,
            k.p50_ttft,
            k.p95_ttft
        ));
    }
    let col = |j: usize| mean(&px.iter().map(|r| r[j]).collect::<Vec<_>>());
    let p = format!(
        "| server | TTFT p50 cache off (ms) | TTFT p50 cache on (ms) | speed-up |\n|---|---:|---:|---:|\n\
         | {ref_label} | {:.0} | {:.0} | {:.2}x |\n| {karte_label} | {:.0} | {:.0} | {:.2}x |\n",
        col(0),
        col(1),
        col(0) / col(1),
        col(2),
        col(3),
        col(2) / col(3)
    );
    println!(
        "\n### Serving: {karte_label} vs {ref_label} ({}, {THREADS} threads, {PARALLEL} slots, n_ctx {N_CTX}, \
         {} requests per client of up to {} tokens, mean of {} interleaved rounds)\n\n{t}\n\
         ### Time to first token with a {n_instr}-token shared instruction prefix (1 client, {} requests, \
         first one warms the cache and is not counted, mean of {} rounds)\n\n{p}",
        o.model,
        o.requests_per_client,
        o.max_tokens,
        o.rounds,
        o.prefix_requests,
        o.rounds
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// The gateway: karte-server in upstream mode
// ---------------------------------------------------------------------------------------------------------------

/// `--karte gateway`: the same llama-server measured directly and through karte-server in upstream mode, same
/// run, rounds interleaved; what karte-server costs in throughput and in time to first token (its HTTP hop, the
/// answer guard, re-encoding the stream). `--upstreams N`: karte-server over N llama-servers, each pinned to its own
/// core with one thread, against karte-server over the first of them alone: whether spreading requests over
/// upstreams scales when the upstreams are the bottleneck.
///
/// The shared-prefix scenario is not run here: it measures the engine's prompt cache, which the gateway neither
/// adds nor removes (and karte-server does not pass llama-server's `cache_prompt` on, so "off" cannot be asked
/// for through it).
fn bench_gateway(o: &Opts, model: &Path) -> Result<()> {
    step(&format!(
        "bench-serve: building karte-server ({})",
        o.profile
    ));
    sh(cargo().args(["build", "--profile", &o.profile]).args([
        "-p",
        "karte-server",
        "--bin",
        "karte-server",
    ]))?;
    let dir = if o.profile == "dev" {
        "debug"
    } else {
        &o.profile
    };
    let karte_bin = target_dir().join(dir).join("karte-server");
    let llama_server = build_llama_server()?;

    // Declared before the servers that hold them, dropped (killed) after them.
    let mut llamas = Vec::new();
    let mut gateways = Vec::new();
    let (a, a_label, b, b_label, heading) = if o.upstreams == 1 {
        let (ls, url) = start_llama_server(&llama_server, model, free_port()?)?;
        llamas.push(ls);
        let (gw, gw_url, token) = start_gateway(
            &karte_bin,
            std::slice::from_ref(&url),
            &o.guard,
            free_port()?,
            "1",
        )?;
        gateways.push(gw);
        (
            Side::Http(url, String::new()),
            "llama-server direct".to_string(),
            Side::Http(gw_url, token),
            "via karte-server".to_string(),
            format!(
                "karte-server (upstream mode, guard {}) in front of llama-server vs llama-server directly \
                 ({}, {THREADS} threads, {PARALLEL} slots, n_ctx {N_CTX}",
                o.guard, o.model
            ),
        )
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut urls = Vec::new();
        for i in 0..o.upstreams {
            let (ls, url) =
                start_llama_server_on(&llama_server, model, free_port()?, Some(i % cores))?;
            llamas.push(ls);
            urls.push(url);
        }
        let (gw1, url1, tok1) = start_gateway(&karte_bin, &urls[..1], &o.guard, free_port()?, "1")?;
        let (gwn, urln, tokn) = start_gateway(
            &karte_bin,
            &urls,
            &o.guard,
            free_port()?,
            &o.upstreams.to_string(),
        )?;
        gateways.extend([gw1, gwn]);
        (
            Side::Http(url1, tok1),
            "1 upstream".to_string(),
            Side::Http(urln, tokn),
            format!("{} upstreams", o.upstreams),
            format!(
                "karte-server (guard {}) over {} llama-servers vs over 1 ({}, each llama-server pinned to one \
                 core with `taskset -c i`, 1 thread, {PARALLEL} slots, n_ctx {N_CTX}; {cores} cores on this \
                 machine, shared by the gateway and the clients",
                o.guard, o.upstreams, o.model
            ),
        )
    };

    // A short request per upstream through each side first: the first decode after start allocates, and whichever
    // side ran first in round 1 would pay for it.
    for side in [&a, &b] {
        side.run(
            &throughput_scenario(9999, o.upstreams, 1, 8, Some(999)),
            true,
        )?;
    }

    // [concurrency] -> per round summaries for (a, b)
    let mut tp: Vec<(Vec<Summary>, Vec<Summary>)> = vec![Default::default(); CONCURRENCY.len()];
    for round in 0..o.rounds {
        for (i, &n) in CONCURRENCY.iter().enumerate() {
            round_step(o, round, n);
            let sc = |side: usize| {
                throughput_scenario(
                    round,
                    n,
                    o.requests_per_client,
                    o.max_tokens,
                    Some(round * 2 + side),
                )
            };
            // Alternate which side goes first so that a slow minute does not always land on the same one.
            let (ra, rb) = if round % 2 == 0 {
                let ra = summarize(&a.run(&sc(0), true)?);
                (ra, summarize(&b.run(&sc(1), true)?))
            } else {
                let rb = summarize(&b.run(&sc(1), true)?);
                (summarize(&a.run(&sc(0), true)?), rb)
            };
            eprintln!(
                "    {a_label} {:.1} t/s TTFT p50 {:.1} p95 {:.1} ms | {b_label} {:.1} t/s TTFT p50 {:.1} \
                 p95 {:.1} ms",
                ra.tokens_per_s, ra.p50_ttft, ra.p95_ttft, rb.tokens_per_s, rb.p50_ttft, rb.p95_ttft
            );
            tp[i].0.push(ra);
            tp[i].1.push(rb);
        }
    }
    println!(
        "\n### Serving: {heading}, {} requests per client of up to {} tokens, mean of {} interleaved rounds)\n\n{}",
        o.requests_per_client,
        o.max_tokens,
        o.rounds,
        gateway_table(&a_label, &b_label, &tp)
    );
    drop(gateways);
    drop(llamas);
    Ok(())
}

/// Throughput ratio (b / a) and the median time to first token that b adds, both averaged over rounds (the added
/// TTFT is the mean of each round's difference, so that a slow round shifts both sides alike).
fn gateway_table(a: &str, b: &str, tp: &[(Vec<Summary>, Vec<Summary>)]) -> String {
    let mut t = format!(
        "| clients | {a} t/s | {b} t/s | ratio ({b} / {a}) | {a} TTFT p50 (ms) | {b} TTFT p50 (ms) | added \
         TTFT p50 (ms) |\n|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (&n, (ra, rb)) in CONCURRENCY.iter().zip(tp) {
        let m = |v: &[Summary], f: fn(&Summary) -> f64| mean(&v.iter().map(f).collect::<Vec<_>>());
        let (ta, tb) = (m(ra, |s| s.tokens_per_s), m(rb, |s| s.tokens_per_s));
        let (fa, fb) = (m(ra, |s| s.p50_ttft), m(rb, |s| s.p50_ttft));
        let added = mean(
            &ra.iter()
                .zip(rb)
                .map(|(x, y)| y.p50_ttft - x.p50_ttft)
                .collect::<Vec<_>>(),
        );
        t.push_str(&format!(
            "| {n} | {ta:.1} | {tb:.1} | {:.2} | {fa:.1} | {fb:.1} | {added:+.1} |\n",
            tb / ta
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 10.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
    }

    #[test]
    fn throughput_counts_all_tokens_over_the_scenario_wall_time() {
        let r = |start_ms, end_ms, ttft_ms, tokens| Record {
            start_ms,
            end_ms,
            ttft_ms,
            tokens,
        };
        let s = summarize(&[r(0.0, 1000.0, 100.0, 50), r(500.0, 2000.0, 300.0, 50)]);
        assert!((s.tokens_per_s - 50.0).abs() < 1e-9);
        assert_eq!(s.p50_ttft, 100.0);
        assert_eq!(s.p95_ttft, 300.0);
    }

    #[test]
    fn several_upstreams_mean_the_gateway_and_nothing_else() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse(&args(&["--upstreams", "2"])).unwrap().karte == Karte::Gateway);
        assert!(parse(&args(&["--karte", "gateway"])).unwrap().upstreams == 1);
        assert!(parse(&args(&["--karte", "engine", "--upstreams", "2"])).is_err());
        assert!(parse(&args(&["--upstreams", "0"])).is_err());
        assert!(parse(&args(&["--karte", "gateway", "--guard", "sometimes"])).is_err());
    }

    #[test]
    fn gateway_table_gives_the_ratio_and_the_ttft_added_per_round() {
        let s = |tokens_per_s, p50_ttft| Summary {
            tokens_per_s,
            p50_ttft,
            p95_ttft: p50_ttft,
        };
        let row = (
            vec![s(100.0, 10.0), s(80.0, 30.0)],
            vec![s(90.0, 12.0), s(72.0, 34.0)],
        );
        let t = gateway_table("direct", "gateway", &[row.clone(), row.clone(), row]);
        // mean 90 vs 81 t/s: 0.90; TTFT 20 vs 23 ms, added (2 + 4) / 2 = 3 ms.
        assert!(
            t.contains("| 1 | 90.0 | 81.0 | 0.90 | 20.0 | 23.0 | +3.0 |"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 2 + CONCURRENCY.len());
    }
}

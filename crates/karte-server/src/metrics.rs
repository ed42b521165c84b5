//! Prometheus text exposition for `/metrics`: requests, queue depth, tokens/s, time to first token, errors.
//!
//! A handful of atomics and one small histogram, written out by hand in the text format (version 0.0.4): the format
//! is simple and stable, and a metrics framework would bring more code than it saves here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the time-to-first-token histogram: from a warm GPU to a busy CPU.
const TTFT_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The answer guard's verdicts: (category, action) → count.
    guard: Mutex<BTreeMap<(String, String), u64>>,
    /// Answers the guard judged to the end, by result (`passed`, `flagged`, `withheld`).
    guarded: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP chat requests accepted and not yet answered in full (waiting, generating or streaming).
    pub open_requests: AtomicU64,
    generated_tokens: AtomicU64,
    prompt_tokens: AtomicU64,
    /// Microseconds spent generating (after the first token), summed over requests.
    generate_us: AtomicU64,
    ttft: Mutex<Histogram>,
    /// Tokens/s of the last finished request, ×1000 (an atomic gauge without floats).
    last_tps_milli: AtomicU64,
    /// Connection counters, shared with the listener and the connection guard ([`crate::conn`]).
    pub conn: Arc<ConnCounters>,
}

/// What the connection layer counts: no addresses, no client data.
#[derive(Default)]
pub struct ConnCounters {
    /// Connections accepted and not yet closed.
    pub open: AtomicUsize,
    /// The cap on open connections (0 until the listener is set up).
    pub max: AtomicUsize,
    /// Times the cap was reached (once per burst, as the warning in the log).
    pub cap_reached: AtomicU64,
    /// Connections closed because a request head (or body) arrived too slowly.
    pub closed_header_timeout: AtomicU64,
    /// Connections closed because they carried no request for the idle timeout.
    pub closed_idle_timeout: AtomicU64,
    /// TLS handshakes that did not finish in time.
    pub closed_handshake_timeout: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; TTFT_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint.to_string(), status)).or_default() += 1;
        }
    }

    pub fn error(&self, code: &str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code.to_string()).or_default() += 1;
        }
    }

    /// One answer-guard verdict (`block`, `flag`, `removed`) in a policy category.
    pub fn guard_verdict(&self, category: &str, action: &str) {
        if let Ok(mut m) = self.guard.lock() {
            *m.entry((category.to_string(), action.to_string()))
                .or_default() += 1;
        }
    }

    /// One answer judged by the answer guard to its end (or to the sentence that stopped it).
    pub fn guarded_answer(&self, result: &'static str) {
        if let Ok(mut m) = self.guarded.lock() {
            *m.entry(result).or_default() += 1;
        }
    }

    pub fn first_token(&self, seconds: f64) {
        if let Ok(mut h) = self.ttft.lock() {
            for (i, b) in TTFT_BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    pub fn finished(&self, prompt_tokens: u32, generated_tokens: u32, generate_seconds: f64) {
        self.prompt_tokens
            .fetch_add(u64::from(prompt_tokens), Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(u64::from(generated_tokens), Ordering::Relaxed);
        self.generate_us
            .fetch_add((generate_seconds * 1e6) as u64, Ordering::Relaxed);
        if generate_seconds > 0.0 && generated_tokens > 0 {
            let tps = f64::from(generated_tokens) / generate_seconds;
            self.last_tps_milli
                .store((tps * 1000.0) as u64, Ordering::Relaxed);
        }
    }

    pub fn last_tokens_per_s(&self) -> f64 {
        self.last_tps_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn requests_total(&self) -> u64 {
        self.requests.lock().map_or(0, |m| m.values().sum())
    }

    /// `load` is the engine's own view (queue, sequences in flight, prefix cache), absent while the model loads.
    pub fn render(&self, ready: bool, load: Option<&karte_engine::LoadInfo>) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP karte_ready 1 when the model is loaded and requests are served."
        );
        let _ = writeln!(o, "# TYPE karte_ready gauge");
        let _ = writeln!(o, "karte_ready {}", u8::from(ready));
        let _ = writeln!(
            o,
            "# HELP karte_requests_total HTTP requests by endpoint and status."
        );
        let _ = writeln!(o, "# TYPE karte_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((ep, st), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "karte_requests_total{{endpoint=\"{ep}\",status=\"{st}\"}} {n}"
                );
            }
        }
        let _ = writeln!(o, "# HELP karte_errors_total Errors by Karte code.");
        let _ = writeln!(o, "# TYPE karte_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(o, "karte_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP karte_guard_verdicts_total Answer-guard verdicts by policy category and action."
        );
        let _ = writeln!(o, "# TYPE karte_guard_verdicts_total counter");
        if let Ok(m) = self.guard.lock() {
            for ((category, action), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "karte_guard_verdicts_total{{category=\"{category}\",action=\"{action}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP karte_guard_answers_total Answers judged by the answer guard, by result."
        );
        let _ = writeln!(o, "# TYPE karte_guard_answers_total counter");
        if let Ok(m) = self.guarded.lock() {
            for (result, n) in m.iter() {
                let _ = writeln!(o, "karte_guard_answers_total{{result=\"{result}\"}} {n}");
            }
        }
        let l = load.cloned().unwrap_or_default();
        let gauges = [
            (
                "karte_queue_depth",
                "Requests waiting in the engine's queue for a free sequence.",
                l.queued as f64,
            ),
            (
                "karte_in_flight",
                "Requests being decoded now (continuous batching).",
                l.active as f64,
            ),
            (
                "karte_open_requests",
                "Chat requests accepted over HTTP and not yet answered in full.",
                self.open_requests.load(Ordering::Relaxed) as f64,
            ),
            (
                "karte_tokens_per_second",
                "Generation speed of the last finished request.",
                self.last_tokens_per_s(),
            ),
            (
                "karte_speculation_lookup",
                "1 when the engine decodes greedy requests with prompt-lookup speculation, 0 when it does not.",
                f64::from(u8::from(
                    l.speculation == karte_engine::Speculation::Lookup,
                )),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} gauge");
            let _ = writeln!(o, "{name} {v}");
        }
        let c = &self.conn;
        let conn_gauges = [
            (
                "karte_connections_open",
                "TCP connections open now.",
                c.open.load(Ordering::Relaxed) as f64,
            ),
            (
                "karte_connections_max",
                "Cap on open connections (serve.max_connections, below the descriptor limit).",
                c.max.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, v) in conn_gauges {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} gauge");
            let _ = writeln!(o, "{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP karte_connection_cap_reached_total Times the connection cap was reached (new connections waited)."
        );
        let _ = writeln!(o, "# TYPE karte_connection_cap_reached_total counter");
        let _ = writeln!(
            o,
            "karte_connection_cap_reached_total {}",
            c.cap_reached.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP karte_connections_timed_out_total Connections closed by a timeout, by reason."
        );
        let _ = writeln!(o, "# TYPE karte_connections_timed_out_total counter");
        for (reason, n) in [
            ("header", &c.closed_header_timeout),
            ("idle", &c.closed_idle_timeout),
            ("handshake", &c.closed_handshake_timeout),
        ] {
            let _ = writeln!(
                o,
                "karte_connections_timed_out_total{{reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let engine_counters = [
            (
                "karte_rejected_total",
                "Requests refused because the engine's queue was full (HTTP 429).",
                l.rejected_total as f64,
            ),
            (
                "karte_prefix_cached_tokens_total",
                "Prompt tokens reused from the shared-prefix cache instead of decoded.",
                l.cached_tokens_total as f64,
            ),
            (
                "karte_draft_proposed_tokens_total",
                "Tokens guessed by prompt-lookup speculation and checked in a decode (0 while speculation is off).",
                l.draft_proposed_total as f64,
            ),
            (
                "karte_draft_accepted_tokens_total",
                "Guessed tokens greedy decoding agreed with and kept; accepted / proposed is the acceptance rate.",
                l.draft_accepted_total as f64,
            ),
        ];
        for (name, help, v) in engine_counters {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            let _ = writeln!(o, "{name} {v}");
        }
        let counters = [
            (
                "karte_generated_tokens_total",
                "Tokens generated.",
                self.generated_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "karte_prompt_tokens_total",
                "Prompt tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "karte_generate_seconds_total",
                "Time spent generating; generated_tokens_total / this = average tokens/s.",
                self.generate_us.load(Ordering::Relaxed) as f64 / 1e6,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            let _ = writeln!(o, "{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP karte_time_to_first_token_seconds From admission to the first generated token."
        );
        let _ = writeln!(o, "# TYPE karte_time_to_first_token_seconds histogram");
        if let Ok(h) = self.ttft.lock() {
            for (i, b) in TTFT_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "karte_time_to_first_token_seconds_bucket{{le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                o,
                "karte_time_to_first_token_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(o, "karte_time_to_first_token_seconds_sum {}", h.sum);
            let _ = writeln!(o, "karte_time_to_first_token_seconds_count {}", h.count);
        }
        o
    }
}

/// Upstream mode: each engine's counters, labelled `upstream="<base URL>"`.
pub fn render_upstreams(pool: &karte_llm::upstream::UpstreamPool) -> String {
    let mut o = String::new();
    let ups = pool.upstreams();
    type Read = fn(&karte_llm::upstream::Upstream) -> f64;
    let series: [(&str, &str, &str, Read); 8] = [
        (
            "karte_upstream_up",
            "gauge",
            "1 while the upstream is in rotation.",
            |u| f64::from(u8::from(u.healthy())),
        ),
        (
            "karte_upstream_in_flight",
            "gauge",
            "Requests in flight on the upstream.",
            |u| u.in_flight() as f64,
        ),
        (
            "karte_upstream_requests_total",
            "counter",
            "Requests sent to the upstream (retries included).",
            |u| u.stats.requests.load(Ordering::Relaxed) as f64,
        ),
        (
            "karte_upstream_errors_total",
            "counter",
            "Requests the upstream failed.",
            |u| u.stats.errors.load(Ordering::Relaxed) as f64,
        ),
        (
            "karte_upstream_answered_total",
            "counter",
            "Answers the upstream completed.",
            |u| u.stats.answered.load(Ordering::Relaxed) as f64,
        ),
        (
            "karte_upstream_generated_tokens_total",
            "counter",
            "Tokens the upstream generated.",
            |u| u.stats.generated_tokens.load(Ordering::Relaxed) as f64,
        ),
        (
            "karte_upstream_first_token_seconds_sum",
            "counter",
            "Time to first token, summed over answers.",
            |u| u.stats.ttft_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
        (
            "karte_upstream_answer_seconds_sum",
            "counter",
            "Whole-answer time, summed (tokens/s = tokens / this).",
            |u| u.stats.total_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, read) in series {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for u in ups {
            let _ = writeln!(o, "{name}{{upstream=\"{}\"}} {}", u.name, read(u));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.first_token(0.2);
        m.first_token(3.0);
        m.request("/v1/chat/completions", 200);
        m.error("server.unauthorized");
        let t = m.render(true, None);
        for line in [
            "karte_time_to_first_token_seconds_bucket{le=\"0.1\"} 0",
            "karte_time_to_first_token_seconds_bucket{le=\"0.25\"} 1",
            "karte_time_to_first_token_seconds_bucket{le=\"5\"} 2",
            "karte_time_to_first_token_seconds_count 2",
            "karte_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1",
            "karte_errors_total{code=\"server.unauthorized\"} 1",
            "karte_ready 1",
        ] {
            assert!(t.contains(line), "missing {line}\n{t}");
        }
    }
}

//! Runs every candidate through the same suites: open the candidate, then each item, each result cached as soon as
//! it is known. Candidates run one after another (a local model is loaded once, used for all its items, and
//! dropped before the next, so peak memory is per candidate).

use crate::cache::{self, Cache};
use crate::candidate::{CandidateInfo, CandidateSpec, Opener};
use crate::data::{self, SuiteData, SuiteId};
pub use crate::suites::Settings;
use crate::suites::{self, Measured};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use karte_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub candidates: Vec<CandidateSpec>,
    pub suites: Vec<SuiteId>,
    pub settings: Settings,
    /// Only the items marked `smoke` (the CI subset).
    pub smoke: bool,
    /// At most this many items per suite (after `smoke`), in file order.
    pub limit: Option<usize>,
    /// Read `DIR/<suite>.jsonl` instead of the bundled data.
    pub data_dir: Option<PathBuf>,
    /// Where the cache and the report go.
    pub out: PathBuf,
    /// The command line, recorded in the report so the run can be repeated.
    pub command: String,
    /// Threads the opener gives local models (`None`: every core), recorded in the report. On a busy machine 1 can
    /// be faster than 2 (OpenMP threads spin).
    pub threads: Option<i32>,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Measured(Measured),
    /// Could not be measured: the stable error code and its Japanese message. Counted in the report, never averaged.
    NotMeasured {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub candidate: String,
    pub suite: SuiteId,
    pub item: String,
    /// Taken from the cache rather than measured in this run.
    #[serde(default)]
    pub cached: bool,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataInfo {
    pub suite: SuiteId,
    pub version: String,
    pub source: String,
    pub items: usize,
    pub malformed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateRecord {
    pub spec: CandidateSpec,
    pub info: Option<CandidateInfo>,
    /// Why the candidate could not be opened (missing model, unreachable endpoint…).
    pub error: Option<Error>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub command: String,
    pub settings: Settings,
    pub smoke: bool,
    pub limit: Option<usize>,
    pub threads: Option<i32>,
    pub data_version: String,
    pub data: Vec<DataInfo>,
    pub candidates: Vec<CandidateRecord>,
    pub started_utc: String,
    pub duration_s: f64,
    pub measured_now: usize,
    pub from_cache: usize,
    pub karte_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub meta: RunMeta,
    pub results: Vec<ItemResult>,
}

fn select(mut d: SuiteData, smoke: bool, limit: Option<usize>) -> SuiteData {
    if smoke {
        d.items.retain(|i| i.smoke);
    }
    if let Some(n) = limit {
        d.items.truncate(n);
    }
    d
}

/// Run the comparison. Errors here are about the run itself (bad data folder, unwritable output); everything about
/// a candidate or an item ends up in the results.
pub fn run(cfg: &RunConfig, open: &Opener) -> Result<RunResult> {
    let t0 = Instant::now();
    let started_utc = crate::report::utc_now();
    let sets: Vec<SuiteData> = cfg
        .suites
        .iter()
        .map(|s| data::load(*s, cfg.data_dir.as_deref()).map(|d| select(d, cfg.smoke, cfg.limit)))
        .collect::<Result<_>>()?;
    let mut cache = Cache::open(&cfg.out)?;
    let per_candidate: usize = sets.iter().map(|d| d.items.len() + d.bad.len()).sum();
    let bar = if cfg.progress {
        ProgressBar::with_draw_target(
            Some((per_candidate * cfg.candidates.len()) as u64),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut results = Vec::new();
    let mut records = Vec::new();
    let (mut measured_now, mut from_cache) = (0, 0);
    for spec in &cfg.candidates {
        crate::memory::reset_peak();
        bar.set_message(format!("{}: 読み込み中", spec.name));
        let cand = open(spec);
        let (info, err) = match &cand {
            Ok(c) => (Some(c.info().clone()), None),
            Err(e) => {
                tracing::warn!(candidate = %spec.name, code = %e.code, "candidate unavailable");
                (None, Some(e.clone()))
            }
        };
        records.push(CandidateRecord {
            spec: spec.clone(),
            info,
            error: err,
        });
        for set in &sets {
            for bad in &set.bad {
                let (code, message) = suites::not_measured(&bad.error);
                results.push(ItemResult {
                    candidate: spec.name.clone(),
                    suite: set.suite,
                    item: bad.id.clone(),
                    cached: false,
                    outcome: Outcome::NotMeasured { code, message },
                });
                bar.inc(1);
            }
            for item in &set.items {
                bar.set_message(format!("{} {} {}", spec.name, set.suite.as_str(), item.id));
                let outcome = match &cand {
                    Err(e) => {
                        let (code, message) = suites::not_measured(e);
                        Outcome::NotMeasured { code, message }
                    }
                    Ok(c) => {
                        let key = cache::key(
                            &c.info().cache_identity(),
                            set.suite.as_str(),
                            &item.id,
                            &cfg.settings,
                            &set.version,
                        );
                        if let Some(m) = cache.get(&key) {
                            from_cache += 1;
                            results.push(ItemResult {
                                candidate: spec.name.clone(),
                                suite: set.suite,
                                item: item.id.clone(),
                                cached: true,
                                outcome: Outcome::Measured(m.clone()),
                            });
                            bar.inc(1);
                            continue;
                        }
                        let t = Instant::now();
                        match suites::measure(c.as_ref(), item, &cfg.settings) {
                            Ok(m) => {
                                tracing::info!(candidate = %spec.name, suite = set.suite.as_str(), item = %item.id, ms = t.elapsed().as_millis() as u64, "measured");
                                cache.put(&key, set.suite.as_str(), &item.id, &m)?;
                                measured_now += 1;
                                Outcome::Measured(m)
                            }
                            Err(e) => {
                                tracing::warn!(candidate = %spec.name, suite = set.suite.as_str(), item = %item.id, code = %e.code, "not measured");
                                let (code, message) = suites::not_measured(&e);
                                Outcome::NotMeasured { code, message }
                            }
                        }
                    }
                };
                results.push(ItemResult {
                    candidate: spec.name.clone(),
                    suite: set.suite,
                    item: item.id.clone(),
                    cached: false,
                    outcome,
                });
                bar.inc(1);
            }
        }
        drop(cand);
    }
    bar.finish_and_clear();
    Ok(RunResult {
        meta: RunMeta {
            command: cfg.command.clone(),
            settings: cfg.settings.clone(),
            smoke: cfg.smoke,
            limit: cfg.limit,
            threads: cfg.threads,
            data_version: data::declared_version().to_string(),
            data: sets
                .iter()
                .map(|d| DataInfo {
                    suite: d.suite,
                    version: d.version.clone(),
                    source: d.source.clone(),
                    items: d.items.len(),
                    malformed: d.bad.len(),
                })
                .collect(),
            candidates: records,
            started_utc,
            duration_s: t0.elapsed().as_secs_f64(),
            measured_now,
            from_cache,
            karte_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        results,
    })
}

/// Run, then write `results.json`, `report.md` and `report.html` into `cfg.out`.
pub fn run_and_report(cfg: &RunConfig, open: &Opener) -> Result<RunResult> {
    let r = run(cfg, open)?;
    crate::report::write(&r, &cfg.out)?;
    Ok(r)
}

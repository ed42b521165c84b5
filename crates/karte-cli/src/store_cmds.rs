//! The record-store commands: `admin`, `sign`, `edit`, `amend`, `history`, `review`, `audit`, `feedback`, and
//! `draft --save`. Argument parsing, sign-in prompts and rendering only: every decision (permissions, locking,
//! auditing) is karte-store's.
//!
//! Sign-in: `--user NAME`; the password from `KARTE_PASSWORD` or a prompt on the terminal; the TOTP code from
//! `KARTE_TOTP` or a prompt. Each command signs in afresh, and a TOTP code is good once, so scripts need a new
//! code per command (or wait for the next 30-second step).

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use karte_core::{Code, DraftOutput, Error, Result};
use karte_store::{ClinicalDate, Decision, EncounterView, Enrolment, Role, Session, Store};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The pseudonymiser applied to every free-text field of a feedback export: karte-guard's placeholders (【氏名1】).
/// The mapping is dropped: preference data for fine-tuning never needs the originals back.
fn feedback_pseudonymiser(text: &str) -> String {
    karte_guard::pseudonymise(text).text
}

#[derive(Args, Clone)]
pub struct SignIn {
    /// Who signs in (password: KARTE_PASSWORD or a prompt; TOTP code: KARTE_TOTP or a prompt).
    #[arg(long = "user", value_name = "NAME")]
    pub user: String,
}

/// `karte draft … --save --patient REF [--date YYYY-MM-DD] --user NAME`.
#[derive(Args, Clone, Default)]
pub struct SaveArgs {
    /// Store the draft as a new encounter (encrypted) and print its id.
    #[arg(long, requires_all = ["patient", "user"])]
    pub save: bool,
    /// The patient's reference (ID) the encounter belongs to.
    #[arg(long, value_name = "REF", requires = "save")]
    pub patient: Option<String>,
    /// Who saves it (a physician).
    #[arg(long, value_name = "NAME", requires = "save")]
    pub user: Option<String>,
    /// The clinical date, the day the note describes (診療日), as YYYY-MM-DD; today when not given. Fixed with
    /// the record: a note saved under the wrong day is saved again under the right one.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "save")]
    pub date: Option<String>,
}

#[derive(Subcommand)]
pub enum StoreCmd {
    /// Set up the first administrator and manage accounts.
    Admin {
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Sign the latest version of an encounter (physicians); a signed record changes only by amendment. Signing
    /// also queues the document for upload to the cloud platform.
    Sign(SignArgs),
    /// Add a new version to an unsigned encounter; the text comes from --file or stdin.
    Edit(EditArgs),
    /// Amend a signed encounter with a reason; the new text comes from --file or stdin.
    Amend(AmendArgs),
    /// Show every version of an encounter, its signatures and the test suggestions with their reviews.
    History(HistoryArgs),
    /// Accept or reject one of an encounter's test suggestions.
    Review(ReviewArgs),
    /// Verify or export the tamper-evident audit log (administrators).
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Export reviewed, signed records as JSONL preference data (physicians).
    Feedback {
        #[command(subcommand)]
        cmd: FeedbackCmd,
    },
    /// The upload queue to the cloud platform: status, flush, retry, resume, credentials, pseudonym-key.
    Queue {
        #[command(subcommand)]
        cmd: crate::sync_cmds::QueueCmd,
    },
    /// Export a signed record in an exchange format.
    Export {
        #[command(subcommand)]
        cmd: crate::sync_cmds::ExportCmd,
    },
}

#[derive(Args)]
pub struct SignArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    /// The version you read and mean to sign; refused (record.changed) if the record changed since. Without it,
    /// the latest version is signed.
    #[arg(long, value_name = "N")]
    version: Option<i64>,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Create the first administrator of this data directory (once). Prints the TOTP enrolment.
    Init {
        #[arg(long = "user", value_name = "NAME")]
        user: String,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Write a checked, encrypted copy of the whole store (administrators). Safe while the app is in use; only this
    /// workstation's keyring opens the copy. Refuses to overwrite a file.
    Backup {
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        auth: SignIn,
    },
    /// Put a backup back in place of this data directory's database, signing in as an administrator of the
    /// backup. Close the Karte app on this workstation first. The replaced file is kept beside it.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        auth: SignIn,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add an account (its password: KARTE_NEW_PASSWORD or a prompt). Prints the TOTP enrolment once.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        auth: SignIn,
    },
    /// List accounts with their role and state.
    List {
        #[command(flatten)]
        auth: SignIn,
    },
    /// Disable an account: it can no longer sign in.
    Disable {
        name: String,
        #[command(flatten)]
        auth: SignIn,
    },
    /// Lift a lock-out after repeated failed sign-ins.
    Unlock {
        name: String,
        #[command(flatten)]
        auth: SignIn,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Physician,
    Nurse,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Physician => Role::Physician,
            RoleArg::Nurse => Role::Nurse,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Args)]
pub struct EncounterArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Args)]
pub struct EditArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    /// The new text (default: stdin).
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Args)]
pub struct AmendArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    /// Why the signed note is amended (kept with the new version).
    #[arg(long)]
    reason: String,
    /// The amended text (default: stdin).
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ViewFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    #[arg(long, value_enum, default_value = "text")]
    format: ViewFormat,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["accept", "reject"])))]
pub struct ReviewArgs {
    #[arg(value_name = "ENCOUNTER_ID")]
    encounter: String,
    /// The suggestion's number, as `karte history` lists it.
    #[arg(long, value_name = "ID")]
    suggestion: i64,
    #[arg(long)]
    accept: bool,
    #[arg(long)]
    reject: bool,
    /// Why (required when rejecting).
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    auth: SignIn,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Ndjson,
    Csv,
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; exit 0 when intact, 1 naming the first bad entry.
    Verify {
        #[command(flatten)]
        auth: SignIn,
    },
    /// Write every entry for auditors.
    Export {
        #[arg(long, value_enum, default_value = "ndjson")]
        format: AuditFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        auth: SignIn,
    },
}

#[derive(Subcommand)]
pub enum FeedbackCmd {
    /// Signed records with their draft, final text and suggestion reviews, pseudonymised, one JSON per line.
    Export {
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        auth: SignIn,
    },
}

pub fn run(cmd: StoreCmd) -> Result<()> {
    // Restore works when the live database cannot be opened at all: it never opens it.
    if let StoreCmd::Admin {
        cmd: AdminCmd::Restore { file, auth },
    } = cmd
    {
        return restore(&file, &auth);
    }
    let store = Store::open_default()?;
    match cmd {
        StoreCmd::Admin { cmd } => admin(&store, cmd),
        StoreCmd::Sign(a) => {
            let s = sign_in(&store, &a.auth)?;
            let expected = match a.version {
                Some(v) => v,
                None => store.history(&s, &a.encounter)?.latest().version,
            };
            let v = store.sign(&s, &a.encounter, expected)?;
            out(&format!("署名しました: {} 版 {v}", a.encounter))
        }
        StoreCmd::Edit(a) => {
            let s = sign_in(&store, &a.auth)?;
            let text = crate::read_input(a.file)?;
            let v = store.edit(&s, &a.encounter, &text)?;
            out(&format!("編集を保存しました: {} 版 {v}", a.encounter))
        }
        StoreCmd::Amend(a) => {
            let s = sign_in(&store, &a.auth)?;
            let text = crate::read_input(a.file)?;
            let v = store.amend(&s, &a.encounter, &text, &a.reason)?;
            out(&format!("修正を保存し署名しました: {} 版 {v}", a.encounter))
        }
        StoreCmd::History(a) => {
            let s = sign_in(&store, &a.auth)?;
            let h = store.history(&s, &a.encounter)?;
            match a.format {
                ViewFormat::Json => {
                    out(&serde_json::to_string_pretty(&h).expect("history serialises"))
                }
                ViewFormat::Text => out(&render_history(&h)),
            }
        }
        StoreCmd::Review(a) => {
            let s = sign_in(&store, &a.auth)?;
            let decision = if a.accept {
                Decision::Accept
            } else {
                Decision::Reject
            };
            store.review(&s, &a.encounter, a.suggestion, decision, &a.comment)?;
            let label = if a.accept { "採用" } else { "却下" };
            out(&format!(
                "検査提案 {} を{label}しました: {}",
                a.suggestion, a.encounter
            ))
        }
        StoreCmd::Audit { cmd } => audit(&store, cmd),
        StoreCmd::Queue { cmd } => crate::sync_cmds::queue(store, cmd),
        StoreCmd::Export { cmd } => crate::sync_cmds::export(store, cmd),
        StoreCmd::Feedback {
            cmd: FeedbackCmd::Export { output, auth },
        } => {
            let s = sign_in(&store, &auth)?;
            let records = store.export_feedback(&s, Some(&feedback_pseudonymiser))?;
            write_output(output, &karte_store::feedback::to_jsonl(&records))?;
            eprintln!("… {} 件を書き出しました", records.len());
            Ok(())
        }
    }
}

fn admin(store: &Store, cmd: AdminCmd) -> Result<()> {
    match cmd {
        AdminCmd::Init { user } => {
            let password = new_password()?;
            let e = store.init_admin(&user, &password)?;
            print_enrolment(&e)
        }
        AdminCmd::User { cmd } => match cmd {
            UserCmd::Add { name, role, auth } => {
                let s = sign_in(store, &auth)?;
                let password = new_password()?;
                let e = store.add_user(&s, &name, role.into(), &password)?;
                print_enrolment(&e)
            }
            UserCmd::List { auth } => {
                let s = sign_in(store, &auth)?;
                let mut text = String::new();
                for u in store.list_users(&s)? {
                    let state = match (u.disabled, u.locked) {
                        (true, _) => "無効",
                        (false, true) => "ロック中",
                        _ => "有効",
                    };
                    text.push_str(&format!(
                        "{}\t{}\t{}\t{state}\t{}\n",
                        u.name,
                        u.role,
                        u.role.label_ja(),
                        u.created_at
                    ));
                }
                out(text.trim_end())
            }
            UserCmd::Disable { name, auth } => {
                let s = sign_in(store, &auth)?;
                store.disable_user(&s, &name)?;
                out(&format!("無効にしました: {name}"))
            }
            UserCmd::Unlock { name, auth } => {
                let s = sign_in(store, &auth)?;
                store.unlock_user(&s, &name)?;
                out(&format!("ロックを解除しました: {name}"))
            }
        },
        AdminCmd::Backup { to, auth } => {
            let s = sign_in(store, &auth)?;
            let r = store.backup(&s, &to)?;
            out(&format!(
                "バックアップを書き出して検査しました: {}（{} バイト、記録の版 {} 件、監査ログ #{}{}まで）",
                to.display(),
                r.bytes,
                r.contents.versions,
                r.contents.last_audit_seq,
                at(&r.contents.last_audit_at)
            ))
        }
        // `run` sends restore here only if it stops dispatching it before opening the store; still correct then.
        AdminCmd::Restore { file, auth } => restore(&file, &auth),
    }
}

fn at(time: &Option<String>) -> String {
    time.as_deref()
        .map(|t| format!("（{t}）"))
        .unwrap_or_default()
}

fn restore(file: &std::path::Path, who: &SignIn) -> Result<()> {
    let (password, code) = credentials()?;
    let r = Store::restore(
        &karte_store::default_data_dir()?,
        karte_store::StoreConfig::from_env()?,
        file,
        &who.user,
        &password,
        &code,
    )?;
    let mut text = format!(
        "復元しました。このバックアップは監査ログ #{}{}までの記録です（記録の版 {} 件）。",
        r.contents.last_audit_seq,
        at(&r.contents.last_audit_at),
        r.contents.versions
    );
    if let Some(n) = r.lost_audit_entries.filter(|n| *n > 0) {
        text.push_str(&format!(
            "\nそれ以降の操作 {n} 件はこのバックアップにありません（復元したことは監査ログに記録しました）。"
        ));
    }
    if let Some(p) = &r.replaced {
        text.push_str(&format!(
            "\n置き換えた元のファイルは {} に残しています。",
            p.display()
        ));
    }
    out(&text)
}

fn audit(store: &Store, cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Verify { auth } => {
            let s = sign_in(store, &auth)?;
            let r = store.verify_audit(&s)?;
            match r.first_bad {
                None => out(&format!(
                    "監査ログは改ざんされていません（{} 件、キーリングの最新項目 #{} と一致）",
                    r.entries,
                    r.head_seq.unwrap_or(0)
                )),
                Some(bad) => Err(Error::new(
                    Code::AuditTampered,
                    format!(
                        "監査ログの改ざんを検出しました: 最初の不正な項目は #{}（{}）。全 {} 件。システム管理者と監査担当者に報告してください。",
                        bad.seq,
                        bad.problem.label_ja(),
                        r.entries
                    ),
                )),
            }
        }
        AuditCmd::Export {
            format,
            output,
            auth,
        } => {
            let s = sign_in(store, &auth)?;
            let entries = store.audit_entries(&s)?;
            let text = match format {
                AuditFormat::Ndjson => karte_store::audit::to_ndjson(&entries),
                AuditFormat::Csv => karte_store::audit::to_csv(&entries),
            };
            write_output(output, &text)
        }
    }
}

/// Signs in before anything else is read or drafted: a wrong password must not cost a model run.
pub struct Saver {
    store: Store,
    session: Session,
    patient: String,
    date: Option<ClinicalDate>,
}

impl Saver {
    /// A date that cannot be saved is refused here, before the sign-in and the model run it would waste (the
    /// store checks it again when it saves).
    pub fn sign_in(args: &SaveArgs) -> Result<Option<Saver>> {
        let (true, Some(patient), Some(user)) = (args.save, &args.patient, &args.user) else {
            return Ok(None);
        };
        let date = args
            .date
            .as_deref()
            .map(|d| ClinicalDate::parse(d)?.not_after(karte_store::today()))
            .transpose()?;
        let store = Store::open_default()?;
        let session = sign_in(&store, &SignIn { user: user.clone() })?;
        Ok(Some(Saver {
            store,
            session,
            patient: patient.clone(),
            date,
        }))
    }

    /// Drafts inside the signed-in session (permission-checked and audited).
    pub fn draft(
        &self,
        kind: &str,
        draft: impl FnOnce() -> Result<DraftOutput>,
    ) -> Result<DraftOutput> {
        self.store.draft_with(&self.session, kind, draft)
    }

    pub fn save(&self, dictation: &str, draft: &DraftOutput) -> Result<String> {
        self.store
            .save_draft(&self.session, &self.patient, self.date, dictation, draft)
    }
}

/// The draft's JSON with `encounter_id` added when it was saved.
pub fn draft_json(d: &DraftOutput, saved: Option<&str>) -> String {
    let mut v = serde_json::to_value(d).expect("draft serialises");
    if let (Some(id), Some(obj)) = (saved, v.as_object_mut()) {
        obj.insert("encounter_id".into(), id.into());
    }
    serde_json::to_string_pretty(&v).expect("draft serialises")
}

/// The line that ends text output of a saved draft: the id last, for scripts (`awk '{print $NF}'`).
pub fn saved_line(saved: Option<&str>) -> String {
    saved
        .map(|id| format!("\n保存しました。診療記録 ID: {id}"))
        .unwrap_or_default()
}

pub(crate) fn sign_in(store: &Store, who: &SignIn) -> Result<Session> {
    let (password, code) = credentials()?;
    store.login(&who.user, &password, &code)
}

/// The password and TOTP code of the one signing in: from the environment, or asked on the terminal.
fn credentials() -> Result<(Zeroizing<String>, Zeroizing<String>)> {
    let password = from_env_or_prompt("KARTE_PASSWORD", "パスワード: ").ok_or_else(|| {
        Error::new(
            Code::AuthFailed,
            "パスワードを入力できません（端末がありません）。KARTE_PASSWORD を設定してください。",
        )
    })?;
    let code = from_env_or_prompt("KARTE_TOTP", "確認コード（6桁）: ").ok_or_else(|| {
        Error::new(
            Code::AuthTotpRequired,
            "確認コードを入力できません（端末がありません）。KARTE_TOTP に認証アプリの6桁のコードを設定してください。",
        )
    })?;
    Ok((password, code))
}

fn from_env_or_prompt(var: &str, prompt: &str) -> Option<Zeroizing<String>> {
    if let Ok(v) = std::env::var(var) {
        return Some(Zeroizing::new(v));
    }
    prompt_secret(prompt).map(Zeroizing::new)
}

/// Asks on the terminal, but only when a person can see the question: with stderr redirected (scripts, CI, tests)
/// a prompt on /dev/tty would wait forever for an answer nobody knows is wanted.
fn prompt_secret(prompt: &str) -> Option<String> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    rpassword::prompt_password(prompt).ok()
}

fn new_password() -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("KARTE_NEW_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    let no_tty = || {
        Error::new(
            Code::UserInvalid,
            "新しいパスワードを入力できません（端末がありません）。KARTE_NEW_PASSWORD を設定してください。",
        )
    };
    let first = prompt_secret("新しい利用者のパスワード: ").ok_or_else(no_tty)?;
    let again = prompt_secret("もう一度: ").ok_or_else(no_tty)?;
    if first != again {
        return Err(Error::new(
            Code::UserInvalid,
            "2回入力したパスワードが一致しません。",
        ));
    }
    Ok(Zeroizing::new(first))
}

fn print_enrolment(e: &Enrolment) -> Result<()> {
    out(&format!(
        "利用者 {}（{}）を登録しました。\n\
         認証アプリ（Google Authenticator など）に次の秘密鍵を登録してください。この表示は一度きりです。\n\
         TOTP 秘密鍵: {}\n{}",
        e.user,
        e.role.label_ja(),
        e.totp_secret_base32,
        e.otpauth_uri
    ))
}

pub(crate) fn out(text: &str) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
}

fn write_output(path: Option<PathBuf>, text: &str) -> Result<()> {
    match path {
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}"))),
        // Audit and feedback exports name staff and carry (pseudonymised) clinical text.
        Some(p) => crate::write_private(&p, text.as_bytes()).map_err(|e| {
            Error::new(
                Code::Internal,
                format!("{} に書き込めません: {e}", p.display()),
            )
        }),
    }
}

fn render_history(h: &EncounterView) -> String {
    let mut s = format!(
        "診療記録 {}（患者 {}）診療日: {}　作成: {} {}　状態: {}\n",
        h.id,
        h.patient_ref,
        h.clinical_date,
        h.created_by,
        h.created_at,
        if h.signed {
            "署名済み"
        } else {
            "未署名"
        }
    );
    for v in &h.versions {
        s.push_str(&format!(
            "\n版 {}（{}）{} {}",
            v.version,
            v.kind.label_ja(),
            v.author,
            v.created_at
        ));
        if let Some(sig) = &v.signature {
            s.push_str(&format!("　署名: {} {}", sig.signer, sig.signed_at));
        }
        s.push('\n');
        if let Some(r) = &v.reason {
            s.push_str(&format!("  修正理由: {r}\n"));
        }
        for line in v.text.lines() {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s.push_str("\n検査提案\n");
    if h.suggestions.is_empty() {
        s.push_str("  （なし）\n");
    }
    for g in &h.suggestions {
        let review = match &g.review {
            None => "未レビュー".to_string(),
            Some(r) => format!(
                "{}（{} {}）{}",
                if r.decision == Decision::Accept {
                    "採用"
                } else {
                    "却下"
                },
                r.reviewer,
                r.reviewed_at,
                if r.comment.is_empty() {
                    String::new()
                } else {
                    format!("「{}」", r.comment)
                }
            ),
        };
        s.push_str(&format!(
            "  [{}] {} — {}（{}）: {review}\n",
            g.id, g.test, g.reason, g.rule
        ));
    }
    s.trim_end().to_string()
}

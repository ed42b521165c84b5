//! `karte document draft`: a 退院時サマリー or 診療情報提供書 from a patient's signed notes.
//!
//! The command only gathers: it checks what was typed, signs in, and calls `Store::draft_document` (the signed
//! notes, audited, composed by karte-core), `Drafter::document` (the model's phrasing, checked against the notes)
//! and `Store::save_document`, as the window does.

use crate::store_cmds::{self, SignIn};
use crate::Format;
use clap::{Args, Subcommand};
use karte_api::DraftOptions;
use karte_core::compose::{self, View};
use karte_core::{ClinicalDate, Code, Error, Result};
use karte_store::{DocumentDraft, DocumentRequest, Store};
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Subcommand)]
pub enum DocumentCmd {
    /// Draft a document made from signed notes and print it (saved as an unsigned record with --save).
    Draft(DraftArgs),
}

#[derive(Args)]
pub struct DraftArgs {
    /// discharge-summary (退院時サマリー) or referral (診療情報提供書).
    #[arg(long)]
    kind: String,
    /// The patient's reference (ID).
    #[arg(long, value_name = "REF")]
    patient: String,
    /// Who drafts it (a physician).
    #[arg(long, value_name = "NAME")]
    user: String,
    /// 入院日 (discharge summary): the first day whose notes count.
    #[arg(long, value_name = "YYYY-MM-DD")]
    admitted: Option<String>,
    /// 退院日 (discharge summary): the last day whose notes count, and the saved document's date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    discharged: Option<String>,
    /// The first day whose notes count (referral; default: the patient's first note).
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: Option<String>,
    /// The last day whose notes count (referral; default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: Option<String>,
    /// 紹介目的 (referral).
    #[arg(long)]
    purpose: Option<String>,
    /// 紹介先医療機関 (referral).
    #[arg(long, value_name = "NAME")]
    to_facility: Option<String>,
    /// 紹介先診療科 (referral).
    #[arg(long, value_name = "NAME")]
    to_department: Option<String>,
    /// Store the draft as a new record of the patient (unsigned) and print its id last.
    #[arg(long)]
    save: bool,
    /// Rules only: the signed notes' own sentences, placed in the sections, without the model's wording.
    #[arg(long)]
    no_llm: bool,
    /// A manifest model name or a GGUF file (default: the settings file's model, else the manifest's default).
    #[arg(long)]
    model: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

impl DocumentCmd {
    /// Errors print as JSON too when the output is JSON.
    pub fn json(&self) -> bool {
        match self {
            DocumentCmd::Draft(a) => a.format == Format::Json,
        }
    }
}

pub fn run(cmd: DocumentCmd) -> Result<()> {
    match cmd {
        DocumentCmd::Draft(a) => draft(a),
    }
}

fn date(flag: &str, v: &Option<String>) -> Result<Option<ClinicalDate>> {
    v.as_deref()
        .map(|s| {
            ClinicalDate::parse(s)
                .map_err(|e| Error::new(e.code, format!("--{flag}: {}", e.message)))
        })
        .transpose()
}

fn draft(a: DraftArgs) -> Result<()> {
    let kind = karte_core::document::kind(&a.kind)?;
    // What was typed is the kind's inputs, by name; a flag the kind has no input for is refused by the check.
    let inputs: BTreeMap<String, String> = [
        ("admitted", &a.admitted),
        ("discharged", &a.discharged),
        ("purpose", &a.purpose),
        ("to_facility", &a.to_facility),
        ("to_department", &a.to_department),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.trim().to_string())))
    .collect();
    let req = DocumentRequest {
        kind: kind.id.clone(),
        patient: a.patient.clone(),
        inputs,
        from: date("from", &a.from)?,
        to: date("to", &a.to)?,
    };
    // Checked before anyone is asked for a password: a missing input or a reversed or future range is a typing
    // error. The store checks the same again.
    compose::check_inputs(kind, &req.inputs)?;
    compose::notes_range(kind, &req.inputs, req.from, req.to, karte_store::today())?;

    let drafter = crate::command_drafter(a.model, a.no_llm)?;
    let store = Store::open_default()?;
    let session = store_cmds::sign_in(&store, &SignIn { user: a.user })?;
    let opts = DraftOptions {
        no_llm: a.no_llm,
        kind: Some(kind.id.clone()),
    };
    let DocumentDraft {
        draft: out, date, ..
    } = drafter.document(
        store.draft_document(&session, &req)?,
        &opts,
        &mut crate::progress_printer(),
    )?;
    let saved = if a.save {
        Some(store.save_document(&session, &a.patient, date, &out)?)
    } else {
        None
    };

    let text = match a.format {
        Format::Json => {
            let mut v = serde_json::to_value(View::of(&out)).expect("view serialises");
            if let (Some(id), Some(obj)) = (&saved, v.as_object_mut()) {
                obj.insert("encounter_id".into(), id.clone().into());
            }
            serde_json::to_string_pretty(&v).expect("view serialises")
        }
        Format::Text => {
            let mut t = out.document().render();
            for f in &out.flags {
                t.push_str(&format!("\n注意 [{}]: {}", f.code, f.message));
            }
            t + &store_cmds::saved_line(saved.as_deref())
        }
    };
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| Error::new(Code::Internal, format!("出力できません: {e}")))
}

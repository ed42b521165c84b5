//! Document kinds as data (`assets/documents/*.toml`), the sections of one document, and the one place that turns
//! sections into the text a physician reads and signs (and back).
//!
//! Nothing outside this module knows which sections a document has: the pipeline classifies a clause into a
//! [`Role`] (what kind of statement it is) and the kind says which section takes that role; the prompt, the
//! schema, the stored version, the FHIR Composition and the window all iterate over the kind's sections. A new
//! kind whose sections reuse the existing roles is a new file under `assets/documents` and its tests.

use crate::error::{Code, Error, Result};
use crate::types::{Sentence, Span};
use regex::Regex;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, OnceLock};

/// The kind every record had before kinds existed, and the default of `karte draft`.
pub const DEFAULT_KIND: &str = "progress-note";

/// What kind of statement a clause of the dictation is. Found from cue words and the facts a clause carries;
/// independent of any document, which maps roles to its own sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// What the patient reports, the history, the drugs taken so far.
    Reported,
    /// Vitals, laboratory values, examination and imaging findings.
    Observed,
    /// A diagnosis or judgement made now.
    Assessed,
    /// What will be done: tests, treatment, disposition.
    Planned,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Reported,
        Role::Observed,
        Role::Assessed,
        Role::Planned,
    ];
}

/// A FHIR coding, as the kind file gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    pub system: String,
    pub code: String,
    pub display: String,
}

/// One section of a document kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    /// Stable key: in the draft JSON, the model's schema and the stored document.
    pub id: String,
    /// Japanese heading in the window, the text output and the signed note.
    pub heading: String,
    /// Short tag of the section's items in the model's prompt (`S`).
    pub label: String,
    /// How the system prompt names the section (`S: 主観的情報`).
    pub prompt_name: String,
    /// What the model is asked to write there.
    pub instruction: String,
    /// The clause roles this section takes.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Words (主訴) and single capital letters (S) a physician dictates to open this section explicitly.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Labels that place only the rest of their line here (「PE:」「CXR:」「CC:」): results and complaints written
    /// one line per label, where a sticky header would carry the next line's assessment into this section.
    #[serde(default)]
    pub line_headers: Vec<String>,
    /// A signed document must have something here.
    #[serde(default)]
    pub required: bool,
    /// Accepted test suggestions are referenced from this section in FHIR.
    #[serde(default)]
    pub orders: bool,
    pub code: Coding,
    /// A kind drafted from notes: what fills this section, in order (see `assets/documents/discharge-summary.toml`).
    #[serde(default)]
    pub from: Vec<Pick>,
    /// Outside the kind's FHIR container section: the eReferral's 紹介先情報 is a section of the Composition
    /// itself, not of 構造情報.
    #[serde(default)]
    pub top: bool,
    /// What the section's FHIR entries reference, where the kind's profile requires entries (入院中経過 1..*).
    #[serde(default)]
    pub entry: Option<SectionEntry>,
}

/// The resources a section's FHIR entries reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionEntry {
    /// The stay (入院時詳細, 退院時詳細): one Encounter with the event period.
    Encounter,
    /// One Condition per sentence (退院時診断).
    Conditions,
    /// The section's text as a DocumentReference (入院中経過).
    Narrative,
    /// The receiving facility and its department (紹介先情報).
    Recipient,
}

/// How a kind is laid out as a FHIR document where a national profile (JP-CLINS) asks for more than titled
/// narrative sections. Read by karte-sync; the progress note has none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirLayout {
    pub bundle_profile: String,
    /// Composition.category (文書サブ区分).
    pub category: Coding,
    /// The container section most sections sit in (構造情報, 300); its title is the display without 「セクション」.
    pub structured: Coding,
    /// A section the profile requires and the physician does not write, filled with the author and their facility
    /// (紹介元情報).
    #[serde(default)]
    pub author_section: Option<Coding>,
    pub event: EventSpec,
    /// Section narrative status the profile fixes (`additional`).
    pub narrative_status: String,
    pub profiles: FhirProfiles,
    /// Encounter.class of the stay, where a section references the Encounter.
    #[serde(default)]
    pub encounter_class: Option<Coding>,
    /// The inputs that name the receiving facility and department, where a section references the recipient.
    #[serde(default)]
    pub recipient: Option<RecipientSpec>,
}

/// Composition.event: its period from the kind's inputs, or the signing day where `start` names none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub start: Option<String>,
    pub end: Option<String>,
    /// event.code.text (「診療情報提供書発行」), where the profile fixes it.
    pub text: Option<String>,
}

/// Profiles the Bundle's resources claim (meta.profile).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirProfiles {
    pub patient: String,
    pub practitioner: String,
    pub organization: String,
    pub encounter: Option<String>,
    pub condition: Option<String>,
    pub document_reference: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientSpec {
    /// Input with the facility's name.
    pub name: String,
    /// Input with the department (optional input).
    pub department: Option<String>,
}

/// Where a kind's text comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// One dictation, split into clauses that land in sections by role (the progress note).
    #[default]
    Dictation,
    /// A patient's signed notes, picked sentence by sentence (退院時サマリー, 診療情報提供書).
    Notes,
}

/// A field the physician types for a kind drafted from notes (入院日, 紹介目的): itself a source sentences cite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    /// Japanese label in the window and in errors.
    pub label: String,
    #[serde(default = "yes")]
    pub required: bool,
    /// A calendar day (`YYYY-MM-DD`): checked as one, and a date field in the window.
    #[serde(default)]
    pub date: bool,
}

/// Which date inputs bound the notes a kind reads (入院日–退院日); without one, the caller's range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub from: String,
    pub to: String,
}

fn yes() -> bool {
    true
}

/// Which of the source notes (in date order) a pick reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// The earliest: the admission note.
    First,
    /// The latest: the discharge-day note.
    Last,
    /// Every note but the first and the last.
    Middle,
    All,
}

/// One rule that fills a section of a kind drafted from notes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    pub notes: Option<Which>,
    /// The role of the note section a sentence stands in; any when empty.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The sentence carries one of these facts.
    #[serde(default)]
    pub facts: Vec<crate::types::FactKind>,
    /// The sentence carries none of these facts.
    #[serde(default)]
    pub without_facts: Vec<crate::types::FactKind>,
    /// The sentence contains one of these words.
    #[serde(default)]
    pub words: Vec<String>,
    /// Per note: at most this many of the matching sentences, after skipping `skip`.
    pub take: Option<usize>,
    #[serde(default)]
    pub skip: usize,
    /// Each sentence opens with its note's date.
    #[serde(default)]
    pub dated: bool,
    /// Takes sentences another section took, and takes none away from the others.
    #[serde(default)]
    pub shared: bool,
    /// A typed input instead of notes, written as `template` with `{}` for the value.
    pub input: Option<String>,
    pub template: Option<String>,
}

impl Pick {
    /// Picks that name what they want choose before the generic ones, so 既往歴 gets the 既往 sentence before
    /// 現病歴 takes every reported sentence.
    pub fn is_specific(&self) -> bool {
        !self.words.is_empty() || !self.facts.is_empty() || self.input.is_some()
    }
}

/// A document kind, loaded from `assets/documents/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentKind {
    pub id: String,
    pub title: String,
    pub fhir_title: String,
    pub fhir_title_amended: String,
    /// Composition.meta.profile, where a profile (JP-CLINS) exists for the kind.
    #[serde(default)]
    pub profile: Option<String>,
    pub prompt_style: String,
    pub prompt_task: String,
    pub composition: Coding,
    #[serde(default)]
    pub sources: SourceKind,
    /// What the physician types for a kind drafted from notes.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// The national document profile's layout, where there is one.
    #[serde(default)]
    pub fhir: Option<FhirLayout>,
    /// The date inputs that bound the notes read.
    #[serde(default)]
    pub range: Option<RangeSpec>,
    /// The longest gap, in days, between two notes of one episode (a stay, a course of visits): the window
    /// prefills the dates with the patient's latest episode (`compose::prefill_range`). Absent: every note.
    #[serde(default)]
    pub episode_gap_days: Option<u16>,
    pub sections: Vec<SectionSpec>,
    #[serde(skip)]
    headers: OnceLock<(Regex, HashMap<String, usize>)>,
    #[serde(skip)]
    line_headers: OnceLock<Option<(Regex, HashMap<String, usize>)>>,
}

/// The system prompt's frame; the kind fills in its style and its sections.
const SYSTEM_TEMPLATE: &str = include_str!("../../../assets/prompts/draft_system.txt");

// `DOCUMENT_FILES`: every `assets/documents/*.toml`, embedded by the build script.
include!(concat!(env!("OUT_DIR"), "/documents.rs"));

static KINDS: LazyLock<Vec<DocumentKind>> = LazyLock::new(|| {
    DOCUMENT_FILES
        .iter()
        .map(|(file, text)| DocumentKind::parse(text).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
});

/// Every embedded document kind, in file-name order.
pub fn kinds() -> &'static [DocumentKind] {
    &KINDS
}

/// The kind with this id, or `input.invalid` naming the kinds there are.
pub fn kind(id: &str) -> Result<&'static DocumentKind> {
    kinds().iter().find(|k| k.id == id).ok_or_else(|| {
        let known: Vec<String> = kinds()
            .iter()
            .map(|k| format!("{}（{}）", k.id, k.title))
            .collect();
        Error::new(
            Code::DocumentInvalid,
            format!(
                "文書の種類「{}」はありません。使える種類: {}",
                id.chars().take(40).collect::<String>(),
                known.join("、")
            ),
        )
    })
}

/// The progress note, which is always embedded.
pub fn default_kind() -> &'static DocumentKind {
    kind(DEFAULT_KIND).expect("assets/documents/progress-note.toml is embedded")
}

impl DocumentKind {
    /// Parses and checks a kind file: ids unique, every role taken by exactly one section.
    pub fn parse(text: &str) -> std::result::Result<DocumentKind, String> {
        let k: DocumentKind = toml::from_str(text).map_err(|e| e.to_string())?;
        if k.sections.is_empty() {
            return Err("a document kind needs sections".into());
        }
        for (i, s) in k.sections.iter().enumerate() {
            if k.sections[..i].iter().any(|o| o.id == s.id) {
                return Err(format!("section id {} is used twice", s.id));
            }
        }
        match k.sources {
            SourceKind::Dictation => {
                for r in Role::ALL {
                    let n = k.sections.iter().filter(|s| s.roles.contains(&r)).count();
                    if n != 1 {
                        return Err(format!(
                            "role {r:?} must be taken by exactly one section (found {n})"
                        ));
                    }
                }
                if k.sections.iter().any(|s| !s.from.is_empty()) || !k.inputs.is_empty() {
                    return Err("a dictated kind has no `from` or `inputs`".into());
                }
            }
            SourceKind::Notes => {
                for s in &k.sections {
                    if s.from.is_empty() {
                        return Err(format!(
                            "section {} says nothing about what fills it (`from`)",
                            s.id
                        ));
                    }
                    for p in &s.from {
                        match (&p.input, p.notes) {
                            (Some(name), None) => {
                                if !k.inputs.iter().any(|i| &i.name == name) {
                                    return Err(format!("section {}: no input named {name}", s.id));
                                }
                                if !p.template.as_deref().is_some_and(|t| t.contains("{}")) {
                                    return Err(format!(
                                        "section {}: an input pick needs a template with {{}}",
                                        s.id
                                    ));
                                }
                            }
                            (None, Some(_)) => {}
                            _ => {
                                return Err(format!(
                                    "section {}: a pick reads either `notes` or an `input`",
                                    s.id
                                ))
                            }
                        }
                    }
                }
            }
        }
        if let Some(r) = &k.range {
            for name in [&r.from, &r.to] {
                if !k.inputs.iter().any(|i| &i.name == name && i.date) {
                    return Err(format!("range: no date input named {name}"));
                }
            }
        }
        k.check_fhir()?;
        Ok(k)
    }

    /// A layout that names an input the kind lacks, or an entry it cannot fill, is a mistake in the kind file,
    /// found when the kind is loaded rather than when a signed document is uploaded.
    fn check_fhir(&self) -> std::result::Result<(), String> {
        let Some(f) = &self.fhir else {
            if let Some(s) = self.sections.iter().find(|s| s.top || s.entry.is_some()) {
                return Err(format!(
                    "section {}: `top` and `entry` need a [fhir] layout",
                    s.id
                ));
            }
            return Ok(());
        };
        let input = |name: &str| self.inputs.iter().any(|i| i.name == name);
        for name in [&f.event.start, &f.event.end].into_iter().flatten() {
            if !input(name) {
                return Err(format!("fhir.event: no input named {name}"));
            }
        }
        if let Some(r) = &f.recipient {
            for name in std::iter::once(&r.name).chain(&r.department) {
                if !input(name) {
                    return Err(format!("fhir.recipient: no input named {name}"));
                }
            }
        }
        for s in &self.sections {
            let missing = match s.entry {
                Some(SectionEntry::Encounter) => (f.encounter_class.is_none()
                    || f.profiles.encounter.is_none())
                .then_some("encounter_class and profiles.encounter"),
                Some(SectionEntry::Conditions) => f
                    .profiles
                    .condition
                    .is_none()
                    .then_some("profiles.condition"),
                Some(SectionEntry::Narrative) => f
                    .profiles
                    .document_reference
                    .is_none()
                    .then_some("profiles.document_reference"),
                Some(SectionEntry::Recipient) => f.recipient.is_none().then_some("recipient"),
                None => None,
            };
            if let Some(m) = missing {
                return Err(format!("section {}: its entry needs fhir.{m}", s.id));
            }
        }
        Ok(())
    }

    /// Index of the section with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.id == id)
    }

    /// The section that takes clauses of this role (checked to exist when the kind was parsed).
    pub fn section_for(&self, role: Role) -> usize {
        self.sections
            .iter()
            .position(|s| s.roles.contains(&role))
            .expect("every role has a section")
    }

    /// The heading of the section with this id; the id itself for a section the kind does not have.
    pub fn heading<'a>(&'a self, id: &'a str) -> &'a str {
        self.position(id)
            .map_or(id, |i| self.sections[i].heading.as_str())
    }

    /// An explicit header at the start of normalised text (「S)」「【O】」「A:」「主訴:」): the section and the header's
    /// length in chars. Built from the kind's `headers`, so every kind is dictated the same way.
    pub fn header(&self, text: &str) -> Option<(usize, usize)> {
        let (re, by_word) = self.headers.get_or_init(|| {
            let mut letters = Vec::new();
            let mut words = Vec::new();
            let mut by_word = HashMap::new();
            for (i, s) in self.sections.iter().enumerate() {
                for h in &s.headers {
                    by_word.insert(h.clone(), i);
                    if h.chars().count() == 1 && h.chars().all(|c| c.is_ascii_uppercase()) {
                        letters.push(regex::escape(h));
                    } else {
                        words.push(h.clone());
                    }
                }
            }
            // Longest first, so 身体所見 is not read as 所見.
            words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
            let words: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
            let l = letters.join("|");
            let w = words.join("|");
            let re = Regex::new(&format!(
                r"^\s*(?:【\s*(?P<a>{l})\s*】|\[(?P<b>{l})\]|<\s*(?P<d>{l})\s*>|(?P<c>{l})\s*[):>]|#?\s*(?P<w>{w})\s*[:)】])\s*"
            ))
            .expect("header pattern");
            (re, by_word)
        });
        let c = re.captures(text)?;
        let key = ["a", "b", "c", "d", "w"].iter().find_map(|n| c.name(n))?;
        let sec = *by_word.get(key.as_str())?;
        Some((sec, c.get(0)?.as_str().chars().count()))
    }

    /// A line label at the start of `text` (「PE:」「CXR:」, from the kind's `line_headers`): the section and the
    /// label's length in chars. Only the drafting pipeline reads these; a typed edit's lines are read by `header`.
    pub fn line_header(&self, text: &str) -> Option<(usize, usize)> {
        let built = self.line_headers.get_or_init(|| {
            let mut words = Vec::new();
            let mut by_word = HashMap::new();
            for (i, s) in self.sections.iter().enumerate() {
                for h in &s.line_headers {
                    by_word.insert(h.to_lowercase(), i);
                    words.push(h.clone());
                }
            }
            if words.is_empty() {
                return None;
            }
            words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
            let words: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
            let re = Regex::new(&format!(r"(?i)^\s*#?\s*(?P<w>{})\s*:\s*", words.join("|")))
                .expect("line header pattern");
            Some((re, by_word))
        });
        let (re, by_word) = built.as_ref()?;
        let c = re.captures(text)?;
        let sec = *by_word.get(&c.name("w")?.as_str().to_lowercase())?;
        Some((sec, c.get(0)?.as_str().chars().count()))
    }

    /// The drafting system prompt for this kind: the shared frame with the kind's style and one line per section.
    pub fn system_prompt(&self) -> String {
        let lines: Vec<String> = self
            .sections
            .iter()
            .map(|s| format!("- {}（{}）: {}", s.id, s.prompt_name, s.instruction))
            .collect();
        SYSTEM_TEMPLATE
            .replace("{style}", &self.prompt_style)
            .replace("{count}", &self.sections.len().to_string())
            .replace("{sections}", &lines.join("\n"))
    }
}

/// The sentences of one section.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub id: String,
    pub sentences: Vec<Sentence>,
}

/// A document's sections in the kind's order. Serialised as a JSON object `{section id: [sentences]}` in that
/// order (the progress note's JSON is what it was before kinds existed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sections {
    parts: Vec<Part>,
}

impl Sections {
    /// Every section of `kind`, empty.
    pub fn empty(kind: &DocumentKind) -> Self {
        Sections {
            parts: kind
                .sections
                .iter()
                .map(|s| Part {
                    id: s.id.clone(),
                    sentences: Vec::new(),
                })
                .collect(),
        }
    }
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
    /// The sentences of section `i` (an index into the kind's sections).
    pub fn at_mut(&mut self, i: usize) -> &mut Vec<Sentence> {
        &mut self.parts[i].sentences
    }
    /// The sentences of the section with this id; none when there is no such section.
    pub fn get(&self, id: &str) -> &[Sentence] {
        self.parts
            .iter()
            .find(|p| p.id == id)
            .map_or(&[], |p| p.sentences.as_slice())
    }
    /// Every sentence with the index of its section, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Sentence)> {
        self.parts
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.sentences.iter().map(move |s| (i, s)))
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Sentence> {
        self.parts.iter_mut().flat_map(|p| p.sentences.iter_mut())
    }
    /// Every section with its sentences taken out (to filter and put back with [`Sections::at_mut`]).
    pub fn take_all(&mut self) -> Vec<Vec<Sentence>> {
        self.parts
            .iter_mut()
            .map(|p| std::mem::take(&mut p.sentences))
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.sentences.is_empty())
    }

    /// The same sections in `kind`'s order, a missing one empty: a JSON object's key order does not survive every
    /// boundary (Tauri reads command arguments through a sorted map), so what arrives is put in order here rather
    /// than trusted. A section the kind does not have, or one named twice, is `input.document_invalid`.
    pub fn conform(self, kind: &DocumentKind) -> Result<Sections> {
        let mut out = Sections::empty(kind);
        let mut seen = vec![false; kind.sections.len()];
        for p in self.parts {
            match kind.sections.iter().position(|s| s.id == p.id) {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    out.parts[i].sentences = p.sentences;
                }
                _ => {
                    return Err(Error::new(
                        Code::DocumentInvalid,
                        "下書きの形式が文書の種類と合いません。もう一度下書きを作成してください。",
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl Serialize for Sections {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(self.parts.len()))?;
        for p in &self.parts {
            m.serialize_entry(&p.id, &p.sentences)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Sections {
    fn deserialize<D: Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sections;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of section id → sentences")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Sections, A::Error> {
                let mut parts = Vec::new();
                while let Some((id, sentences)) = map.next_entry::<String, Vec<Sentence>>()? {
                    parts.push(Part { id, sentences });
                }
                Ok(Sections { parts })
            }
        }
        de.deserialize_map(V)
    }
}

/// A document as stored with a version and uploaded when signed: its kind and its structured sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub kind: String,
    pub sections: Sections,
    /// What the physician typed for a kind drafted from notes (入院日, 紹介先…), by input name: the sentences quote
    /// them, and the FHIR document needs them as data (the stay's period, the receiving facility).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

/// What a section with no sentences shows in the signed text.
const NONE: &str = "（なし）";

impl Document {
    pub fn kind(&self) -> Result<&'static DocumentKind> {
        kind(&self.kind)
    }

    /// The text a physician reads and signs: each heading on its own line, then one sentence per line, or （なし）.
    /// The one renderer of a document; the stored text is always this, so the integrity check can compare.
    pub fn render(&self) -> String {
        self.render_with_spans().0
    }

    /// The rendered text and, per section, the character span of each sentence in it: what a document made from
    /// this one cites, so that the window can highlight the signed words.
    pub fn render_with_spans(&self) -> (String, Vec<Vec<Span>>) {
        let k = kind(&self.kind).ok();
        let mut s = String::new();
        let mut at = 0;
        let mut spans = Vec::new();
        let push = |s: &mut String, text: &str, at: &mut usize| -> Span {
            let start = *at;
            s.push_str(text);
            s.push('\n');
            *at += text.chars().count() + 1;
            Span::new(start, *at - 1)
        };
        for p in self.sections.parts() {
            push(
                &mut s,
                k.map_or(p.id.as_str(), |k| k.heading(&p.id)),
                &mut at,
            );
            if p.sentences.is_empty() {
                push(&mut s, NONE, &mut at);
            }
            // A problem-oriented note keeps its grouping: a problem's heading (「#1 市中肺炎」) on its own line
            // before the first of its sentences in this section; `parse` reads it back as the sentences' problem.
            let mut last: Option<&str> = None;
            let mut part = Vec::new();
            for sent in &p.sentences {
                if let Some(pr) = sent.problem.as_deref() {
                    if last != Some(pr) {
                        push(&mut s, pr, &mut at);
                    }
                }
                last = sent.problem.as_deref();
                part.push(push(&mut s, &sent.text, &mut at));
            }
            spans.push(part);
        }
        (s, spans)
    }

    /// A document of `kind` from text a physician typed (an edit, an amendment): the inverse of
    /// [`Document::render`]. A line that is a section's heading, or starts with one of its dictation headers
    /// (「S)」「【O】」「主訴:」), opens that section; every other non-empty line is one sentence, without spans.
    /// Returns the lines before the first heading separately: a caller decides whether that is an error (an edit)
    /// or belongs to the first section (a record written before documents were structured).
    pub fn parse(kind: &DocumentKind, text: &str) -> (Document, Vec<String>) {
        Document::parse_lines(kind, text, true)
    }

    /// [`Document::parse`], reading a line that starts with 「#1」 inside a section as the problem of the sentences
    /// after it (what `render` writes) when `problems` is true. Notes written before drafts kept problems are read
    /// without it, so a recovered document is what it always was.
    fn parse_lines(kind: &DocumentKind, text: &str, problems: bool) -> (Document, Vec<String>) {
        let mut sections = Sections::empty(kind);
        let mut cur: Option<usize> = None;
        let mut preamble = Vec::new();
        // The problem of the sentences being read, and a heading read but not yet followed by a sentence: one
        // that never is stays a sentence, so nothing typed is lost.
        let mut problem: Option<String> = None;
        let mut pending: Option<(usize, String)> = None;
        let flush = |sections: &mut Sections, pending: &mut Option<(usize, String)>| {
            if let Some((i, p)) = pending.take() {
                sections.at_mut(i).push(Sentence {
                    text: p,
                    spans: Vec::new(),
                    flags: Vec::new(),
                    origin: Default::default(),
                    problem: None,
                    sources: Vec::new(),
                });
            }
        };
        for line in text.lines() {
            let t = line.trim();
            let (sec, body) = match kind.sections.iter().position(|s| s.heading == t) {
                Some(i) => (Some(i), String::new()),
                None => {
                    // Headers are matched width-folded (「Ｓ）」 is 「S)」), but the sentence keeps what was typed.
                    let norm = crate::normalize::normalize(t);
                    match kind.header(&norm.text) {
                        Some((i, len)) => {
                            let cut = norm.orig_span(0, len).end;
                            (Some(i), t.chars().skip(cut).collect())
                        }
                        None => (None, t.to_string()),
                    }
                }
            };
            if sec.is_some() {
                flush(&mut sections, &mut pending);
                problem = None;
                cur = sec;
            }
            let body = body.trim();
            if body.is_empty() || body == NONE {
                continue;
            }
            if let (true, Some(i)) = (problems && is_problem_line(body), cur) {
                flush(&mut sections, &mut pending);
                pending = Some((i, body.to_string()));
                continue;
            }
            if let Some((_, p)) = pending.take() {
                problem = Some(p);
            }
            let s = Sentence {
                text: body.to_string(),
                spans: Vec::new(),
                flags: Vec::new(),
                // Typed by the physician (an edit or amendment): their words.
                origin: Default::default(),
                sources: Vec::new(),
                problem: problem.clone(),
            };
            match cur {
                Some(i) => sections.at_mut(i).push(s),
                None => preamble.push(s.text),
            }
        }
        flush(&mut sections, &mut pending);
        (
            Document {
                kind: kind.id.clone(),
                sections,
                inputs: BTreeMap::new(),
            },
            preamble,
        )
    }

    /// An edit or amendment entered as text: `input.invalid` when text comes before the first heading or no
    /// section has anything, so nothing typed is silently moved or lost.
    pub fn from_text(kind: &DocumentKind, text: &str) -> Result<Document> {
        let (mut doc, preamble) = Document::parse(kind, text);
        // 「S) O) 発熱」 leaves a line that itself opens a section once rendered: settle on what re-reading the
        // rendered text gives, so the stored text and the stored sections always agree.
        for _ in 0..4 {
            let (again, _) = Document::parse(kind, &doc.render());
            if again == doc {
                break;
            }
            doc = again;
        }
        if !preamble.is_empty() {
            return Err(Error::new(
                Code::DocumentInvalid,
                format!(
                    "最初の見出しより前に文があります。各文を見出し（{}など）の下に書いてください。",
                    kind.sections[0].heading
                ),
            ));
        }
        if doc.sections.is_empty() {
            return Err(Error::new(
                Code::InputEmpty,
                "記録の本文が空です。見出しの下に文を書いてください。",
            ));
        }
        Ok(doc)
    }
}

/// 「#1 市中肺炎」「＃２　糖尿病」 (width-folded or not): a problem's heading line.
fn is_problem_line(line: &str) -> bool {
    let mut c = line.chars();
    matches!(c.next(), Some('#' | '＃'))
        && c.find(|c| !c.is_whitespace())
            .is_some_and(|d| d.is_ascii_digit() || ('０'..='９').contains(&d))
}

/// The document of a version stored before documents were structured (and what a stored version's document must
/// equal, so that it is as tamper-evident as the hashed text): a draft's own sections when its draft JSON is there,
/// otherwise the note text read by the kind's headings, with any text before the first heading kept in the first
/// section (nothing a physician signed is dropped).
pub fn recover(kind: &DocumentKind, note: &str, draft_json: Option<&str>) -> Document {
    if let Some(d) = draft_json.and_then(|j| serde_json::from_str::<crate::DraftOutput>(j).ok()) {
        return d.document();
    }
    let (mut doc, preamble) = Document::parse_lines(kind, note, false);
    if !preamble.is_empty() {
        let first = doc.sections.at_mut(0);
        let before: Vec<Sentence> = preamble
            .into_iter()
            .map(|text| Sentence {
                text,
                spans: Vec::new(),
                flags: Vec::new(),
                origin: Default::default(),
                sources: Vec::new(),
                problem: None,
            })
            .collect();
        first.splice(0..0, before);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_note_prompt_is_what_it_was_before_kinds() {
        let old = include_str!("../tests/data/progress_note_system_prompt.txt");
        assert_eq!(default_kind().system_prompt(), old);
    }

    #[test]
    fn line_headers_place_their_line() {
        let k = default_kind();
        let id = |t: &str| {
            k.line_header(t)
                .map(|(i, n)| (k.sections[i].id.as_str(), n))
        };
        for (text, want) in [
            ("PE: JVD(+)", Some(("objective", 4))),
            ("CXR: CTR 62%", Some(("objective", 5))),
            ("#CC: fever", Some(("subjective", 5))),
            ("ecg: ST上昇", Some(("objective", 5))),
            ("PEで異常なし", None),
            ("CT予定", None),
        ] {
            assert_eq!(id(text), want, "{text}");
        }
        // A line label is not a heading of a typed note.
        assert_eq!(k.header("PE: JVD(+)"), None);
    }

    #[test]
    fn headers_open_their_sections() {
        let k = default_kind();
        let id = |t: &str| k.header(t).map(|(i, n)| (k.sections[i].id.as_str(), n));
        for (text, want) in [
            ("S) 頭痛", Some(("subjective", 3))),
            ("【P】入院", Some(("plan", 3))),
            ("[O]BT 38.6℃", Some(("objective", 3))),
            ("A: 肺炎", Some(("assessment", 3))),
            ("<S> 頭痛", Some(("subjective", 4))),
            ("Plan: CTRX 2g iv", Some(("plan", 6))),
            ("主訴: 胸痛", Some(("subjective", 4))),
            ("身体所見:", Some(("objective", 5))),
            ("# 方針) 入院", Some(("plan", 6))),
            ("Sは", None),
            ("SpO2 93%", None),
            ("頭痛あり", None),
        ] {
            assert_eq!(id(text), want, "{text}");
        }
    }

    #[test]
    fn render_and_parse_are_inverse() {
        let k = default_kind();
        let mut s = Sections::empty(k);
        for (i, t) in [(0, "3日前から発熱。"), (0, "咳嗽あり。"), (3, "経過観察。")]
        {
            s.at_mut(i).push(Sentence {
                text: t.into(),
                spans: vec![],
                flags: vec![],
                origin: Default::default(),
                sources: Vec::new(),
                problem: None,
            });
        }
        let d = Document {
            kind: k.id.clone(),
            sections: s,
            inputs: Default::default(),
        };
        let text = d.render();
        assert_eq!(
            text,
            "S（主観的情報）\n3日前から発熱。\n咳嗽あり。\nO（客観的情報）\n（なし）\nA（評価）\n（なし）\nP（計画）\n経過観察。\n"
        );
        let (back, pre) = Document::parse(k, &text);
        assert!(pre.is_empty());
        assert_eq!(back, d);
        assert_eq!(back.render(), text);
    }

    #[test]
    fn problems_render_as_headings_and_parse_back() {
        let k = default_kind();
        let mut s = Sections::empty(k);
        for (i, t, p) in [
            (0, "咳嗽は減少。", Some("#1 市中肺炎")),
            (1, "CRP 3.2。", Some("#1 市中肺炎")),
            (1, "BNP 420。", Some("#2 心不全")),
            (3, "セフトリアキソン継続。", Some("#1 市中肺炎")),
        ] {
            s.at_mut(i).push(Sentence {
                text: t.into(),
                spans: vec![],
                flags: vec![],
                origin: Default::default(),
                problem: p.map(String::from),
                sources: Vec::new(),
            });
        }
        let d = Document {
            kind: k.id.clone(),
            sections: s,
            inputs: Default::default(),
        };
        let text = d.render();
        assert_eq!(
            text,
            "S（主観的情報）\n#1 市中肺炎\n咳嗽は減少。\nO（客観的情報）\n#1 市中肺炎\nCRP 3.2。\n#2 心不全\nBNP 420。\nA（評価）\n（なし）\nP（計画）\n#1 市中肺炎\nセフトリアキソン継続。\n"
        );
        let (back, pre) = Document::parse(k, &text);
        assert!(pre.is_empty());
        assert_eq!(back, d);
        // A heading with nothing under it is kept as the physician's sentence, and stays so.
        let typed = "S（主観的情報）\n頭痛。\n＃３　便秘\nP（計画）\n経過観察。\n";
        let doc = Document::from_text(k, typed).unwrap();
        assert_eq!(doc.sections.get("subjective").len(), 2);
        assert_eq!(doc.sections.get("subjective")[1].text, "＃３　便秘");
        assert_eq!(doc.sections.get("subjective")[1].problem, None);
        // Notes stored before problems were kept read as they always were.
        let old = recover(k, &text, None);
        assert!(old.sections.iter().all(|(_, s)| s.problem.is_none()));
        assert_eq!(old.sections.get("objective").len(), 4);
    }

    #[test]
    fn typed_text_with_short_headers_and_a_preamble() {
        let k = default_kind();
        let (d, pre) = Document::parse(
            k,
            "前置き\nS) 発熱\n【Ｐ】\n再診\nＯ）妻（090-1234-5678）に説明\n",
        );
        assert_eq!(pre, vec!["前置き".to_string()]);
        assert_eq!(d.sections.get("subjective")[0].text, "発熱");
        assert_eq!(d.sections.get("plan")[0].text, "再診");
        // The header is read width-folded; the sentence stays as typed (full-width brackets and all).
        assert_eq!(
            d.sections.get("objective")[0].text,
            "妻（090-1234-5678）に説明"
        );
        assert_eq!(
            Document::from_text(k, "前置き\nS) 発熱").unwrap_err().code,
            Code::DocumentInvalid
        );
        assert_eq!(
            Document::from_text(k, "S（主観的情報）\n（なし）\n")
                .unwrap_err()
                .code,
            Code::InputEmpty
        );
    }

    #[test]
    fn typed_text_settles_on_what_its_rendering_reads_back_as() {
        let k = default_kind();
        let d = Document::from_text(k, "S) O) 発熱\n").unwrap();
        assert_eq!(Document::parse(k, &d.render()).0, d);
        assert_eq!(recover(k, &d.render(), None), d);
    }

    #[test]
    fn recovery_keeps_text_before_the_first_heading() {
        let k = default_kind();
        let d = recover(k, "前置き\nP）再診\n", None);
        assert_eq!(d.sections.get("subjective")[0].text, "前置き");
        assert_eq!(d.sections.get("plan")[0].text, "再診");
    }

    #[test]
    fn sections_keep_the_kind_order_in_json() {
        let k = default_kind();
        let s = Sections::empty(k);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"subjective":[],"objective":[],"assessment":[],"plan":[]}"#
        );
        let back: Sections = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn sections_are_put_in_the_kind_order_whatever_order_they_arrive_in() {
        let k = default_kind();
        let sent = |t: &str| format!(r#"[{{"text":"{t}","spans":[],"flags":[]}}]"#);
        // (JSON as it arrives, section that should hold 「x」, or None when it must be refused)
        let cases: Vec<(String, Option<&str>)> = vec![
            // What Tauri hands a command: keys sorted.
            (
                format!(
                    r#"{{"assessment":[],"objective":{},"plan":[],"subjective":[]}}"#,
                    sent("x")
                ),
                Some("objective"),
            ),
            // An empty section left out.
            (format!(r#"{{"plan":{}}}"#, sent("x")), Some("plan")),
            (
                format!(r#"{{"subjective":[],"history":{}}}"#, sent("x")),
                None,
            ),
            (format!(r#"{{"plan":[],"plan":{}}}"#, sent("x")), None),
        ];
        for (json, want) in cases {
            let s: Sections = serde_json::from_str(&json).unwrap();
            match (s.conform(k), want) {
                (Ok(c), Some(id)) => {
                    let ids: Vec<&str> = c.parts().iter().map(|p| p.id.as_str()).collect();
                    assert_eq!(
                        ids,
                        ["subjective", "objective", "assessment", "plan"],
                        "{json}"
                    );
                    assert_eq!(c.get(id)[0].text, "x", "{json}");
                    assert_eq!(c.iter().count(), 1, "{json}");
                }
                (Err(e), None) => assert_eq!(e.code, Code::DocumentInvalid, "{json}"),
                (got, _) => panic!("{json}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_kind_file_must_map_every_role_once() {
        let bad = include_str!("../../../assets/documents/progress-note.toml")
            .replace("roles = [\"planned\"]", "roles = []");
        assert!(DocumentKind::parse(&bad).unwrap_err().contains("Planned"));
        assert!(kind("no-such-kind").is_err());
    }

    /// A FHIR layout or a notes range that names what the kind lacks is refused when the kind loads.
    #[test]
    fn a_kind_files_layout_and_range_must_name_what_the_kind_has() {
        let dis = include_str!("../../../assets/documents/discharge-summary.toml");
        let referral = include_str!("../../../assets/documents/referral.toml");
        let progress = include_str!("../../../assets/documents/progress-note.toml");
        let cases: &[(&str, String, &str)] = &[
            ("discharge summary as shipped", dis.to_string(), ""),
            ("referral as shipped", referral.to_string(), ""),
            (
                "event from an input the kind lacks",
                dis.replace(
                    "event = { start = \"admitted\"",
                    "event = { start = \"arrived\"",
                ),
                "fhir.event: no input named arrived",
            ),
            (
                "range over a text input",
                dis.replace("label = \"退院日\"\ndate = true", "label = \"退院日\""),
                "range: no date input named discharged",
            ),
            (
                "an Encounter entry without its class",
                dis.replace("encounter_class = {", "# encounter_class = {"),
                "its entry needs fhir.encounter_class",
            ),
            (
                "a recipient entry without the recipient's inputs",
                referral.replace("recipient = { name", "# recipient = { name"),
                "its entry needs fhir.recipient",
            ),
            (
                "a recipient named by an input the kind lacks",
                referral.replace(
                    "name = \"to_facility\", department",
                    "name = \"facility\", department",
                ),
                "fhir.recipient: no input named facility",
            ),
            (
                "a section entry without a layout",
                progress.replace("id = \"plan\"", "id = \"plan\"\nentry = \"narrative\""),
                "need a [fhir] layout",
            ),
        ];
        for (what, text, want) in cases {
            match DocumentKind::parse(text) {
                Ok(_) => assert!(want.is_empty(), "{what}: accepted"),
                Err(e) => assert!(!want.is_empty() && e.contains(want), "{what}: {e}"),
            }
        }
    }
}

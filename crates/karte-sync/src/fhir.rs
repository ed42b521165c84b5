//! The signed note as a FHIR R4 (4.0.1) document Bundle. Pure: a function of the signed document and the options,
//! so the same document always gives the same bytes (what makes a retry a true retry) and tables can test it.
//!
//! Typed serde structs rather than a FHIR model crate: `fhir-sdk` 0.16 has no R4 (STU3, R4B, R5 only) and needs
//! rustc 1.95, above the workspace's floor (1.85); `fhirbolt` 0.4 (`r4`) generates the model of every R4 resource
//! (a large generated crate; its build time was not measured here) to use five of them. Conformance is checked instead by a real R4 validator in the tests (`fhir.resources` 6.2.0 = R4 4.0.1,
//! from PyPI), on Bundles built by this code.
//!
//! Shape (a `document` Bundle, R4 §3.3.1): the Composition first, then the Patient, the Practitioner (author and
//! legal attester) and one ServiceRequest per accepted test suggestion (intent `plan`), all referenced by
//! `urn:uuid:` full URLs. Composition type and sections (titles, codes, order) come from the document kind's file; an amendment has status
//! `amended` and `relatesTo: replaces` the earlier Bundle's identifier, with the reason for the amendment as an
//! extension of that relatesTo ([`AMENDMENT_REASON_URL`], pseudonymised like the rest). JP Core names are used where they apply
//! (JP_Patient / JP_Practitioner profiles, the JP Core patient-id system `urn:oid:1.2.392.100495.20.3.51.1` +
//! 保険医療機関コード when identifying data may be sent).

use base64::Engine as _;
use karte_core::document::{DocumentKind, FhirLayout, SectionEntry};
use karte_core::ClinicalDate;
use karte_store::{SignedDocument, VersionKind};
use serde::Serialize;
use sha2::{Digest, Sha256};

const RFC3986: &str = "urn:ietf:rfc:3986";
/// Pseudonymous patient references: HMAC-SHA256 of the hospital's patient id under the workstation's key.
pub const PSEUDONYM_SYSTEM: &str = "urn:karte:patient-pseudonym";
/// JP Core 患者ID system prefix; the 10-digit 保険医療機関コード follows.
pub const JP_PATIENT_ID_OID: &str = "urn:oid:1.2.392.100495.20.3.51.1";
const STAFF_SYSTEM: &str = "urn:karte:staff";
const RULE_SYSTEM: &str = "urn:karte:suggestion-rule";
/// Extension on `Composition.relatesTo` carrying why a signed note was amended (R4's relatesTo has no note of its
/// own; an element extension is what a conformant reader may ignore without misreading the document).
pub const AMENDMENT_REASON_URL: &str = "urn:karte:fhir:extension:amendment-reason";

/// How the patient appears in the Bundle.
#[derive(Debug, Clone, PartialEq)]
pub enum PatientRef {
    /// Default: a keyed hash only the workstations know how to compute; free text is pseudonymised (【氏名1】…).
    Pseudonym(String),
    /// Only where the hospital's policy allows it (`include_identifying_data = true`): the patient id as entered
    /// and the text as signed.
    Identified {
        id: String,
        facility_code: Option<String>,
    },
}

impl PatientRef {
    pub fn identifying(&self) -> bool {
        matches!(self, PatientRef::Identified { .. })
    }
}

/// The hospital that issues documents (settings `[sync]`): JP-CLINS names it as author and custodian, and builds
/// the Bundle and Composition identifiers from its 保険医療機関コード.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facility {
    pub code: Option<String>,
    pub name: Option<String>,
}

/// JP-CLINS identifier systems and extensions (docs/jp-clins.md §2).
pub const CLINS_BUNDLE_ID_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/bundle-identifier";
pub const RESOURCE_INSTANCE_ID_SYSTEM: &str =
    "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier";
pub const INSTITUTION_NO_SYSTEM: &str =
    "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no";
pub const VERSION_EXTENSION_URL: &str =
    "http://hl7.org/fhir/StructureDefinition/composition-clinicaldocument-versionNumber";
pub const DEPARTMENT_EXTENSION_URL: &str =
    "http://jpfhir.jp/fhir/eCS/Extension/StructureDefinition/JP_eCS_Department";
const EMPTY_REASON: Coding = Coding {
    system: "http://terminology.hl7.org/CodeSystem/list-empty-reason",
    code: "unavailable",
    display: "Unavailable",
};
const ENCOUNTER_DIAGNOSIS: Coding = Coding {
    system: "http://terminology.hl7.org/CodeSystem/condition-category",
    code: "encounter-diagnosis",
    display: "Encounter Diagnosis",
};

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    pub identifier: Identifier,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub timestamp: String,
    pub entry: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub full_url: String,
    pub resource: Resource,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Resource {
    Composition(Box<Composition>),
    Patient(Patient),
    Practitioner(Practitioner),
    Organization(Organization),
    Encounter(Encounter),
    Condition(Condition),
    DocumentReference(DocumentReference),
    ServiceRequest(ServiceRequest),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reference {
    pub reference: String,
}

fn to(url: &str) -> Reference {
    Reference {
        reference: url.to_string(),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Coding {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeableConcept {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// JP-CLINS forbids a text beside a section's code (`code.text ..0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    fn coded(c: Coding) -> CodeableConcept {
        CodeableConcept {
            coding: vec![c],
            text: None,
        }
    }
    fn text(t: impl Into<String>) -> CodeableConcept {
        CodeableConcept {
            coding: vec![],
            text: Some(t.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    pub profile: Vec<&'static str>,
}

fn profile(p: &'static str) -> Meta {
    Meta {
        last_updated: None,
        profile: vec![p],
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Narrative {
    pub status: &'static str,
    pub div: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Composition {
    pub resource_type: &'static str,
    /// The document kind's profile (JP-CLINS), where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub identifier: Identifier,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<Reference>,
    pub date: String,
    pub author: Vec<Reference>,
    pub title: &'static str,
    pub attester: Vec<Attester>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custodian: Option<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relates_to: Vec<RelatesTo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<Event>,
    pub section: Vec<CompositionSection>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attester {
    pub mode: &'static str,
    pub time: String,
    pub party: Reference,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<CodeableConcept>,
    pub period: Period,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelatesTo {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub code: &'static str,
    pub target_identifier: Identifier,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    pub url: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompositionSection {
    pub title: String,
    pub code: CodeableConcept,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Narrative>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_reason: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub section: Vec<CompositionSection>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub resource_type: &'static str,
    pub meta: Meta,
    pub identifier: Vec<Identifier>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    pub resource_type: &'static str,
    pub meta: Meta,
    pub identifier: Vec<Identifier>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub resource_type: &'static str,
    pub meta: Meta,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Encounter {
    pub resource_type: &'static str,
    pub meta: Meta,
    pub status: &'static str,
    pub class: Coding,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub resource_type: &'static str,
    pub meta: Meta,
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<Reference>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReference {
    pub resource_type: &'static str,
    pub meta: Meta,
    pub status: &'static str,
    pub subject: Reference,
    pub content: Vec<Content>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Content {
    pub attachment: Attachment,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub content_type: &'static str,
    /// Base64 of the UTF-8 text.
    pub data: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub resource_type: &'static str,
    pub identifier: Vec<Identifier>,
    pub status: &'static str,
    pub intent: &'static str,
    pub code: CodeableConcept,
    pub subject: Reference,
    pub authored_on: String,
    pub requester: Reference,
    pub reason_code: Vec<CodeableConcept>,
}

/// A coding from the document kind's file (kinds are embedded, so their strings live for the program).
fn coding(c: &'static karte_core::document::Coding) -> Coding {
    Coding {
        system: &c.system,
        code: &c.code,
        display: &c.display,
    }
}

/// A `urn:uuid:` derived from the Bundle's identifier, so every fullUrl is stable across retries.
fn derived_uuid(bundle_id: &str, what: &str) -> String {
    let mut h = Sha256::new();
    h.update(bundle_id.as_bytes());
    h.update([0]);
    h.update(what.as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// XHTML narrative: escaped text, one line per `<br/>`.
fn narrative(text: &str, status: &'static str) -> Narrative {
    let mut div = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    if text.is_empty() {
        div.push_str("（記載なし）");
    }
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            div.push_str("<br/>");
        }
        for ch in line.chars() {
            match ch {
                '<' => div.push_str("&lt;"),
                '>' => div.push_str("&gt;"),
                '&' => div.push_str("&amp;"),
                '"' => div.push_str("&quot;"),
                c => div.push(c),
            }
        }
    }
    div.push_str("</div>");
    Narrative { status, div }
}

/// A section title from its coding's display (「構造情報セクション」→「構造情報」), as JP-CLINS pairs them.
fn title_of(c: &karte_core::document::Coding) -> String {
    c.display
        .strip_suffix("セクション")
        .unwrap_or(&c.display)
        .to_string()
}

/// Free text as it leaves the workstation: as signed where identifying data may be sent, else pseudonymised.
fn as_sent(identifying: bool, text: &str) -> String {
    if identifying {
        text.to_string()
    } else {
        karte_guard::pseudonymise(text).text
    }
}

/// What every layout shares: the patient, the author, the pseudonymised section bodies.
struct Parts<'a> {
    doc: &'a SignedDocument,
    kind: &'static DocumentKind,
    bid: &'a str,
    patient_url: String,
    author_url: String,
    composition_url: String,
    /// Per kind section, its sentences as sent (pseudonymised unless identifying data may be sent).
    lines: Vec<Vec<String>>,
    identifying: bool,
}

/// The Bundle for `doc`. Free text is pseudonymised unless `patient` is [`PatientRef::Identified`]. A kind with a
/// JP-CLINS layout (`[fhir]` in its kind file) gets the profile's document: 構造情報, event period, the issuing
/// facility, and the resources its sections must reference.
pub fn bundle(doc: &SignedDocument, patient: &PatientRef, facility: &Facility) -> Bundle {
    let bid = doc.item.bundle_id.as_str();
    // The store refuses a document of a kind this build does not have, so the fallback is never taken.
    let kind = doc
        .document
        .kind()
        .unwrap_or_else(|_| karte_core::document::default_kind());
    let raw: Vec<String> = kind
        .sections
        .iter()
        .map(|s| {
            let lines: Vec<&str> = doc
                .document
                .sections
                .get(&s.id)
                .iter()
                .map(|x| x.text.as_str())
                .collect();
            lines.join("\n")
        })
        .collect();
    let text_of = |s: &str| as_sent(patient.identifying(), s);
    // One pseudonymisation over the whole note, so a person named in two sections is the same placeholder in both;
    // section by section only if that pass ever touched the separator.
    const SEP: &str = "\n\u{1e}\n";
    let joined = text_of(&raw.join(SEP));
    let mut bodies: Vec<String> = joined.split(SEP).map(str::to_string).collect();
    if bodies.len() != raw.len() {
        bodies = raw.iter().map(|b| text_of(b)).collect();
    }
    let parts = Parts {
        doc,
        kind,
        bid,
        patient_url: derived_uuid(bid, "patient"),
        author_url: derived_uuid(bid, "practitioner"),
        composition_url: derived_uuid(bid, "composition"),
        lines: bodies
            .iter()
            .map(|b| b.lines().map(str::to_string).collect())
            .collect(),
        identifying: patient.identifying(),
    };
    let patient_identifier = match patient {
        PatientRef::Pseudonym(p) => Identifier {
            system: PSEUDONYM_SYSTEM.into(),
            value: p.clone(),
        },
        PatientRef::Identified { id, facility_code } => Identifier {
            system: match facility_code {
                Some(code) => format!("{JP_PATIENT_ID_OID}{code}"),
                None => "urn:karte:patient-id".into(),
            },
            value: id.clone(),
        },
    };
    let relates_to = doc
        .item
        .replaces
        .iter()
        .map(|prev| RelatesTo {
            extension: doc
                .reason
                .iter()
                .filter(|r| !r.trim().is_empty())
                .map(|r| Extension {
                    url: AMENDMENT_REASON_URL,
                    value_string: Some(text_of(r.trim())),
                    value_codeable_concept: None,
                })
                .collect(),
            code: "replaces",
            target_identifier: Identifier {
                system: RFC3986.into(),
                value: prev.clone(),
            },
        })
        .collect();
    let (profiles, mut b) = match &kind.fhir {
        None => (
            (
                "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient",
                "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Practitioner",
            ),
            generic(&parts, relates_to),
        ),
        Some(layout) => (
            (
                layout.profiles.patient.as_str(),
                layout.profiles.practitioner.as_str(),
            ),
            clins(&parts, layout, facility, relates_to),
        ),
    };
    b.entry.splice(
        1..1,
        [
            Entry {
                full_url: parts.patient_url.clone(),
                resource: Resource::Patient(Patient {
                    resource_type: "Patient",
                    meta: profile(profiles.0),
                    identifier: vec![patient_identifier],
                }),
            },
            Entry {
                full_url: parts.author_url.clone(),
                resource: Resource::Practitioner(Practitioner {
                    resource_type: "Practitioner",
                    meta: profile(profiles.1),
                    identifier: vec![Identifier {
                        system: STAFF_SYSTEM.into(),
                        value: doc.signer.clone(),
                    }],
                }),
            },
        ],
    );
    b
}

/// The progress note's shape: titled narrative sections, accepted test suggestions as ServiceRequests.
fn generic(p: &Parts, relates_to: Vec<RelatesTo>) -> Bundle {
    let (doc, kind, bid) = (p.doc, p.kind, p.bid);
    let requests: Vec<(String, ServiceRequest)> = doc
        .accepted_tests
        .iter()
        .map(|t| {
            (
                derived_uuid(bid, &format!("service-request-{}", t.id)),
                ServiceRequest {
                    resource_type: "ServiceRequest",
                    identifier: vec![Identifier {
                        system: RULE_SYSTEM.into(),
                        value: format!("{}#{}", t.rule, t.id),
                    }],
                    status: "active",
                    intent: "plan",
                    code: CodeableConcept::text(t.test.clone()),
                    subject: to(&p.patient_url),
                    authored_on: doc.signed_at.clone(),
                    requester: to(&p.author_url),
                    reason_code: vec![CodeableConcept::text(as_sent(p.identifying, &t.reason))],
                },
            )
        })
        .collect();
    let section = kind
        .sections
        .iter()
        .zip(&p.lines)
        .map(|(s, lines)| CompositionSection {
            title: s.heading.clone(),
            code: CodeableConcept {
                coding: vec![coding(&s.code)],
                text: Some(s.heading.clone()),
            },
            text: Some(narrative(&lines.join("\n"), "generated")),
            entry: if s.orders {
                requests.iter().map(|(url, _)| to(url)).collect()
            } else {
                vec![]
            },
            empty_reason: None,
            section: vec![],
        })
        .collect();
    let amended = doc.kind == VersionKind::Amendment;
    let composition = Composition {
        resource_type: "Composition",
        meta: kind.profile.as_deref().map(profile),
        extension: vec![],
        identifier: Identifier {
            system: RFC3986.into(),
            value: p.composition_url.clone(),
        },
        status: if amended { "amended" } else { "final" },
        kind: CodeableConcept {
            coding: vec![coding(&kind.composition)],
            text: Some(kind.title.clone()),
        },
        category: vec![],
        subject: to(&p.patient_url),
        encounter: None,
        date: doc.signed_at.clone(),
        author: vec![to(&p.author_url)],
        title: if amended {
            &kind.fhir_title_amended
        } else {
            &kind.fhir_title
        },
        attester: vec![Attester {
            mode: "legal",
            time: doc.signed_at.clone(),
            party: to(&p.author_url),
        }],
        custodian: None,
        relates_to,
        event: vec![],
        section,
    };
    let mut entry = vec![Entry {
        full_url: p.composition_url.clone(),
        resource: Resource::Composition(Box::new(composition)),
    }];
    entry.extend(requests.into_iter().map(|(full_url, r)| Entry {
        full_url,
        resource: Resource::ServiceRequest(r),
    }));
    Bundle {
        resource_type: "Bundle",
        meta: None,
        identifier: Identifier {
            system: RFC3986.into(),
            value: bid.to_string(),
        },
        kind: "document",
        timestamp: doc.signed_at.clone(),
        entry,
    }
}

/// A JP-CLINS document (eDischargeSummary, eReferral) as its kind's `[fhir]` layout describes it.
fn clins(
    p: &Parts,
    layout: &'static FhirLayout,
    facility: &Facility,
    relates_to: Vec<RelatesTo>,
) -> Bundle {
    let (doc, kind, bid) = (p.doc, p.kind, p.bid);
    let input = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| doc.document.inputs.get(n))
            .cloned()
    };
    // 発行日 and 発行年: the signing day in Japan (the store's times are UTC).
    let issued = japan_day(&doc.signed_at);
    let year = issued.map_or(0, |d| d.ymd().0);
    // The identifiers' required form needs the facility code; without it, the same UUIDs as the progress note.
    let (bundle_identifier, composition_identifier) = match &facility.code {
        Some(fc) => (
            Identifier {
                system: CLINS_BUNDLE_ID_SYSTEM.into(),
                value: format!("{fc}^{year}^{}", bare_uuid(bid)),
            },
            Identifier {
                system: RESOURCE_INSTANCE_ID_SYSTEM.into(),
                value: format!("{fc}^{year}^{}", bare_uuid(bid).replace('-', "")),
            },
        ),
        None => (
            Identifier {
                system: RFC3986.into(),
                value: bid.to_string(),
            },
            Identifier {
                system: RFC3986.into(),
                value: p.composition_url.clone(),
            },
        ),
    };
    let org_url = derived_uuid(bid, "organization");
    let mut resources: Vec<Entry> = vec![Entry {
        full_url: org_url.clone(),
        resource: Resource::Organization(Organization {
            resource_type: "Organization",
            meta: profile(&layout.profiles.organization),
            extension: vec![],
            identifier: facility
                .code
                .iter()
                .map(|c| Identifier {
                    system: INSTITUTION_NO_SYSTEM.into(),
                    value: c.clone(),
                })
                .collect(),
            name: facility.name.clone(),
        }),
    }];
    let start = input(&layout.event.start)
        .or_else(|| issued.map(|d| d.to_string()))
        .unwrap_or_default();
    let end = input(&layout.event.end);
    let uses = |e: SectionEntry| kind.sections.iter().any(|s| s.entry == Some(e));
    let encounter_url = uses(SectionEntry::Encounter).then(|| derived_uuid(bid, "encounter"));
    if let (Some(url), Some(class), Some(prof)) = (
        &encounter_url,
        &layout.encounter_class,
        &layout.profiles.encounter,
    ) {
        resources.push(Entry {
            full_url: url.clone(),
            resource: Resource::Encounter(Encounter {
                resource_type: "Encounter",
                meta: profile(prof),
                status: "finished",
                class: coding(class),
                subject: to(&p.patient_url),
                period: Some(Period {
                    start: start.clone(),
                    end: end.clone(),
                }),
            }),
        });
    }
    let mut sections = Vec::new();
    let mut top = Vec::new();
    if let Some(c) = &layout.author_section {
        top.push(CompositionSection {
            title: title_of(c),
            code: CodeableConcept::coded(coding(c)),
            text: None,
            entry: vec![to(&org_url), to(&p.author_url)],
            empty_reason: None,
            section: vec![],
        });
    }
    for (s, lines) in kind.sections.iter().zip(&p.lines) {
        let body = lines.join("\n");
        let mut entry = Vec::new();
        match s.entry {
            Some(SectionEntry::Encounter) => entry.extend(encounter_url.iter().map(|u| to(u))),
            Some(SectionEntry::Conditions) => {
                for (i, line) in lines.iter().enumerate() {
                    let url = derived_uuid(bid, &format!("condition-{}-{i}", s.id));
                    resources.push(Entry {
                        full_url: url.clone(),
                        resource: Resource::Condition(Condition {
                            resource_type: "Condition",
                            meta: profile(layout.profiles.condition.as_deref().unwrap_or_default()),
                            category: vec![CodeableConcept::coded(ENCOUNTER_DIAGNOSIS)],
                            code: CodeableConcept::text(line.clone()),
                            subject: to(&p.patient_url),
                            encounter: encounter_url.as_deref().map(to),
                        }),
                    });
                    entry.push(to(&url));
                }
            }
            Some(SectionEntry::Narrative) if !body.is_empty() => {
                let url = derived_uuid(bid, &format!("document-{}", s.id));
                resources.push(Entry {
                    full_url: url.clone(),
                    resource: Resource::DocumentReference(DocumentReference {
                        resource_type: "DocumentReference",
                        meta: profile(
                            layout
                                .profiles
                                .document_reference
                                .as_deref()
                                .unwrap_or_default(),
                        ),
                        status: "current",
                        subject: to(&p.patient_url),
                        content: vec![Content {
                            attachment: Attachment {
                                content_type: "text/plain; charset=utf-8",
                                data: base64::engine::general_purpose::STANDARD
                                    .encode(body.as_bytes()),
                                title: s.heading.clone(),
                            },
                        }],
                    }),
                });
                entry.push(to(&url));
            }
            Some(SectionEntry::Recipient) => {
                let r = layout
                    .recipient
                    .as_ref()
                    .expect("checked when the kind loaded");
                let url = derived_uuid(bid, "recipient");
                // A facility's name is not the patient's: sent as typed.
                resources.push(Entry {
                    full_url: url.clone(),
                    resource: Resource::Organization(Organization {
                        resource_type: "Organization",
                        meta: profile(&layout.profiles.organization),
                        extension: input(&r.department)
                            .map(|d| Extension {
                                url: DEPARTMENT_EXTENSION_URL,
                                value_string: None,
                                value_codeable_concept: Some(CodeableConcept::text(d)),
                            })
                            .into_iter()
                            .collect(),
                        identifier: vec![],
                        name: input(&Some(r.name.clone())),
                    }),
                });
                entry.push(to(&url));
            }
            Some(SectionEntry::Narrative) | None => {}
        }
        let section = CompositionSection {
            title: s.heading.clone(),
            code: CodeableConcept::coded(coding(&s.code)),
            text: Some(narrative(&body, &layout.narrative_status)),
            empty_reason: (body.is_empty() && entry.is_empty())
                .then(|| CodeableConcept::coded(EMPTY_REASON)),
            entry,
            section: vec![],
        };
        if s.top {
            top.push(section);
        } else {
            sections.push(section);
        }
    }
    top.push(CompositionSection {
        title: title_of(&layout.structured),
        code: CodeableConcept::coded(coding(&layout.structured)),
        text: None,
        entry: vec![],
        empty_reason: None,
        section: sections,
    });
    // 版番号: the first signed edition is "1"; an amendment carries the store's version number, which only grows.
    let edition = match doc.kind {
        VersionKind::Amendment => doc.item.version.to_string(),
        _ => "1".to_string(),
    };
    let composition = Composition {
        resource_type: "Composition",
        meta: kind.profile.as_deref().map(profile),
        extension: vec![Extension {
            url: VERSION_EXTENSION_URL,
            value_string: Some(edition),
            value_codeable_concept: None,
        }],
        identifier: composition_identifier,
        // The profiles fix `final`; an amendment says what it replaces in relatesTo.
        status: "final",
        kind: CodeableConcept::coded(coding(&kind.composition)),
        category: vec![CodeableConcept::coded(coding(&layout.category))],
        subject: to(&p.patient_url),
        encounter: encounter_url.as_deref().map(to),
        date: doc.signed_at.clone(),
        author: vec![to(&p.author_url), to(&org_url)],
        title: &kind.fhir_title,
        attester: vec![Attester {
            mode: "legal",
            time: doc.signed_at.clone(),
            party: to(&p.author_url),
        }],
        custodian: Some(to(&org_url)),
        relates_to,
        event: vec![Event {
            code: layout
                .event
                .text
                .iter()
                .map(CodeableConcept::text)
                .collect(),
            period: Period { start, end },
        }],
        section: top,
    };
    let mut entry = vec![Entry {
        full_url: p.composition_url.clone(),
        resource: Resource::Composition(Box::new(composition)),
    }];
    entry.extend(resources);
    Bundle {
        resource_type: "Bundle",
        meta: Some(Meta {
            last_updated: Some(doc.signed_at.clone()),
            profile: vec![&layout.bundle_profile],
        }),
        identifier: bundle_identifier,
        kind: "document",
        timestamp: doc.signed_at.clone(),
        entry,
    }
}

/// The UUID of a `urn:uuid:` Bundle id (36 characters of `[0-9a-f-]`, what the Bundle-ID's serial allows).
fn bare_uuid(bid: &str) -> &str {
    bid.strip_prefix("urn:uuid:").unwrap_or(bid)
}

/// The day in Japan (UTC+9, no daylight saving) of an RFC 3339 UTC time such as `2026-12-31T16:00:00.000Z`: the
/// 発行日 and 発行年 of a document are the hospital's, and after 15:00 UTC Japan is already on the next day.
fn japan_day(utc: &str) -> Option<ClinicalDate> {
    let num = |r: std::ops::Range<usize>| utc.get(r).and_then(|x| x.parse::<u32>().ok());
    let (y, m, d, h) = (num(0..4)? as i32, num(5..7)?, num(8..10)?, num(11..13)?);
    if h < 15 {
        return ClinicalDate::from_ymd(y, m, d).ok();
    }
    ClinicalDate::from_ymd(y, m, d + 1)
        .or_else(|_| ClinicalDate::from_ymd(y, m + 1, 1))
        .or_else(|_| ClinicalDate::from_ymd(y + 1, 1, 1))
        .ok()
}

/// The bytes sent: compact JSON.
pub fn to_json(b: &Bundle) -> Vec<u8> {
    serde_json::to_vec(b).expect("a Bundle always serialises")
}

/// HMAC-SHA256 (RFC 2104) of the patient id under the workstation's pseudonym key, hex: stable for one patient on
/// every workstation that shares the key, and not reversible without it.
pub fn pseudonym(key: &[u8], patient_ref: &str) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(patient_ref.trim().as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            pseudonym(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn narrative_escapes_markup() {
        let n = narrative("a<b & c>\"d\"\n次行", "generated");
        assert_eq!(
            n.div,
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">a&lt;b &amp; c&gt;&quot;d&quot;<br/>次行</div>"
        );
    }
}

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

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: &'static str,
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
    pub text: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Meta {
    pub profile: Vec<&'static str>,
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
    pub identifier: Identifier,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    pub subject: Reference,
    pub date: String,
    pub author: Vec<Reference>,
    pub title: &'static str,
    pub attester: Vec<Attester>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relates_to: Vec<RelatesTo>,
    pub section: Vec<CompositionSection>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attester {
    pub mode: &'static str,
    pub time: String,
    pub party: Reference,
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
    pub value_string: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompositionSection {
    pub title: String,
    pub code: CodeableConcept,
    pub text: Narrative,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Reference>,
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
fn narrative(text: &str) -> Narrative {
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
    Narrative {
        status: "generated",
        div,
    }
}

/// The Bundle for `doc`. Free text is pseudonymised unless `patient` is [`PatientRef::Identified`].
pub fn bundle(doc: &SignedDocument, patient: &PatientRef) -> Bundle {
    let bid = &doc.item.bundle_id;
    let text_of = |s: &str| -> String {
        if patient.identifying() {
            s.to_string()
        } else {
            karte_guard::pseudonymise(s).text
        }
    };
    let patient_url = derived_uuid(bid, "patient");
    let author_url = derived_uuid(bid, "practitioner");
    let composition_url = derived_uuid(bid, "composition");
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
                    code: CodeableConcept {
                        coding: vec![],
                        text: t.test.clone(),
                    },
                    subject: Reference {
                        reference: patient_url.clone(),
                    },
                    authored_on: doc.signed_at.clone(),
                    requester: Reference {
                        reference: author_url.clone(),
                    },
                    reason_code: vec![CodeableConcept {
                        coding: vec![],
                        text: text_of(&t.reason),
                    }],
                },
            )
        })
        .collect();
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
    // One pseudonymisation over the whole note, so a person named in two sections is the same placeholder in both;
    // section by section only if that pass ever touched the separator.
    const SEP: &str = "\n\u{1e}\n";
    let joined = text_of(&raw.join(SEP));
    let mut bodies: Vec<String> = joined.split(SEP).map(str::to_string).collect();
    if bodies.len() != raw.len() {
        bodies = raw.iter().map(|b| text_of(b)).collect();
    }
    let section = kind
        .sections
        .iter()
        .zip(bodies)
        .map(|(s, body)| CompositionSection {
            title: s.heading.clone(),
            code: CodeableConcept {
                coding: vec![coding(&s.code)],
                text: s.heading.clone(),
            },
            text: narrative(&body),
            entry: if s.orders {
                requests
                    .iter()
                    .map(|(url, _)| Reference {
                        reference: url.clone(),
                    })
                    .collect()
            } else {
                vec![]
            },
        })
        .collect();
    let amended = doc.kind == VersionKind::Amendment;
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
                    value_string: text_of(r.trim()),
                })
                .collect(),
            code: "replaces",
            target_identifier: Identifier {
                system: RFC3986.into(),
                value: prev.clone(),
            },
        })
        .collect();
    let composition = Composition {
        resource_type: "Composition",
        identifier: Identifier {
            system: RFC3986.into(),
            value: composition_url.clone(),
        },
        status: if amended { "amended" } else { "final" },
        meta: kind.profile.as_deref().map(|p| Meta { profile: vec![p] }),
        kind: CodeableConcept {
            coding: vec![coding(&kind.composition)],
            text: kind.title.clone(),
        },
        subject: Reference {
            reference: patient_url.clone(),
        },
        date: doc.signed_at.clone(),
        author: vec![Reference {
            reference: author_url.clone(),
        }],
        title: if amended {
            &kind.fhir_title_amended
        } else {
            &kind.fhir_title
        },
        attester: vec![Attester {
            mode: "legal",
            time: doc.signed_at.clone(),
            party: Reference {
                reference: author_url.clone(),
            },
        }],
        relates_to,
        section,
    };
    let mut entry = vec![
        Entry {
            full_url: composition_url,
            resource: Resource::Composition(Box::new(composition)),
        },
        Entry {
            full_url: patient_url,
            resource: Resource::Patient(Patient {
                resource_type: "Patient",
                meta: Meta {
                    profile: vec!["http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient"],
                },
                identifier: vec![patient_identifier],
            }),
        },
        Entry {
            full_url: author_url,
            resource: Resource::Practitioner(Practitioner {
                resource_type: "Practitioner",
                meta: Meta {
                    profile: vec!["http://jpfhir.jp/fhir/core/StructureDefinition/JP_Practitioner"],
                },
                identifier: vec![Identifier {
                    system: STAFF_SYSTEM.into(),
                    value: doc.signer.clone(),
                }],
            }),
        },
    ];
    entry.extend(requests.into_iter().map(|(full_url, r)| Entry {
        full_url,
        resource: Resource::ServiceRequest(r),
    }));
    Bundle {
        resource_type: "Bundle",
        identifier: Identifier {
            system: RFC3986.into(),
            value: bid.clone(),
        },
        kind: "document",
        timestamp: doc.signed_at.clone(),
        entry,
    }
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
        let n = narrative("a<b & c>\"d\"\n次行");
        assert_eq!(
            n.div,
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">a&lt;b &amp; c&gt;&quot;d&quot;<br/>次行</div>"
        );
    }
}

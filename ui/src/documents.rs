//! 退院時サマリー and 診療情報提供書 (physicians): the patient and that patient's signed notes (the dates are
//! prefilled from them, the latest stay or course of visits), the kind, what the kind asks to be typed (its
//! `inputs`, from the kind file), then the document drafted from those notes, its progress and the model's stream
//! shown while it runs. A click on a sentence shows where it comes from: the signed note with the cited words
//! marked, or the field that was typed. What the form shows per kind is the kind file's; nothing here names a kind
//! or a section.

use crate::components::draft_view::flag_label;
use crate::components::{ErrorBox, ProgressPanel};
use crate::highlight::segments;
use crate::ipc;
use crate::model::{ProgressState, UiError};
use crate::records;
use crate::shell::{clinical_date, kind_title, SessionCtx};
use karte_core::compose::{prefill_range, View};
use karte_core::document::{kinds, DocumentKind, SourceKind};
use karte_core::SourceRef;
use karte_ipc::{ClinicalDate, DocumentDraft, DocumentRequest, SignedNote};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;

fn note_kinds() -> Vec<&'static DocumentKind> {
    kinds()
        .iter()
        .filter(|k| k.sources == SourceKind::Notes)
        .collect()
}

fn kind_named(id: &str) -> &'static DocumentKind {
    let all = note_kinds();
    all.iter().copied().find(|k| k.id == id).unwrap_or(all[0])
}

#[component]
pub fn DocumentsView() -> impl IntoView {
    let ctx = use_context::<SessionCtx>();
    let kind = RwSignal::new(note_kinds()[0].id.clone());
    let patient = RwSignal::new(String::new());
    let inputs = RwSignal::new(BTreeMap::<String, String>::new());
    let (from, to) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let result = RwSignal::new(None::<DocumentDraft>);
    let saved = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<UiError>);
    let busy = RwSignal::new(false);
    // As for notes: the model phrases unless the physician asks for the notes' own sentences only.
    let no_llm = RwSignal::new(false);
    // The patient's signed notes, once listed: what the document will be made from.
    let notes = RwSignal::new(Vec::<SignedNote>::new());
    let drafting = RwSignal::new(false);
    let progress = RwSignal::new(ProgressState::default());
    let report = move |e: UiError| match ctx {
        Some(c) => c.report(error, e),
        None => error.set(Some(e)),
    };
    // The kind's dates from the listed notes (its 入院日–退院日, or the range of a kind without its own dates).
    let prefill = move |k: &DocumentKind| {
        let dates: Vec<ClinicalDate> =
            notes.with_untracked(|ns| ns.iter().map(|n| n.clinical_date).collect());
        let Some((first, last)) = prefill_range(k, &dates) else {
            return;
        };
        match &k.range {
            Some(r) => inputs.update(|m| {
                m.insert(r.from.clone(), first.to_string());
                m.insert(r.to.clone(), last.to_string());
            }),
            None => {
                from.set(first.to_string());
                to.set(last.to_string());
            }
        }
    };
    let list_notes = move |_| {
        if busy.get_untracked() {
            return;
        }
        error.set(None);
        busy.set(true);
        let p = patient.get_untracked();
        spawn_local(async move {
            match records::patient_notes(&p).await {
                Ok(list) => {
                    notes.set(list);
                    prefill(kind_named(&kind.get_untracked()));
                }
                Err(e) => {
                    notes.set(Vec::new());
                    report(e);
                }
            }
            busy.set(false);
        });
    };
    // Only a document's own draft streams here: the note tab's draft sends the same events. The listener outlives
    // this view (it is the page's), hence the `try_` reads of signals that may be gone.
    #[cfg(target_arch = "wasm32")]
    spawn_local(async move {
        let on_progress = move |p| {
            if drafting.try_get_untracked() == Some(true) {
                progress.try_update(|s| s.apply(p));
            }
        };
        if let Err(e) = ipc::listen_progress(on_progress).await {
            error.set(Some(e));
        }
    });
    let draft = move |_| {
        if busy.get_untracked() {
            return;
        }
        error.set(None);
        saved.set(None);
        let range = clinical_date(&from.get_untracked())
            .and_then(|f| Ok((f, clinical_date(&to.get_untracked())?)));
        let (from, to) = match range {
            Ok(r) => r,
            Err(e) => return error.set(Some(e)),
        };
        let k = kind_named(&kind.get_untracked());
        let typed = inputs.get_untracked();
        let request = DocumentRequest {
            kind: k.id.clone(),
            patient: patient.get_untracked(),
            // Only this kind's fields, and only those filled in: an optional one left empty is not sent.
            inputs: k
                .inputs
                .iter()
                .filter_map(|i| {
                    let v = typed.get(&i.name)?.trim();
                    (!v.is_empty()).then(|| (i.name.clone(), v.to_string()))
                })
                .collect(),
            from: if k.range.is_some() { None } else { from },
            to: if k.range.is_some() { None } else { to },
        };
        busy.set(true);
        drafting.set(true);
        progress.set(ProgressState::default());
        result.set(None);
        spawn_local(async move {
            match records::draft_document(&request, no_llm.get_untracked()).await {
                Ok(d) => result.set(Some(d)),
                Err(e) => report(e),
            }
            drafting.set(false);
            busy.set(false);
        });
    };
    let save = move |_| {
        let Some(d) = result.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let p = patient.get_untracked();
        spawn_local(async move {
            match records::save_document(&p, d.date, &d.draft).await {
                Ok(id) => {
                    saved.set(Some(id));
                    if let Some(c) = ctx {
                        c.records_changed.update(|n| *n += 1);
                    }
                }
                Err(e) => report(e),
            }
            busy.set(false);
        });
    };
    view! {
        <main id="documents" class="columns">
            <section id="document-form" class="document-form">
                <h2>"退院時サマリー・診療情報提供書"</h2>
                <label for="doc-patient" class="field-label">"患者ID"</label>
                <input id="doc-patient" prop:value=move || patient.get()
                    on:input=move |ev| {
                        patient.set(event_target_value(&ev));
                        // The list was another patient's.
                        notes.set(Vec::new());
                    }/>
                <button id="doc-notes-button" type="button" class="secondary" on:click=list_notes
                    disabled=move || busy.get()>"署名済みの記録を表示"</button>
                {move || notes.with(|ns| (!ns.is_empty()).then(|| view! {
                    <ul id="doc-notes" class="doc-notes" aria-label="この患者の署名済みの記録">
                        {ns.iter().map(note_line).collect_view()}
                    </ul>
                }))}
                <label for="doc-kind" class="field-label">"文書"</label>
                <select id="doc-kind" on:change=move |ev| {
                    let id = event_target_value(&ev);
                    prefill(kind_named(&id));
                    kind.set(id);
                    result.set(None);
                }>
                    {note_kinds().into_iter().map(|k| view! {
                        <option value=k.id.clone() selected=move || kind.get() == k.id>{k.title.clone()}</option>
                    }).collect_view()}
                </select>
                {move || {
                    let k = kind_named(&kind.get());
                    let fields = k.inputs.iter().map(|i| {
                        let name = i.name.clone();
                        let id = format!("doc-input-{name}");
                        let label = if i.required { i.label.clone() } else { format!("{}（任意）", i.label) };
                        let value = {
                            let name = name.clone();
                            move || inputs.with(|m| m.get(&name).cloned().unwrap_or_default())
                        };
                        view! {
                            <label for=id.clone() class="field-label">{label}</label>
                            <input id=id type=if i.date { "date" } else { "text" } prop:value=value
                                on:input=move |ev| {
                                    let v = event_target_value(&ev);
                                    inputs.update(|m| { m.insert(name.clone(), v); });
                                }/>
                        }
                    }).collect_view();
                    // A kind whose own dates bound the notes (入院日–退院日) needs no range.
                    let range = k.range.is_none().then(|| view! {
                        <label for="doc-from" class="field-label">"記録の期間（開始・任意）"</label>
                        <input id="doc-from" type="date" prop:value=move || from.get()
                            on:input=move |ev| from.set(event_target_value(&ev))/>
                        <label for="doc-to" class="field-label">"記録の期間（終了・任意）"</label>
                        <input id="doc-to" type="date" prop:value=move || to.get()
                            on:input=move |ev| to.set(event_target_value(&ev))/>
                    });
                    view! { {fields} {range} }
                }}
                <label class="checkbox">
                    <input type="checkbox" id="doc-no-llm" prop:checked=move || no_llm.get()
                        on:change=move |ev| no_llm.set(event_target_checked(&ev))/>
                    "モデルを使わない（記録の文のまま）"
                </label>
                <button id="doc-draft-button" type="button" on:click=draft disabled=move || busy.get()>
                    {move || if busy.get() { "作成中…" } else { "署名済みの記録から作成" }}
                </button>
                <ErrorBox error=error/>
                <ProgressPanel
                    busy=drafting
                    progress=progress
                    on_cancel=Callback::new(move |_| {
                        spawn_local(async move {
                            // The draft call reports the outcome (engine.cancelled, or its result if it had already
                            // finished), so a failed cancel needs no message of its own.
                            let _ = ipc::cancel_draft().await;
                        })
                    })
                />
            </section>
            {move || result.get().map(|d| view! {
                <DocumentResult draft=d/>
                <section id="doc-save" class="save-draft">
                    <button id="doc-save-button" type="button" on:click=save
                        disabled=move || busy.get() || saved.with(Option::is_some)>"記録として保存"</button>
                    {move || saved.get().map(|id| {
                        let attr = id.clone();
                        view! { <p id="doc-saved-id" data-id=attr>"保存しました（未署名）: " {id}</p> }
                    })}
                </section>
            })}
        </main>
    }
}

/// How much of a note its line in the list shows: enough to tell the notes of one stay apart.
const NOTE_PREVIEW_CHARS: usize = 40;

/// One signed note in the patient's list: its day, its kind and how it begins.
fn note_line(n: &SignedNote) -> impl IntoView {
    // Its sentences, not its text: the text's headings and （なし） say nothing about this note.
    let preview: String = n
        .document
        .sections
        .iter()
        .map(|(_, s)| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(NOTE_PREVIEW_CHARS)
        .collect();
    view! {
        <li class="doc-note" data-id=n.encounter.clone() data-date=n.clinical_date.to_string()>
            <span class="doc-note-date">{n.clinical_date.to_string()}</span>"　"
            <span class="doc-note-kind">{kind_title(&n.document.kind)}</span>"　"
            <span class="doc-note-text">{preview}</span>
        </li>
    }
}

/// The drafted document, section by section, and the source of the sentence last clicked.
#[component]
pub fn DocumentResult(draft: DocumentDraft) -> impl IntoView {
    let view_of = View::of(&draft.draft);
    let chosen = RwSignal::new(None::<Vec<SourceRef>>);
    let notes = StoredValue::new(draft.notes.clone());
    let typed = StoredValue::new(draft.draft.inputs.clone());
    let kind = kind_named(&draft.draft.kind);
    view! {
        <section id="document-draft" class="document-draft" data-kind=view_of.kind.clone()>
            {view_of.sections.into_iter().map(|s| {
                let empty = s.sentences.is_empty();
                view! {
                    <section class="doc-section" data-section=s.id.clone()>
                        <h3>{s.title}</h3>
                        {empty.then(|| view! { <p class="empty">"（なし）"</p> })}
                        <ul>
                            {s.sentences.into_iter().map(|sentence| {
                                let sources = sentence.sources.clone();
                                let n = sources.len();
                                // Who wrote the words, and what the checks found: a model sentence is read
                                // against its source before signing.
                                let origin = if sentence.origin == karte_core::Origin::Model { "model" } else { "notes" };
                                let flags = sentence.flags.clone();
                                view! {
                                    <li class="doc-sentence" data-sources=n.to_string() data-origin=origin
                                        on:click=move |_| chosen.set(Some(sources.clone()))>
                                        {sentence.text}
                                        {flags.into_iter().map(|f| view! {
                                            <span class="flag" data-code=f.code.clone()>{flag_label(&f)}</span>
                                        }).collect_view()}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    </section>
                }
            }).collect_view()}
            {(!view_of.flags.is_empty()).then(|| view! {
                <ul id="doc-flags" class="flags">
                    {view_of.flags.into_iter().map(|f| view! {
                        <li data-code=f.code.clone()>{f.message} <small class="code">{f.code.clone()}</small></li>
                    }).collect_view()}
                </ul>
            })}
        </section>
        <aside id="doc-source" class="source-view" aria-label="文の出典">
            {move || match chosen.get() {
                None => view! { <span class="placeholder">"文をクリックすると、元の記録の該当箇所が表示されます。"</span> }.into_any(),
                Some(refs) => refs.into_iter().map(|r| {
                    if let Some(name) = r.version.strip_prefix("input:") {
                        let label = kind.inputs.iter().find(|i| i.name == name).map_or(name.to_string(), |i| i.label.clone());
                        let value = typed.with_value(|t| t.get(name).cloned().unwrap_or_default());
                        return view! {
                            <div class="doc-source-input" data-input=name.to_string()>
                                <h4>{format!("入力: {label}")}</h4>
                                <p><mark>{value}</mark></p>
                            </div>
                        }.into_any();
                    }
                    let note = notes.with_value(|ns| ns.iter().find(|n| format!("{}@{}", n.encounter, n.version) == r.version).cloned());
                    match note {
                        None => view! { <p class="empty">"元の記録が見つかりません。"</p> }.into_any(),
                        Some(n) => view! {
                            <div class="doc-source-note" data-version=r.version.clone()>
                                <h4>{format!("{} の記録", n.clinical_date)}</h4>
                                <pre>
                                    {segments(&n.text, &[r.span]).into_iter().map(|s| if s.marked {
                                        view! { <mark>{s.text}</mark> }.into_any()
                                    } else {
                                        s.text.into_any()
                                    }).collect_view()}
                                </pre>
                            </div>
                        }.into_any(),
                    }
                }).collect_view().into_any(),
            }}
        </aside>
    }
}

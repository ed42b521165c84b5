//! The window around the drafting view: sign-in with password and TOTP, then one view per role. Physicians draft,
//! save and sign; nurses work through the suggestion review queue; administrators see accounts and the audit log
//! with a verify button. What each role may do is decided by karte-store behind the commands; these views only
//! leave out what a role cannot use, so a refusal (`auth.forbidden`) is never the normal path.

use crate::app::App;
use crate::components::ErrorBox;
use crate::documents::DocumentsView;
use crate::model::{DraftOutput, UiError};
use crate::records;
use crate::uploads::{badge_for, QueueHealthPanel, UploadBadge};
use karte_ipc::{
    AuditEntry, AuditReport, ClinicalDate, EncounterSummary, EncounterView, OutboxItem, Role,
    SignedIn, SuggestionView, UploadOverview, UserInfo,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Who is signed in, and why the last session ended (shown on the sign-in screen).
#[derive(Clone, Copy)]
pub struct SessionCtx {
    pub signed_in: RwSignal<Option<SignedIn>>,
    pub notice: RwSignal<Option<UiError>>,
    /// Bumped when a record was saved or signed, so lists reload.
    pub records_changed: RwSignal<u32>,
}

impl SessionCtx {
    /// Shows `e` in `error`; an expired or disabled session sends the window back to the sign-in screen instead.
    pub fn report(self, error: RwSignal<Option<UiError>>, e: UiError) {
        if matches!(e.code.as_str(), "auth.session_expired" | "auth.disabled") {
            self.notice.set(Some(e));
            self.signed_in.set(None);
        } else {
            error.set(Some(e));
        }
    }
}

#[component]
pub fn Shell() -> impl IntoView {
    let ctx = SessionCtx {
        signed_in: RwSignal::new(None),
        notice: RwSignal::new(None),
        records_changed: RwSignal::new(0),
    };
    provide_context(ctx);
    move || match ctx.signed_in.get() {
        None => view! { <LoginView/> }.into_any(),
        Some(who) => view! { <SignedInView who=who/> }.into_any(),
    }
}

#[component]
pub fn LoginView() -> impl IntoView {
    let ctx = use_context::<SessionCtx>();
    let (user, password, totp) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let busy = RwSignal::new(false);
    let error = RwSignal::new(ctx.and_then(|c| c.notice.get_untracked()));
    let submit = move || {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (u, p, t) = (
            user.get_untracked(),
            password.get_untracked(),
            totp.get_untracked(),
        );
        spawn_local(async move {
            match records::login(&u, &p, &t).await {
                Ok(who) => {
                    busy.set(false);
                    password.set(String::new());
                    if let Some(c) = ctx {
                        c.notice.set(None);
                        c.signed_in.set(Some(who));
                    }
                }
                Err(e) => {
                    // A code is good once: the next attempt needs the next one.
                    totp.set(String::new());
                    error.set(Some(e));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <main class="login">
            <form id="login-form" class="login-form" on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }>
                <h1>"Karte — サインイン"</h1>
                <label for="login-user" class="field-label">"利用者名"</label>
                <input id="login-user" autocomplete="username"
                    prop:value=move || user.get() on:input=move |ev| user.set(event_target_value(&ev))/>
                <label for="login-password" class="field-label">"パスワード"</label>
                <input id="login-password" type="password" autocomplete="current-password"
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev))/>
                <label for="login-totp" class="field-label">"確認コード（認証アプリの6桁）"</label>
                <input id="login-totp" inputmode="numeric" maxlength="6" autocomplete="one-time-code"
                    prop:value=move || totp.get() on:input=move |ev| totp.set(event_target_value(&ev))/>
                <button id="login-button" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "確認中…" } else { "サインイン" }}
                </button>
                <ErrorBox error=error/>
            </form>
        </main>
    }
}

#[component]
fn SignedInView(who: SignedIn) -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let role = who.role;
    let logout = move |_| {
        spawn_local(async move {
            // Signing out of the window works even if the backend call fails: the session is dropped there on the
            // next call anyway.
            let _ = records::logout().await;
            ctx.signed_in.set(None);
        })
    };
    view! {
        <div id="user-bar" class="user-bar">
            <span id="signed-in-user" data-role=role.as_str()>
                {format!("{}（{}）", who.user, role.label_ja())}
            </span>
            <button id="logout" type="button" on:click=logout>"サインアウト"</button>
        </div>
        {match role {
            Role::Physician => view! { <PhysicianView/> }.into_any(),
            Role::Nurse => view! { <ReviewQueue/> }.into_any(),
            Role::Admin => view! { <AdminView/> }.into_any(),
        }}
    }
}

/// A physician's two workspaces: the progress note from a dictation, and documents made from signed notes.
#[component]
fn PhysicianView() -> impl IntoView {
    let documents = RwSignal::new(false);
    view! {
        <nav id="physician-tabs" class="tabs">
            <button id="tab-note" type="button" class:active=move || !documents.get()
                on:click=move |_| documents.set(false)>"経過記録"</button>
            <button id="tab-documents" type="button" class:active=move || documents.get()
                on:click=move |_| documents.set(true)>"退院時サマリー・診療情報提供書"</button>
        </nav>
        // Both stay mounted, so a dictation typed before switching is still there after switching back.
        <div class="tab-panel" class:hidden=move || documents.get()><App/></div>
        <div class="tab-panel" class:hidden=move || !documents.get()><DocumentsView/></div>
    }
}

/// What a list calls a record's kind: its kind file's title (経過記録, 退院時サマリー…); an id this build does not
/// know (a newer workstation's record) as it is.
pub(crate) fn kind_title(id: &str) -> String {
    karte_core::document::kind(id).map_or_else(|_| id.to_string(), |k| k.title.clone())
}

/// Today on the workstation's clock, as the date field's first value. Only the browser knows it (native
/// component tests have no clock here: the field starts empty, which saves under today too).
fn local_today() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        let now = js_sys::Date::new_0();
        format!(
            "{:04}-{:02}-{:02}",
            now.get_full_year(),
            now.get_month() + 1,
            now.get_date()
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    String::new()
}

/// The date field's value: empty is today (the store's default); anything else must be a calendar day, checked
/// here with the store's own type so that the message is the one the CLI gives.
pub(crate) fn clinical_date(field: &str) -> Result<Option<ClinicalDate>, UiError> {
    if field.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(ClinicalDate::parse(field)?))
}

/// Under a finished draft (physicians): keep it as an encounter of a patient, on its clinical date (診療日: the day
/// the note describes, today unless changed).
#[component]
pub fn SaveDraft(draft: DraftOutput, #[prop(into)] text: Signal<String>) -> impl IntoView {
    let ctx = use_context::<SessionCtx>();
    let patient = RwSignal::new(String::new());
    let date = RwSignal::new(local_today());
    let saved = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<UiError>);
    let busy = RwSignal::new(false);
    let draft = StoredValue::new(draft);
    let save = move |_| {
        if busy.get_untracked() {
            return;
        }
        error.set(None);
        let day = match clinical_date(&date.get_untracked()) {
            Ok(day) => day,
            Err(e) => return error.set(Some(e)),
        };
        busy.set(true);
        let (p, t, d) = (
            patient.get_untracked(),
            text.get_untracked(),
            draft.get_value(),
        );
        spawn_local(async move {
            match records::save_draft(&p, day, &t, &d).await {
                Ok(id) => {
                    saved.set(Some(id));
                    if let Some(c) = ctx {
                        c.records_changed.update(|n| *n += 1);
                    }
                }
                Err(e) => match ctx {
                    Some(c) => c.report(error, e),
                    None => error.set(Some(e)),
                },
            }
            busy.set(false);
        });
    };
    view! {
        <section id="save-draft" class="save-draft">
            <label for="patient-ref" class="field-label">"患者ID"</label>
            <input id="patient-ref" prop:value=move || patient.get()
                on:input=move |ev| patient.set(event_target_value(&ev))/>
            <label for="clinical-date" class="field-label">"診療日"</label>
            <input id="clinical-date" type="date" prop:value=move || date.get()
                on:input=move |ev| date.set(event_target_value(&ev))/>
            <button id="save-button" type="button" on:click=save
                disabled=move || busy.get() || saved.with(Option::is_some)>"記録として保存"</button>
            {move || saved.get().map(|id| {
                let attr = id.clone();
                view! { <p id="saved-id" data-id=attr>"保存しました: " {id}</p> }
            })}
            <ErrorBox error=error/>
        </section>
    }
}

/// The physician's saved encounters, newest first, with a sign button on the unsigned ones and the upload state
/// (送信待ち / 送信済み / 送信失敗 + 再送) on the signed ones.
#[component]
pub fn PhysicianRecords() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let list = RwSignal::new(Vec::<EncounterSummary>::new());
    let uploads = RwSignal::new(Vec::<OutboxItem>::new());
    let error = RwSignal::new(None::<UiError>);
    let load_uploads = move || {
        spawn_local(async move {
            match records::upload_items().await {
                Ok(u) => uploads.set(u),
                Err(e) => ctx.report(error, e),
            }
        })
    };
    let load = move || {
        spawn_local(async move {
            match records::encounters().await {
                Ok(l) => list.set(l),
                Err(e) => ctx.report(error, e),
            }
        });
        load_uploads();
    };
    #[cfg(target_arch = "wasm32")]
    Effect::new(move |_| {
        ctx.records_changed.track();
        load();
    });
    // The uploader works in the background: refresh the upload states (only those) every few seconds while the list
    // is shown. Not the encounter list: its version numbers are what the sign buttons sign, and they must change only
    // when the physician acts, never under their hand.
    #[cfg(target_arch = "wasm32")]
    {
        let handle = set_interval_with_handle(load_uploads, std::time::Duration::from_secs(5)).ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    }
    let sign = move |(id, version): (String, i64)| {
        spawn_local(async move {
            match records::sign(&id, version).await {
                Ok(_) => ctx.records_changed.update(|n| *n += 1),
                Err(e) => ctx.report(error, e),
            }
        })
    };
    let retry = Callback::new(move |item: i64| {
        spawn_local(async move {
            match records::upload_retry(item).await {
                Ok(_) => ctx.records_changed.update(|n| *n += 1),
                Err(e) => ctx.report(error, e),
            }
        })
    });
    let _ = load;
    view! {
        <section id="my-records" class="records">
            <h2>"保存した記録"</h2>
            <ErrorBox error=error/>
            <ul class="encounter-list">
                {move || {
                    let items = uploads.get();
                    list.get().into_iter().map(|e| {
                        let id = e.id.clone();
                        let version = e.latest_version;
                        let badge = badge_for(&items, &e.id).cloned();
                        view! {
                            <li class="encounter" data-id=e.id.clone() data-signed=e.signed.to_string() data-kind=e.kind.clone()>
                                <span class="clinical-date">{format!("診療日 {}　", e.clinical_date)}</span>
                                <span class="record-kind">{format!("{}　", kind_title(&e.kind))}</span>
                                <span>{format!("{}　患者 {}　版 {}　", e.id, e.patient_ref, e.latest_version)}</span>
                                {if e.signed {
                                    view! {
                                        <span class="signed">"署名済み"</span>
                                        {badge.map(|item| view! { <UploadBadge item=item on_retry=retry/> })}
                                    }.into_any()
                                } else {
                                    view! { <button class="sign-button" type="button" on:click=move |_| sign((id.clone(), version))>"署名"</button> }.into_any()
                                }}
                            </li>
                        }
                    }).collect_view()
                }}
            </ul>
        </section>
    }
}

/// Nurses: encounters with suggestions to review; one opens beside the list with its note and suggestions.
#[component]
fn ReviewQueue() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let list = RwSignal::new(Vec::<EncounterSummary>::new());
    let open = RwSignal::new(None::<EncounterView>);
    let error = RwSignal::new(None::<UiError>);
    let load_list = move || {
        spawn_local(async move {
            match records::encounters().await {
                Ok(l) => list.set(l),
                Err(e) => ctx.report(error, e),
            }
        })
    };
    let open_encounter = move |id: String| {
        spawn_local(async move {
            match records::encounter(&id).await {
                Ok(v) => open.set(Some(v)),
                Err(e) => ctx.report(error, e),
            }
        })
    };
    #[cfg(target_arch = "wasm32")]
    load_list();
    view! {
        <main id="review-queue" class="columns">
            <div class="column left">
                <h2>"検査提案のレビュー"</h2>
                <ErrorBox error=error/>
                <ul class="encounter-list">
                    {move || list.get().into_iter().map(|e| {
                        let id = e.id.clone();
                        view! {
                            <li class="encounter" data-id=e.id.clone() data-pending=e.pending_suggestions.to_string() data-kind=e.kind.clone()>
                                <button class="open-encounter" type="button" on:click=move |_| open_encounter(id.clone())>
                                    {format!("{}　{}　{}　患者 {}", e.clinical_date, kind_title(&e.kind), e.id, e.patient_ref)}
                                </button>
                                <span class="pending">{format!("未レビュー {} 件", e.pending_suggestions)}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </div>
            <div class="column right">
                {move || open.get().map(|v| view! {
                    <EncounterReview view=v on_reviewed=Callback::new(move |id: String| {
                        open_encounter(id);
                        load_list();
                    })/>
                })}
            </div>
        </main>
    }
}

/// One encounter for review: its latest note and each suggestion with accept / reject and a comment.
#[component]
pub fn EncounterReview(view: EncounterView, on_reviewed: Callback<String>) -> impl IntoView {
    let latest = view
        .versions
        .last()
        .map(|v| v.text.clone())
        .unwrap_or_default();
    let id = view.id.clone();
    view! {
        <section id="encounter-review" class="encounter-review" data-id=view.id.clone()>
            <h2>{format!("診療記録 {}（患者 {}　診療日 {}）", view.id, view.patient_ref, view.clinical_date)}</h2>
            <pre class="note-text">{latest}</pre>
            <h3>"検査提案"</h3>
            {view.suggestions.is_empty().then(|| view! { <p class="empty">"提案はありません"</p> })}
            <ul class="review-list">
                {view.suggestions.into_iter().map(|s| view! {
                    <ReviewItem encounter=id.clone() suggestion=s on_reviewed=on_reviewed/>
                }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn ReviewItem(
    encounter: String,
    suggestion: SuggestionView,
    on_reviewed: Callback<String>,
) -> impl IntoView {
    let ctx = use_context::<SessionCtx>();
    let comment = RwSignal::new(String::new());
    let error = RwSignal::new(None::<UiError>);
    let n = suggestion.id;
    let encounter = StoredValue::new(encounter);
    let decide = move |accept: bool| {
        let (enc, c) = (encounter.get_value(), comment.get_untracked());
        spawn_local(async move {
            match records::review(&enc, n, accept, &c).await {
                Ok(()) => on_reviewed.run(enc),
                Err(e) => match ctx {
                    Some(x) => x.report(error, e),
                    None => error.set(Some(e)),
                },
            }
        })
    };
    let (decision, state) = match &suggestion.review {
        None => ("", "未レビュー".to_string()),
        Some(r) => (
            r.decision.as_str(),
            format!(
                "{}（{}）{}",
                r.decision.label_ja(),
                r.reviewer,
                if r.comment.is_empty() {
                    String::new()
                } else {
                    format!("「{}」", r.comment)
                }
            ),
        ),
    };
    view! {
        <li class="review-item" data-suggestion=n.to_string() data-decision=decision>
            <div class="suggestion-test">{format!("[{n}] {}", suggestion.test)}</div>
            <div class="suggestion-reason">{suggestion.reason}</div>
            <code class="rule-id">{suggestion.rule}</code>
            <div class="review-state">{state}</div>
            <input class="review-comment" placeholder="コメント（却下するときは理由）"
                prop:value=move || comment.get() on:input=move |ev| comment.set(event_target_value(&ev))/>
            <div class="review-actions">
                <button class="accept" type="button" on:click=move |_| decide(true)>"採用"</button>
                <button class="reject" type="button" on:click=move |_| decide(false)>"却下"</button>
            </div>
            <ErrorBox error=error/>
        </li>
    }
}

/// Administrators: accounts, and the audit log with its verification.
#[component]
fn AdminView() -> impl IntoView {
    let ctx = expect_context::<SessionCtx>();
    let users = RwSignal::new(Vec::<UserInfo>::new());
    let entries = RwSignal::new(Vec::<AuditEntry>::new());
    let report = RwSignal::new(None::<AuditReport>);
    let queue = RwSignal::new(None::<UploadOverview>);
    let error = RwSignal::new(None::<UiError>);
    let load = move || {
        spawn_local(async move {
            match records::users().await {
                Ok(u) => users.set(u),
                Err(e) => ctx.report(error, e),
            }
            match records::upload_overview().await {
                Ok(q) => queue.set(Some(q)),
                Err(e) => ctx.report(error, e),
            }
            match records::audit_log().await {
                Ok(l) => entries.set(l),
                Err(e) => ctx.report(error, e),
            }
        })
    };
    #[cfg(target_arch = "wasm32")]
    load();
    let verify = move |_| {
        spawn_local(async move {
            match records::audit_verify().await {
                Ok(r) => report.set(Some(r)),
                Err(e) => ctx.report(error, e),
            }
            load();
        })
    };
    let resume = Callback::new(move |_: ()| {
        spawn_local(async move {
            if let Err(e) = records::upload_resume().await {
                ctx.report(error, e);
            }
            load();
        })
    });
    view! {
        <main id="admin-view" class="columns">
            <div class="column left">
                <h2>"利用者"</h2>
                <ErrorBox error=error/>
                {move || view! { <UsersTable users=users.get()/> }}
                <h2>"クラウド送信"</h2>
                {move || queue.get().map(|q| view! { <QueueHealthPanel overview=q on_resume=resume/> })}
            </div>
            <div class="column right">
                <h2>"監査ログ"</h2>
                <button id="verify-button" type="button" on:click=verify>"改ざん検査"</button>
                {move || report.get().map(|r| view! { <VerifyResult report=r/> })}
                {move || view! { <AuditTable entries=entries.get()/> }}
            </div>
        </main>
    }
}

#[component]
pub fn UsersTable(users: Vec<UserInfo>) -> impl IntoView {
    view! {
        <table id="users" class="users">
            <tr><th>"利用者名"</th><th>"役割"</th><th>"状態"</th><th>"登録日時"</th></tr>
            {users.into_iter().map(|u| {
                let state = if u.disabled { "無効" } else if u.locked { "ロック中" } else { "有効" };
                let name = u.name.clone();
                view! {
                    <tr class="user" data-name=name>
                        <td>{u.name}</td><td>{u.role.label_ja()}</td><td>{state}</td><td>{u.created_at}</td>
                    </tr>
                }
            }).collect_view()}
        </table>
    }
}

#[component]
pub fn VerifyResult(report: AuditReport) -> impl IntoView {
    let intact = report.first_bad.is_none();
    let text = match &report.first_bad {
        None => format!("改ざんは見つかりませんでした（{} 件）", report.entries),
        Some(b) => format!(
            "改ざんを検出しました: 最初の不正な項目は #{}（{}）",
            b.seq,
            b.problem.label_ja()
        ),
    };
    let problem = report.first_bad.as_ref().map(|b| b.problem.as_str());
    view! {
        <p id="verify-result" class:bad=!intact data-intact=intact.to_string() data-problem=problem>{text}</p>
    }
}

#[component]
pub fn AuditTable(entries: Vec<AuditEntry>) -> impl IntoView {
    view! {
        <table id="audit-table" class="audit">
            <tr>
                <th>"#"</th><th>"日時"</th><th>"利用者"</th><th>"役割"</th><th>"操作"</th>
                <th>"記録"</th><th>"結果"</th><th>"端末"</th><th>"詳細"</th>
            </tr>
            {entries.into_iter().rev().map(|e| {
                let (action, outcome) = (e.action.clone(), e.outcome.clone());
                view! {
                <tr class="audit-entry" data-seq=e.seq.to_string() data-action=action data-outcome=outcome>
                    <td>{e.seq}</td><td>{e.ts}</td><td>{e.user.unwrap_or_default()}</td>
                    <td>{e.role.unwrap_or_default()}</td><td>{e.action}</td>
                    <td>{e.encounter.unwrap_or_default()}</td><td>{e.outcome}</td><td>{e.workstation}</td>
                    <td>{e.detail}</td>
                </tr>
                }
            }).collect_view()}
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::clinical_date;

    /// What the date field may hold when 記録として保存 is pressed: empty is today (the store's default), a calendar
    /// day is sent as it is, anything else stays in the window with the store's own code and message.
    #[test]
    fn the_date_field_is_read_with_the_stores_type() {
        assert_eq!(clinical_date("").unwrap(), None);
        assert_eq!(clinical_date("  ").unwrap(), None);
        assert_eq!(
            clinical_date("2026-11-30").unwrap().map(|d| d.to_string()),
            Some("2026-11-30".to_string())
        );
        for bad in ["2026-02-30", "11/30/2026", "2026-11"] {
            assert_eq!(
                clinical_date(bad).unwrap_err().code,
                "input.date_invalid",
                "{bad}"
            );
        }
    }
}

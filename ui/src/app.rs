//! The window's layout and the one piece of behaviour the UI owns: running a draft without freezing the window.

use crate::components::{
    DictationForm, DraftView, EngineIndicator, EngineProblem, ErrorBox, Highlight, ProgressPanel,
    SourceView, StatusBar,
};
use crate::ipc;
use crate::model::{Dictated, DraftOutput, EngineStatus, HearingProgress, ProgressState, UiError};
use crate::recorder::{Recorder, RecorderPanel};
use crate::shell::{PhysicianRecords, SaveDraft, SessionCtx};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The state a draft run touches. Signals are `Copy`, so handlers capture the whole struct.
#[derive(Clone, Copy)]
struct DraftState {
    text: RwSignal<String>,
    no_llm: RwSignal<bool>,
    busy: RwSignal<bool>,
    progress: RwSignal<ProgressState>,
    result: RwSignal<Option<DraftOutput>>,
    /// The dictation exactly as it was sent: the result's spans point into this text, not into whatever the
    /// physician has typed since.
    drafted_text: RwSignal<String>,
    error: RwSignal<Option<UiError>>,
    status: RwSignal<Option<EngineStatus>>,
    /// The 再接続 probe is running (it may wait for the clinic server's health check).
    reconnecting: RwSignal<bool>,
    /// A recording is being heard (音声ファイルを開く); drafting waits for its text.
    hearing: RwSignal<bool>,
    /// The last recording heard: where, and how long, for the line under the box.
    heard: RwSignal<Option<Dictated>>,
    /// A recording made in the window is heard in parts: how far, and the text so far.
    hearing_progress: RwSignal<Option<HearingProgress>>,
    highlight: Highlight,
}

impl DraftState {
    fn new() -> Self {
        DraftState {
            text: RwSignal::new(String::new()),
            no_llm: RwSignal::new(false),
            busy: RwSignal::new(false),
            progress: RwSignal::new(ProgressState::default()),
            result: RwSignal::new(None),
            drafted_text: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            status: RwSignal::new(None),
            reconnecting: RwSignal::new(false),
            hearing: RwSignal::new(false),
            heard: RwSignal::new(None),
            hearing_progress: RwSignal::new(None),
            highlight: Highlight::new(),
        }
    }

    fn refresh_status(self) {
        spawn_local(async move {
            // A failing status call only leaves the status line at 確認中; drafting still works.
            if let Ok(s) = ipc::engine_status().await {
                self.status.set(Some(s));
            }
        });
    }

    fn reconnect(self) {
        if self.reconnecting.get_untracked() {
            return;
        }
        self.reconnecting.set(true);
        spawn_local(async move {
            // Like the status call: a failure leaves the indicator as it was.
            if let Ok(s) = ipc::reconnect_engine().await {
                self.status.set(Some(s));
            }
            self.reconnecting.set(false);
        });
    }

    /// Has the recording heard and appends its text to the dictation box (after what is typed there, on a new line):
    /// the physician reads and edits it before drafting, as with typed text.
    fn hear(self, file: web_sys::File) {
        if self.busy.get_untracked() || self.hearing.get_untracked() {
            return;
        }
        self.hearing.set(true);
        self.error.set(None);
        self.heard.set(None);
        spawn_local(async move {
            match ipc::transcribe_audio(&file).await {
                Ok(d) => self.take_heard(d),
                Err(e) => self.error.set(Some(e)),
            }
            self.hearing.set(false);
        });
    }

    /// A recording's text goes after what is typed in the box, on a new line.
    fn take_heard(self, d: Dictated) {
        self.text.update(|t| {
            if !t.trim().is_empty() {
                t.push('\n');
            }
            t.push_str(&d.text);
        });
        self.heard.set(Some(d));
    }

    fn start_draft(self) {
        if self.busy.get_untracked() || self.hearing.get_untracked() {
            return;
        }
        let text = self.text.get_untracked();
        let no_llm = self.no_llm.get_untracked();
        self.busy.set(true);
        self.error.set(None);
        self.result.set(None);
        self.highlight.clear();
        self.progress.set(ProgressState::default());
        spawn_local(async move {
            match ipc::draft(&text, no_llm).await {
                Ok(out) => {
                    self.drafted_text.set(text);
                    self.result.set(Some(out));
                }
                Err(e) => self.error.set(Some(e)),
            }
            self.busy.set(false);
            self.refresh_status();
        });
    }
}

/// Under the dictation box: that a recording is being heard (it takes longer than the recording on a CPU), with the
/// text so far when it is heard in parts, then where it was heard and how much speech it held.
#[component]
pub fn HearingLine(
    hearing: RwSignal<bool>,
    heard: RwSignal<Option<Dictated>>,
    progress: RwSignal<Option<HearingProgress>>,
) -> impl IntoView {
    move || {
        if hearing.get() {
            let so_far = progress.get().map(|p| {
                let line = format!("{:.0} / {:.0} 秒を文字にしました", p.heard_s, p.total_s);
                view! {
                    <p id="hearing-progress" class="hearing">{line}</p>
                    <p id="hearing-text" class="hearing-text">{p.text}</p>
                }
            });
            Some(view! {
                <p id="hearing" class="hearing">"音声を文字にしています…（録音の長さの1〜2倍の時間がかかります）"</p>
                {so_far}
            }.into_any())
        } else {
            heard.get().map(|d| {
                let line = format!(
                    "音声から入力しました（{}で認識・音声 {:.1} 秒）。内容を確認してから下書きしてください。",
                    d.engine.label_ja(),
                    d.speech_s
                );
                // Each replacement the recogniser made, so the physician checks exactly those words.
                let fixes = (!d.corrections.is_empty()).then(|| {
                    let list = d
                        .corrections
                        .iter()
                        .map(|c| format!("「{}」→「{}」", c.from, c.to))
                        .collect::<Vec<_>>()
                        .join("、");
                    view! {
                        <p id="heard-corrections" class="heard">
                            {format!("聞き取りを医学用語に置き換えた箇所: {list}。違っていれば直してください。")}
                        </p>
                    }
                });
                view! { <p id="heard" class="heard">{line}</p> {fixes} }.into_any()
            })
        }
    }
}

#[component]
pub fn App() -> impl IntoView {
    let st = DraftState::new();
    let rec = Recorder::new(
        st.hearing,
        st.error,
        Callback::new(move |d| st.take_heard(d)),
    );
    let signed_in = use_context::<SessionCtx>().is_some();

    // The microphones, F9, and the recordings a crash left: only in the window, and only for a signed-in user.
    #[cfg(target_arch = "wasm32")]
    if signed_in {
        rec.refresh_pending();
        rec.refresh_microphones();
        rec.watch_devices();
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() != "F9" {
                return;
            }
            // F9 starts a recording only where its words will land, the dictation box on screen (not behind the
            // documents tab); a live recording it stops whatever is shown.
            let dictation_shown = document()
                .get_element_by_id("dictation")
                .is_some_and(|e| matches!(e.closest(".hidden"), Ok(None)));
            if dictation_shown || rec.recording() {
                ev.prevent_default();
                rec.toggle();
            }
        });
        on_cleanup(move || {
            handle.remove();
            rec.release();
        });
    }

    // Subscribing needs the Tauri runtime, which only exists in the wasm build inside the window.
    #[cfg(target_arch = "wasm32")]
    spawn_local(async move {
        let progress = st.progress;
        if let Err(e) = ipc::listen_progress(move |p| progress.update(|s| s.apply(p))).await {
            st.error.set(Some(e));
        }
        if let Err(e) = ipc::listen_status(move |s| st.status.set(Some(s))).await {
            st.error.set(Some(e));
        }
        let hp = st.hearing_progress;
        if let Err(e) = ipc::listen_hearing(move |p| hp.set(Some(p))).await {
            st.error.set(Some(e));
        }
        st.refresh_status();
    });

    // The parts' text belongs to the hearing under way; the next one starts from nothing.
    Effect::new(move |_| {
        if !st.hearing.get() {
            st.hearing_progress.set(None);
        }
    });

    let last_engine =
        Signal::derive(move || st.result.with(|r| r.as_ref().map(|d| d.engine.clone())));
    let source_text = Signal::derive(move || {
        if st.result.with(Option::is_some) {
            st.drafted_text.get()
        } else {
            st.text.get()
        }
    });
    let spans = Signal::derive(move || st.highlight.spans());

    // The evidence may be far down a long dictation: bring the first mark into view. The columns scroll
    // separately, so this never moves the sentence under the pointer (which would re-trigger the hover).
    #[cfg(target_arch = "wasm32")]
    Effect::new(move |_| {
        if spans.with(Vec::is_empty) {
            return;
        }
        // After this frame, so the marks for the new spans are in the DOM.
        request_animation_frame(|| {
            if let Ok(Some(mark)) = document().query_selector("#source-view mark") {
                let opts = web_sys::ScrollIntoViewOptions::new();
                opts.set_block(web_sys::ScrollLogicalPosition::Nearest);
                mark.scroll_into_view_with_scroll_into_view_options(&opts);
            }
        });
    });

    view! {
        <header class="app-header">
            <h1>"Karte — SOAP下書き支援"</h1>
            <StatusBar status=st.status last=last_engine/>
            <EngineIndicator
                status=st.status
                reconnecting=st.reconnecting
                on_reconnect=Callback::new(move |_| st.reconnect())
            />
        </header>
        <EngineProblem status=st.status/>
        <main class="columns">
            <div class="column left">
                <DictationForm
                    text=st.text
                    no_llm=st.no_llm
                    busy=Signal::derive(move || st.busy.get() || st.hearing.get())
                    on_submit=Callback::new(move |_| st.start_draft())
                    on_audio=Callback::new(move |f| st.hear(f))
                />
                {signed_in.then(|| view! {
                    <RecorderPanel rec=rec busy=Signal::derive(move || st.busy.get() || st.hearing.get())/>
                })}
                <HearingLine hearing=st.hearing heard=st.heard progress=st.hearing_progress/>
                <ErrorBox error=st.error/>
                <ProgressPanel
                    busy=st.busy
                    progress=st.progress
                    on_cancel=Callback::new(move |_| {
                        spawn_local(async move {
                            // The draft call itself reports the outcome (engine.cancelled, or its result if it had
                            // already finished), so a failed cancel needs no message of its own.
                            let _ = ipc::cancel_draft().await;
                        })
                    })
                />
                <h2 class="source-heading">"口述（根拠の表示）"</h2>
                <SourceView text=source_text spans=spans/>
            </div>
            <div class="column right">
                {move || match st.result.get() {
                    Some(d) => view! {
                        <DraftView draft=d.clone() highlight=st.highlight/>
                        <SaveDraft draft=d text=st.drafted_text/>
                    }
                    .into_any(),
                    None => view! {
                        <p class="placeholder">"口述を入力して「下書き作成」を押すと、SOAP形式の下書きと検査提案がここに表示されます。"</p>
                    }
                    .into_any(),
                }}
                // Signed in (not in the native component tests): the physician's saved records, to sign.
                {use_context::<SessionCtx>().map(|_| view! { <PhysicianRecords/> })}
            </div>
        </main>
    }
}

//! 録音: dictating into the window's microphone.
//!
//! The window only captures: about once a second it sends the audio so far to the app, which keeps it in the
//! encrypted record store before answering (`Store::recording_append`). A crash of the app, a closed window, an
//! idle sign-out or a dead worker therefore loses at most the last second, and what was kept is offered again at the
//! next sign-in (前回の録音). Stopping has the recording heard where files are heard (clinic server or this
//! workstation) and its text appended to the dictation box, as with 音声ファイルを開く.
//!
//! Pieces go out one at a time, in order: the store numbers them as they arrive, so two in flight could swap.

use crate::ipc;
use crate::model::{Dictated, UiError};
use karte_ipc::voice::{level, to_pcm16, SilenceWatch, CAPTURE_RATE};
use karte_ipc::Recording;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// About a second of 16-bit audio at the store's rate: what a crash can cost at most.
const PIECE_BYTES: usize = 2 * CAPTURE_RATE as usize;

/// What the recorder shows; `Copy`, so handlers capture the whole struct.
#[derive(Clone, Copy)]
pub struct Recorder {
    /// The recording being made (its store id).
    current: RwSignal<Option<String>>,
    /// Starting or stopping is under way (the microphone is being opened, the last pieces sent).
    switching: RwSignal<bool>,
    paused: RwSignal<bool>,
    /// Audio captured in this recording, in seconds.
    seconds: RwSignal<f64>,
    level: RwSignal<f32>,
    silent_too_long: RwSignal<bool>,
    /// `(device id, label)` of the microphones the system offers; labels appear once one was allowed.
    microphones: RwSignal<Vec<(String, String)>>,
    microphone: RwSignal<String>,
    /// The physician's recordings kept from earlier (a crash, a failed hearing).
    pending: RwSignal<Vec<Recording>>,
    /// Shared with the dictation box: a recording is being heard.
    hearing: RwSignal<bool>,
    error: RwSignal<Option<UiError>>,
    on_heard: Callback<Dictated>,
}

/// The pieces waiting to be kept, and whether the recording ends once they are.
#[derive(Default)]
struct Outbox {
    buffer: Vec<u8>,
    queue: VecDeque<Vec<u8>>,
    sending: bool,
    finish: bool,
    failed: bool,
}

/// Per recording, on the page only: the outbox and the silence rule.
struct Take {
    id: String,
    outbox: RefCell<Outbox>,
    silence: RefCell<SilenceWatch>,
}

impl Take {
    /// Queues what the buffer holds, short of a whole piece (at a pause or the stop).
    fn flush(&self) {
        let mut o = self.outbox.borrow_mut();
        let rest = std::mem::take(&mut o.buffer);
        if !rest.is_empty() {
            o.queue.push_back(rest);
        }
    }
}

thread_local! {
    /// The live take and its microphone. Browser objects are not `Send`, so they live here, not in signals.
    static TAKE: RefCell<Option<(Rc<Take>, capture::Capture)>> = const { RefCell::new(None) };
}

impl Recorder {
    pub fn new(
        hearing: RwSignal<bool>,
        error: RwSignal<Option<UiError>>,
        on_heard: Callback<Dictated>,
    ) -> Self {
        Recorder {
            current: RwSignal::new(None),
            switching: RwSignal::new(false),
            paused: RwSignal::new(false),
            seconds: RwSignal::new(0.0),
            level: RwSignal::new(0.0),
            silent_too_long: RwSignal::new(false),
            microphones: RwSignal::new(Vec::new()),
            microphone: RwSignal::new(String::new()),
            pending: RwSignal::new(Vec::new()),
            hearing,
            error,
            on_heard,
        }
    }

    pub fn recording(&self) -> bool {
        self.current.with(Option::is_some)
    }

    /// 録音 / 停止 (the button and F9).
    pub fn toggle(self) {
        if self.switching.get_untracked() {
            return;
        }
        if self.current.with_untracked(Option::is_some) {
            self.stop();
        } else if !self.hearing.get_untracked() {
            self.start();
        }
    }

    fn start(self) {
        self.switching.set(true);
        self.error.set(None);
        let device = self.microphone.get_untracked();
        spawn_local(async move {
            let rec = match ipc::recording_start().await {
                Ok(r) => r,
                Err(e) => {
                    self.error.set(Some(e));
                    self.switching.set(false);
                    return;
                }
            };
            let take = Rc::new(Take {
                id: rec.id.clone(),
                outbox: RefCell::new(Outbox::default()),
                silence: RefCell::new(SilenceWatch::default()),
            });
            let on_block = {
                let take = Rc::clone(&take);
                move |samples: &[f32], rate: f32| self.heard_block(&take, samples, rate)
            };
            match capture::open(&device, on_block).await {
                Ok(c) => {
                    TAKE.with(|t| *t.borrow_mut() = Some((take, c)));
                    self.seconds.set(0.0);
                    self.paused.set(false);
                    self.silent_too_long.set(false);
                    self.current.set(Some(rec.id));
                    // Now that a microphone was allowed, the list has names.
                    self.refresh_microphones();
                }
                Err(e) => {
                    // Nothing was recorded: the empty recording is not worth offering later.
                    let _ = ipc::recording_discard(&rec.id).await;
                    self.error.set(Some(e));
                }
            }
            self.switching.set(false);
        });
    }

    /// A block of samples from the microphone: meter, silence rule, and the audio into the outbox.
    fn heard_block(self, take: &Rc<Take>, samples: &[f32], rate: f32) {
        if self.paused.get_untracked() {
            return;
        }
        let lvl = level(samples);
        let secs = samples.len() as f64 / rate as f64;
        self.level.set(lvl);
        self.seconds.update(|s| *s += secs);
        let alert = take.silence.borrow_mut().push(lvl, secs);
        if alert != self.silent_too_long.get_untracked() {
            self.silent_too_long.set(alert);
        }
        let full = {
            let mut o = take.outbox.borrow_mut();
            o.buffer.extend_from_slice(&to_pcm16(samples, rate));
            if o.buffer.len() >= PIECE_BYTES {
                let piece = std::mem::take(&mut o.buffer);
                o.queue.push_back(piece);
                true
            } else {
                false
            }
        };
        if full {
            self.send(Rc::clone(take));
        }
    }

    /// Sends the queued pieces one after another; when the take is finished and everything is kept, stops it in
    /// the store and has it heard.
    fn send(self, take: Rc<Take>) {
        {
            let mut o = take.outbox.borrow_mut();
            if o.sending || o.failed {
                return;
            }
            o.sending = true;
        }
        spawn_local(async move {
            loop {
                let next = take.outbox.borrow_mut().queue.pop_front();
                let Some(piece) = next else { break };
                if let Err(e) = ipc::recording_append(&take.id, &piece).await {
                    // Kept so far is kept: close the microphone and offer the recording in the list.
                    take.outbox.borrow_mut().failed = true;
                    self.close_microphone();
                    self.error.set(Some(e));
                    self.refresh_pending();
                    return;
                }
            }
            let finish = {
                let mut o = take.outbox.borrow_mut();
                o.sending = false;
                o.finish
            };
            if finish {
                match ipc::recording_stop(&take.id).await {
                    Ok(_) => self.transcribe(take.id.clone()),
                    Err(e) => {
                        self.error.set(Some(e));
                        self.refresh_pending();
                    }
                }
                self.switching.set(false);
            }
        });
    }

    fn stop(self) {
        let Some((take, capture)) = TAKE.with(|t| t.borrow_mut().take()) else {
            return;
        };
        self.switching.set(true);
        capture.close();
        self.reset_live();
        take.flush();
        take.outbox.borrow_mut().finish = true;
        self.send(take);
    }

    /// The microphone off and the live display cleared, without touching what was kept.
    fn close_microphone(self) {
        if let Some((_, capture)) = TAKE.with(|t| t.borrow_mut().take()) {
            capture.close();
        }
        self.reset_live();
        self.switching.set(false);
    }

    fn reset_live(self) {
        self.current.set(None);
        self.paused.set(false);
        self.level.set(0.0);
        self.silent_too_long.set(false);
    }

    /// 一時停止 / 再開: the microphone is suspended, the recording stays open; what was heard so far is kept now.
    pub fn toggle_pause(self) {
        let paused = !self.paused.get_untracked();
        let take = TAKE.with(|t| {
            t.borrow().as_ref().map(|(take, capture)| {
                capture.pause(paused);
                Rc::clone(take)
            })
        });
        self.paused.set(paused);
        self.level.set(0.0);
        if let (true, Some(take)) = (paused, take) {
            take.flush();
            self.send(take);
        }
    }

    /// Has a kept recording heard; its text goes to the dictation box. A failure leaves it in the list.
    pub fn transcribe(self, id: String) {
        if self.hearing.get_untracked() {
            return;
        }
        self.hearing.set(true);
        self.error.set(None);
        spawn_local(async move {
            match ipc::recording_transcribe(&id).await {
                Ok(d) => self.on_heard.run(d),
                Err(e) => self.error.set(Some(e)),
            }
            self.hearing.set(false);
            self.refresh_pending();
        });
    }

    pub fn discard(self, id: String) {
        spawn_local(async move {
            if let Err(e) = ipc::recording_discard(&id).await {
                self.error.set(Some(e));
            }
            self.refresh_pending();
        });
    }

    /// The recordings kept from earlier, minus the one being made.
    pub fn refresh_pending(self) {
        spawn_local(async move {
            // Without a session (the native tests, or signed out) there is nothing to offer.
            if let Ok(mut list) = ipc::recordings_pending().await {
                let live = self.current.get_untracked();
                list.retain(|r| Some(&r.id) != live.as_ref());
                self.pending.set(list);
            }
        });
    }

    pub fn refresh_microphones(self) {
        spawn_local(async move {
            if let Ok(list) = capture::microphones().await {
                if !list
                    .iter()
                    .any(|(id, _)| *id == self.microphone.get_untracked())
                {
                    self.microphone.set(String::new());
                }
                self.microphones.set(list);
            }
        });
    }

    /// The window leaves this view (sign-out): the microphone closes; what was kept is offered at the next sign-in.
    pub fn release(self) {
        if let Some((_, capture)) = TAKE.with(|t| t.borrow_mut().take()) {
            capture.close();
        }
    }

    /// Microphones plugged in or out while the window is open show up without a restart.
    pub fn watch_devices(self) {
        capture::on_device_change(move || self.refresh_microphones());
    }
}

/// m:ss for the 録音中 line.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// When a kept recording began, in the workstation's local time (the store keeps UTC).
fn when_local(at: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(at));
        if !d.get_time().is_nan() {
            return format!(
                "{}/{} {:02}:{:02}",
                d.get_month() + 1,
                d.get_date(),
                d.get_hours(),
                d.get_minutes()
            );
        }
    }
    at.get(5..16)
        .map(|s| s.replacen('-', "/", 1).replacen('T', " ", 1))
        .unwrap_or_default()
}

/// A kept recording as the list names it: when it began and how long it is, and whether a crash cut it off.
fn describe(r: &Recording) -> String {
    let state = if r.open { "・中断" } else { "" };
    format!(
        "{} の録音（{}{state}）",
        when_local(&r.started_at),
        clock(r.seconds)
    )
}

/// The 録音 row under the dictation box: button, pause, microphone chooser, level meter, and while recording the
/// 録音中 line; the silence alert; the recordings kept from earlier.
#[component]
pub fn RecorderPanel(rec: Recorder, #[prop(into)] busy: Signal<bool>) -> impl IntoView {
    let label = move || {
        if rec.recording() {
            "■ 停止"
        } else {
            "● 録音"
        }
    };
    view! {
        <div class="recorder">
            <button
                type="button"
                id="record"
                class:active=move || rec.recording()
                title="録音を開始・停止します（F9）"
                disabled=move || rec.switching.get() || (busy.get() && !rec.recording())
                on:click=move |_| rec.toggle()
            >
                {label}
            </button>
            <button
                type="button"
                id="pause"
                disabled=move || !rec.recording()
                on:click=move |_| rec.toggle_pause()
            >
                {move || if rec.paused.get() { "再開" } else { "一時停止" }}
            </button>
            <label class="microphone">
                "マイク"
                <select
                    id="microphone"
                    disabled=move || rec.recording()
                    on:change=move |ev| rec.microphone.set(event_target_value(&ev))
                >
                    <option value="" selected=move || rec.microphone.with(String::is_empty)>"既定のマイク"</option>
                    <For
                        each=move || rec.microphones.get()
                        key=|(id, label)| (id.clone(), label.clone())
                        children=move |(id, label)| {
                            let chosen = id.clone();
                            view! {
                                <option value=id selected=move || rec.microphone.with(|m| *m == chosen)>{label}</option>
                            }
                        }
                    />
                </select>
            </label>
            <meter id="level" min="0" max="1" low="0.25" prop:value=move || rec.level.get() as f64 title="入力音量"></meter>
            {move || rec.recording().then(|| {
                let line = if rec.paused.get() {
                    format!("一時停止中 {}", clock(rec.seconds.get()))
                } else {
                    format!("● 録音中 {}", clock(rec.seconds.get()))
                };
                view! { <span id="recording-indicator" class="recording-indicator" class:paused=move || rec.paused.get()>{line}</span> }
            })}
        </div>
        {move || rec.silent_too_long.get().then(|| view! {
            <p id="silence-alert" class="silence-alert" role="alert">
                "録音が5分間無音のまま続いています。口述が終わっていれば「停止」を、休むときは「一時停止」を押してください。"
            </p>
        })}
        {move || {
            let list = rec.pending.get();
            (!list.is_empty()).then(|| view! {
                <div id="pending-recordings" class="pending-recordings">
                    <p>"文字にしていない録音があります。"</p>
                    <ul>
                        {list.into_iter().map(|r| {
                            let (a, b) = (r.id.clone(), r.id.clone());
                            view! {
                                <li class="pending-recording">
                                    <span>{describe(&r)}</span>
                                    <button type="button" class="pending-transcribe"
                                        disabled=move || rec.hearing.get() || busy.get()
                                        on:click=move |_| rec.transcribe(a.clone())>"文字にする"</button>
                                    <button type="button" class="pending-discard"
                                        on:click=move |_| rec.discard(b.clone())>"破棄"</button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
            })
        }}
    }
}

/// The browser side of the microphone. Only in the window (wasm); native builds render the controls without it.
#[cfg(target_arch = "wasm32")]
mod capture {
    use crate::model::UiError;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    /// An open microphone feeding the page: stream, audio graph, and the callback that keeps it alive.
    pub struct Capture {
        stream: web_sys::MediaStream,
        ctx: web_sys::AudioContext,
        node: web_sys::ScriptProcessorNode,
        _on_audio: Closure<dyn FnMut(web_sys::AudioProcessingEvent)>,
    }

    fn denied(e: JsValue) -> UiError {
        let name = js_sys::Reflect::get(&e, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        let message = match name.as_str() {
            "NotAllowedError" | "SecurityError" => {
                "マイクの使用が許可されていません。システム管理者に連絡してください。"
            }
            "NotFoundError" | "OverconstrainedError" => {
                "マイクが見つかりません。接続を確かめ、「マイク」で選び直してください。"
            }
            "NotReadableError" => {
                "マイクを開けませんでした。ほかのアプリが使っていないか確かめてください。"
            }
            _ => "マイクを開けませんでした。接続を確かめてから、もう一度お試しください。",
        };
        UiError::ui("audio.microphone", message)
    }

    fn devices() -> Result<web_sys::MediaDevices, UiError> {
        web_sys::window()
            .and_then(|w| w.navigator().media_devices().ok())
            .ok_or_else(|| {
                UiError::ui(
                    "audio.microphone",
                    "この画面ではマイクを使えません。音声ファイルを開いて入力してください。",
                )
            })
    }

    /// Opens `device` (empty: the system's default) and calls `on_block(samples, rate)` for each block heard.
    pub async fn open(
        device: &str,
        mut on_block: impl FnMut(&[f32], f32) + 'static,
    ) -> Result<Capture, UiError> {
        let md = devices()?;
        let track = web_sys::MediaTrackConstraints::new();
        if !device.is_empty() {
            track.set_device_id_str(device);
        }
        // Dictation at a desk: let the browser take out the room, as phones' dictation does.
        track.set_noise_suppression_bool(true);
        track.set_echo_cancellation_bool(true);
        let constraints = web_sys::MediaStreamConstraints::new();
        constraints.set_audio(&track);
        let promise = md
            .get_user_media_with_constraints(&constraints)
            .map_err(denied)?;
        let stream: web_sys::MediaStream = JsFuture::from(promise)
            .await
            .map_err(denied)?
            .unchecked_into();
        let fail = |_| {
            UiError::ui(
                "audio.microphone",
                "録音を始められませんでした。もう一度お試しください。",
            )
        };
        let ctx = web_sys::AudioContext::new().map_err(fail)?;
        let source = ctx.create_media_stream_source(&stream).map_err(fail)?;
        // 4096 frames: about a tenth of a second at 44.1–48 kHz, often enough for a lively meter.
        let node = ctx
            .create_script_processor_with_buffer_size_and_number_of_input_channels_and_number_of_output_channels(
                4096, 1, 1,
            )
            .map_err(fail)?;
        let on_audio = Closure::<dyn FnMut(web_sys::AudioProcessingEvent)>::new(
            move |ev: web_sys::AudioProcessingEvent| {
                if let Ok(buf) = ev.input_buffer() {
                    if let Ok(samples) = buf.get_channel_data(0) {
                        on_block(&samples, buf.sample_rate());
                    }
                }
            },
        );
        node.set_onaudioprocess(Some(on_audio.as_ref().unchecked_ref()));
        source.connect_with_audio_node(&node).map_err(fail)?;
        // A script node only runs when its output goes somewhere; it writes silence, so nothing is heard.
        node.connect_with_audio_node(&ctx.destination())
            .map_err(fail)?;
        Ok(Capture {
            stream,
            ctx,
            node,
            _on_audio: on_audio,
        })
    }

    impl Capture {
        pub fn pause(&self, paused: bool) {
            let _ = if paused {
                self.ctx.suspend()
            } else {
                self.ctx.resume()
            };
        }

        /// Stops the tracks (the system's microphone indicator goes off) and the audio graph.
        pub fn close(self) {
            self.node.set_onaudioprocess(None);
            for t in self.stream.get_tracks().iter() {
                if let Ok(t) = t.dyn_into::<web_sys::MediaStreamTrack>() {
                    t.stop();
                }
            }
            let _ = self.ctx.close();
        }
    }

    /// The audio inputs: `(device id, label)`, the label filled in once the page was allowed a microphone.
    pub async fn microphones() -> Result<Vec<(String, String)>, UiError> {
        let md = devices()?;
        let list = JsFuture::from(md.enumerate_devices().map_err(denied)?)
            .await
            .map_err(denied)?;
        let list: js_sys::Array = list.unchecked_into();
        Ok(list
            .iter()
            .filter_map(|d| d.dyn_into::<web_sys::MediaDeviceInfo>().ok())
            .filter(|d| d.kind() == web_sys::MediaDeviceKind::Audioinput)
            .filter(|d| !d.device_id().is_empty() && d.device_id() != "default")
            .enumerate()
            .map(|(i, d)| {
                let label = if d.label().is_empty() {
                    format!("マイク {}", i + 1)
                } else {
                    d.label()
                };
                (d.device_id(), label)
            })
            .collect())
    }

    pub fn on_device_change(f: impl Fn() + 'static) {
        if let Ok(md) = devices() {
            let cb = Closure::<dyn Fn()>::new(f);
            md.set_ondevicechange(Some(cb.as_ref().unchecked_ref()));
            // Lives as long as the page, like the event listeners.
            cb.forget();
        }
    }
}

/// Outside the window there is no microphone; the controls still render (the native component tests).
#[cfg(not(target_arch = "wasm32"))]
mod capture {
    use crate::model::UiError;

    pub struct Capture;

    fn unavailable() -> UiError {
        UiError::ui("audio.microphone", "この画面ではマイクを使えません。")
    }

    pub async fn open(
        _device: &str,
        _on_block: impl FnMut(&[f32], f32) + 'static,
    ) -> Result<Capture, UiError> {
        Err(unavailable())
    }

    impl Capture {
        pub fn pause(&self, _paused: bool) {}
        pub fn close(self) {}
    }

    pub async fn microphones() -> Result<Vec<(String, String)>, UiError> {
        Err(unavailable())
    }

    pub fn on_device_change(_f: impl Fn() + 'static) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_recordings_are_named_by_when_and_how_long() {
        let cases = [
            (
                "2026-12-07T05:30:12.000Z",
                25.4,
                false,
                "12/07 05:30 の録音（0:25）",
            ),
            (
                "2026-12-07T14:02:00.000Z",
                754.0,
                true,
                "12/07 14:02 の録音（12:34・中断）",
            ),
        ];
        for (at, secs, open, want) in cases {
            let r = Recording {
                id: "x".into(),
                started_at: at.into(),
                seconds: secs,
                open,
            };
            assert_eq!(describe(&r), want);
        }
        assert_eq!(clock(59.9), "0:59");
        assert_eq!(clock(600.0), "10:00");
    }

    #[cfg(feature = "ssr")]
    fn render(rec: Recorder) -> String {
        let owner = Owner::new();
        owner.with(|| {
            view! { <RecorderPanel rec=rec busy=false/> }
                .into_view()
                .to_html()
        })
    }

    #[cfg(feature = "ssr")]
    fn recorder() -> Recorder {
        Recorder::new(
            RwSignal::new(false),
            RwSignal::new(None),
            Callback::new(|_| {}),
        )
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_recorder_row_shows_its_controls_and_what_is_under_way() {
        let owner = Owner::new();
        owner.set();
        // Idle: record, pause off, the default microphone, an empty meter; nothing recording, nothing kept.
        let rec = recorder();
        let html = render(rec);
        for part in [
            "id=\"record\"",
            "● 録音",
            "id=\"pause\"",
            "id=\"microphone\"",
            "既定のマイク",
            "id=\"level\"",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        for absent in ["recording-indicator", "silence-alert", "pending-recordings"] {
            assert!(!html.contains(absent), "{absent} in {html}");
        }

        // Recording, paused, silent too long, microphones listed, and two recordings kept from a crash.
        let rec = recorder();
        rec.current.set(Some("r1".into()));
        rec.seconds.set(75.0);
        rec.silent_too_long.set(true);
        rec.microphones
            .set(vec![("usb-1".into(), "USB ヘッドセット".into())]);
        rec.pending.set(vec![
            Recording {
                id: "a".into(),
                started_at: "2026-12-07T05:30:12.000Z".into(),
                seconds: 25.0,
                open: true,
            },
            Recording {
                id: "b".into(),
                started_at: "2026-12-07T06:00:00.000Z".into(),
                seconds: 3.0,
                open: false,
            },
        ]);
        let html = render(rec);
        for part in [
            "■ 停止",
            "● 録音中 1:15",
            "USB ヘッドセット",
            "録音が5分間無音のまま続いています",
            "文字にしていない録音があります",
            "12/07 05:30 の録音（0:25・中断）",
            "12/07 06:00 の録音（0:03）",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
        assert_eq!(html.matches("class=\"pending-transcribe\"").count(), 2);
        rec.paused.set(true);
        assert!(render(rec).contains("一時停止中 1:15"));
    }
}

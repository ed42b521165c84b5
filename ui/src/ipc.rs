//! The Tauri IPC calls, the only place that touches `window.__TAURI__`.
//!
//! Bindings use `catch`: a rejected promise (the backend's `{code, message}`, or a missing `__TAURI__` when the page
//! is opened outside the app) must come back as an `Err`, not as a panic that kills the whole UI. Values cross as
//! JSON text so that they are parsed by the same serde code as everywhere else (no JS-number corner cases).

use crate::model::{Dictated, DraftOutput, EngineStatus, Progress, UiError};
use karte_ipc::voice::RECORDING_HEADER;
use karte_ipc::{command, event, HearingProgress, Recording};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], catch)]
    async fn invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;

    /// The same `invoke` with a binary body: Tauri sends a `Uint8Array` as the raw request body, not as JSON.
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], catch, js_name = invoke)]
    async fn invoke_raw(cmd: &str, body: js_sys::Uint8Array) -> Result<JsValue, JsValue>;

    /// With options: `{headers}` name what the raw body belongs to (a piece of a recording).
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], catch, js_name = invoke)]
    async fn invoke_raw_with(
        cmd: &str,
        body: js_sys::Uint8Array,
        options: JsValue,
    ) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "event"], catch)]
    async fn listen(event: &str, handler: &js_sys::Function) -> Result<JsValue, JsValue>;
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, UiError> {
    let json = serde_json::to_string(value)
        .map_err(|e| UiError::ui("ui.encode", format!("送信データを作れませんでした: {e}")))?;
    js_sys::JSON::parse(&json).map_err(|_| UiError::ui("ui.encode", "送信データを作れませんでした"))
}

fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, UiError> {
    let json: String = js_sys::JSON::stringify(value)
        .map(String::from)
        .map_err(|_| UiError::ui("ui.decode", "応答を読み取れませんでした"))?;
    serde_json::from_str(&json)
        .map_err(|e| UiError::ui("ui.decode", format!("応答の形式が想定と違います: {e}")))
}

/// A rejection is the backend's `{code, message}` when the command ran, a plain string when Tauri itself refused
/// (unknown command, missing permission), and a JS `TypeError` when `__TAURI__` is absent.
fn to_error(err: JsValue) -> UiError {
    if let Ok(e) = from_js::<UiError>(&err) {
        return e;
    }
    if let Some(s) = err.as_string() {
        return UiError::ui(
            "ui.ipc",
            format!("デスクトップアプリとの通信に失敗しました: {s}"),
        );
    }
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return UiError::ui(
            "ui.ipc",
            format!(
                "デスクトップアプリとの通信に失敗しました: {}",
                String::from(e.message())
            ),
        );
    }
    UiError::ui("ui.ipc", "デスクトップアプリとの通信に失敗しました")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DraftArgs<'a> {
    text: &'a str,
    no_llm: bool,
}

/// Runs the `draft` command. Tauri 2 expects command arguments in camelCase (`noLlm`).
pub async fn draft(text: &str, no_llm: bool) -> Result<DraftOutput, UiError> {
    let args = to_js(&DraftArgs { text, no_llm })?;
    let out = invoke(command::DRAFT, args).await.map_err(to_error)?;
    from_js(&out)
}

pub async fn engine_status() -> Result<EngineStatus, UiError> {
    let out = invoke(command::ENGINE_STATUS, JsValue::UNDEFINED)
        .await
        .map_err(to_error)?;
    from_js(&out)
}

/// Probes the clinic server now (再接続) and returns the new status.
pub async fn reconnect_engine() -> Result<EngineStatus, UiError> {
    let out = invoke(command::RECONNECT_ENGINE, JsValue::UNDEFINED)
        .await
        .map_err(to_error)?;
    from_js(&out)
}

/// Asks the backend to stop the running draft; the pending `draft` call then fails with `engine.cancelled`.
pub async fn cancel_draft() -> Result<(), UiError> {
    invoke(command::CANCEL_DRAFT, JsValue::UNDEFINED)
        .await
        .map_err(to_error)
        .map(drop)
}

/// Sends an audio file the physician opened to the app, which has it heard (clinic server or this workstation) and
/// returns the text. A file over the limit is refused here, before 32 MB are read into the page.
pub async fn transcribe_audio(file: &web_sys::File) -> Result<Dictated, UiError> {
    if file.size() > karte_ipc::voice::MAX_AUDIO_BYTES as f64 {
        return Err(UiError::ui(
            "input.too_large",
            "音声ファイルが大きすぎます（32 MB まで）。16 kHz モノラルで録音するか、分けて読み込んでください。",
        ));
    }
    let unreadable = |_| {
        UiError::ui(
            "ui.file",
            "音声ファイルを読めませんでした。別のファイルを選んでください。",
        )
    };
    let buf = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(unreadable)?;
    let out = invoke_raw(command::TRANSCRIBE_AUDIO, js_sys::Uint8Array::new(&buf))
        .await
        .map_err(to_error)?;
    from_js(&out)
}

/// Opens a recording in the record store; its pieces follow with [`recording_append`].
pub async fn recording_start() -> Result<Recording, UiError> {
    let out = invoke(command::RECORDING_START, JsValue::UNDEFINED)
        .await
        .map_err(to_error)?;
    from_js(&out)
}

/// A piece of the recording (16-bit PCM at 16 kHz) as the raw body, named by a header; the seconds kept so far.
pub async fn recording_append(id: &str, pcm: &[u8]) -> Result<f64, UiError> {
    let options = to_js(&serde_json::json!({ "headers": { RECORDING_HEADER: id } }))?;
    let out = invoke_raw_with(
        command::RECORDING_APPEND,
        js_sys::Uint8Array::from(pcm),
        options,
    )
    .await
    .map_err(to_error)?;
    from_js(&out)
}

#[derive(Serialize)]
struct RecordingArgs<'a> {
    id: &'a str,
}

pub async fn recording_stop(id: &str) -> Result<Recording, UiError> {
    call(command::RECORDING_STOP, &RecordingArgs { id }).await
}

pub async fn recording_transcribe(id: &str) -> Result<Dictated, UiError> {
    call(command::RECORDING_TRANSCRIBE, &RecordingArgs { id }).await
}

pub async fn recording_discard(id: &str) -> Result<(), UiError> {
    call_unit(command::RECORDING_DISCARD, &RecordingArgs { id }).await
}

pub async fn recordings_pending() -> Result<Vec<Recording>, UiError> {
    let out = invoke(command::RECORDINGS_PENDING, JsValue::UNDEFINED)
        .await
        .map_err(to_error)?;
    from_js(&out)
}

/// Runs any command with JSON-serialisable arguments (camelCase keys, as Tauri 2 expects) and parses its reply.
pub async fn call<A: Serialize, T: DeserializeOwned>(cmd: &str, args: &A) -> Result<T, UiError> {
    let args = to_js(args)?;
    let out = invoke(cmd, args).await.map_err(to_error)?;
    from_js(&out)
}

/// Like [`call`] for commands that return nothing.
pub async fn call_unit<A: Serialize>(cmd: &str, args: &A) -> Result<(), UiError> {
    let args = to_js(args)?;
    invoke(cmd, args).await.map_err(to_error).map(drop)
}

/// Subscribes `on_event` to a backend event for the lifetime of the window.
async fn listen_json<T: DeserializeOwned + 'static>(
    event: &str,
    mut on_event: impl FnMut(T) + 'static,
) -> Result<(), UiError> {
    let handler = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let payload =
            js_sys::Reflect::get(&event, &JsValue::from_str("payload")).unwrap_or(JsValue::NULL);
        // A payload this window does not understand (a newer backend) is skipped rather than breaking the page.
        if let Ok(p) = from_js::<T>(&payload) {
            on_event(p);
        }
    });
    listen(event, handler.as_ref().unchecked_ref())
        .await
        .map_err(to_error)?;
    // The listener lives as long as the page: leaking the closure is what keeps it callable from JS.
    handler.forget();
    Ok(())
}

pub async fn listen_progress(on_progress: impl FnMut(Progress) + 'static) -> Result<(), UiError> {
    listen_json(event::DRAFT_PROGRESS, on_progress).await
}

pub async fn listen_hearing(
    on_progress: impl FnMut(HearingProgress) + 'static,
) -> Result<(), UiError> {
    listen_json(event::HEARING_PROGRESS, on_progress).await
}

pub async fn listen_status(on_status: impl FnMut(EngineStatus) + 'static) -> Result<(), UiError> {
    listen_json(event::ENGINE_STATUS, on_status).await
}

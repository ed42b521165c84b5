//! The desktop window end to end: type a dictation, draft, check the SOAP sections, the suggestions and the
//! evidence highlight, and save a screenshot for review.
//!
//! Needs a built app (`KARTE_DESKTOP_BIN`), an X display (`DISPLAY`) and tauri-driver; `cargo xtask e2e` provides
//! all three. Missing any of them is a failure, not a skip.

use anyhow::{bail, ensure, Context, Result};
use karte_e2e::driver::TauriDriver;
use karte_e2e::webdriver::Session;
use karte_e2e::{artifacts_dir, require_env};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Synthetic (no real patient), about 300 characters, in the style of a ward admission note.
const DICTATION: &str = "65歳男性。3日前から発熱と咳嗽、黄色痰が出現し、昨日から労作時の息切れを自覚したため受診。既往歴は高血圧症と2型糖尿病で、アムロジピン5mg 1日1回とメトホルミン500mg 1日2回を内服中。喫煙は20本/日を40年。来院時、意識清明、BT 38.6℃、BP 138/82 mmHg、HR 104回/分、RR 24回/分、SpO2 93%（室内気）。右下肺野で湿性ラ音を聴取。咽頭発赤なし。下腿浮腫なし。血液検査でWBC 13800/μL、CRP 12.4 mg/dL。市中肺炎を疑う。胸部X線と喀痰グラム染色、血液培養2セットを提出し、セフトリアキソン2g 1日1回点滴静注で治療を開始する。";

/// A draft with the model on 2 CPU cores takes minutes at worst; longer than this is a hang. A machine shared with
/// other builds can be several times slower: `KARTE_E2E_TIMEOUT_S` raises the bound there.
fn draft_timeout() -> Duration {
    let secs = std::env::var("KARTE_E2E_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

const SECTIONS: [&str; 4] = ["subjective", "objective", "assessment", "plan"];

/// One app at a time: two windows would fight over the display and the two CPU cores (and the model's memory).
static ONE_APP: Mutex<()> = Mutex::new(());

struct App {
    // Field order matters: the session closes the window before the driver is killed.
    session: Session,
    _driver: TauriDriver,
}

fn launch() -> Result<App> {
    let bin = require_env(
        "KARTE_DESKTOP_BIN",
        "the absolute path of the built karte-desktop binary",
    )?;
    require_env(
        "DISPLAY",
        "the window needs an X display (Xvfb on a headless machine)",
    )?;
    let bin = PathBuf::from(bin);
    ensure!(
        bin.is_absolute(),
        "KARTE_DESKTOP_BIN must be an absolute path, got {}",
        bin.display()
    );
    ensure!(
        bin.is_file(),
        "KARTE_DESKTOP_BIN={} does not exist: build it with `cargo xtask e2e`",
        bin.display()
    );

    let driver = TauriDriver::start()?;
    let caps = json!({ "browserName": "wry", "tauri:options": { "application": bin } });
    let session = Session::new(&driver.url, caps)
        .context("opening a WebDriver session (launches the app)")?;
    // The page is up once the wasm module has mounted the form.
    session
        .wait_for("#dictation", Duration::from_secs(60))
        .context("the window never showed the dictation field")?;
    Ok(App {
        session,
        _driver: driver,
    })
}

fn save_screenshot(s: &Session, name: &str) -> Result<PathBuf> {
    let path = artifacts_dir()?.join(name);
    std::fs::write(&path, s.screenshot_png()?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

/// Runs a test body; on failure, keeps a screenshot of what the window showed, since that usually says why.
fn with_failure_screenshot(
    app: &App,
    name: &str,
    body: impl FnOnce(&Session) -> Result<()>,
) -> Result<()> {
    let r = body(&app.session);
    if r.is_err() {
        let _ = save_screenshot(&app.session, &format!("{name}-failure.png"));
    }
    r
}

/// Types like a user; WebKit's driver may drop characters it cannot map to keys (IME text), so fall back to
/// setting the value and firing `input` like an IME commit does.
fn type_dictation(s: &Session, text: &str) -> Result<()> {
    let field = s.wait_for("#dictation", Duration::from_secs(10))?;
    s.click(&field)?;
    s.send_keys(&field, text)?;
    if s.property(&field, "value")?.as_str() != Some(text) {
        eprintln!("send_keys did not reproduce the Japanese text exactly; setting it as an IME commit would");
        s.execute(
            "const el = arguments[0]; el.value = arguments[1]; el.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!({ "element-6066-11e4-a52e-4f735466cecf": field.0 }), json!(text)],
        )?;
    }
    ensure!(
        s.property(&field, "value")?.as_str() == Some(text),
        "the dictation field does not hold the dictation"
    );
    Ok(())
}

fn wait_for_draft(s: &Session) -> Result<()> {
    let started = Instant::now();
    let mut progress_shot = false;
    loop {
        // One picture of the progress panel for review, once the model streams (or after a few seconds of it).
        if !progress_shot {
            if let Some(p) = s.find("#progress")? {
                let streaming = s
                    .find("#progress .stream")?
                    .map(|e| s.text(&e))
                    .transpose()?
                    .is_some_and(|t| !t.is_empty());
                if streaming || started.elapsed() > Duration::from_secs(5) {
                    eprintln!("progress: {}", s.text(&p)?.replace('\n', " ⏎ "));
                    save_screenshot(s, "desktop-progress.png")?;
                    progress_shot = true;
                }
            }
        }
        if let Some(e) = s.find("#error")? {
            bail!(
                "the app showed an error instead of a draft: {}",
                s.text(&e)?
            );
        }
        let sections_there = SECTIONS
            .iter()
            .all(|id| s.find(&format!("#section-{id}")).ok().flatten().is_some());
        if sections_there && s.find(".suggestion")?.is_some() {
            eprintln!("draft shown after {:.1} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > draft_timeout() {
            bail!(
                "no draft with suggestions within {:?} (KARTE_E2E_TIMEOUT_S raises it)",
                draft_timeout()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn drafts_a_dictation_with_sections_suggestions_and_evidence() -> Result<()> {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let app = launch()?;
    let no_llm = std::env::var("KARTE_E2E_NO_LLM").is_ok_and(|v| v == "1");
    with_failure_screenshot(&app, "desktop-draft", |s| {
        type_dictation(s, DICTATION)?;
        if no_llm {
            let cb = s.wait_for("#no-llm", Duration::from_secs(5))?;
            s.click(&cb)?;
            ensure!(
                s.property(&cb, "checked")?.as_bool() == Some(true),
                "the no-LLM checkbox did not tick"
            );
        }
        s.click(&s.wait_for("#draft-button", Duration::from_secs(5))?)?;
        wait_for_draft(s)?;

        for id in SECTIONS {
            let n = s.find_all(&format!("#section-{id} .sentence"))?.len();
            ensure!(n > 0, "section {id} has no sentence");
        }
        let objective = s.text(&s.wait_for("#section-objective", Duration::from_secs(1))?)?;
        ensure!(
            objective.contains("38.6"),
            "O does not carry the temperature 38.6: {objective}"
        );
        let suggestion = s.text(&s.wait_for(".suggestion", Duration::from_secs(1))?)?;
        ensure!(
            suggestion.contains('@'),
            "a suggestion shows its rule id (rule@version): {suggestion}"
        );

        // Hover a sentence of O; if the hover does not register under this driver, a click pins it instead.
        let sentence = s
            .find_all("#section-objective .sentence")?
            .into_iter()
            .next()
            .context("an O sentence")?;
        s.hover(&sentence)?;
        if s.find("#source-view mark")?.is_none() {
            s.click(&sentence)?;
        }
        let mark = s
            .wait_for("#source-view mark", Duration::from_secs(5))
            .context("no <mark> in #source-view")?;
        let marked = s.text(&mark)?;
        ensure!(
            !marked.is_empty() && DICTATION.contains(&marked),
            "the mark {marked:?} is not a piece of the dictation"
        );

        let shot = save_screenshot(s, "desktop-draft.png")?;
        ensure!(
            std::fs::metadata(&shot)?.len() > 10_000,
            "screenshot {} looks empty",
            shot.display()
        );
        Ok(())
    })
}

#[test]
fn empty_dictation_shows_the_input_empty_error() -> Result<()> {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let app = launch()?;
    with_failure_screenshot(&app, "desktop-empty", |s| {
        s.click(&s.wait_for("#draft-button", Duration::from_secs(5))?)?;
        let err = s.wait_for("#error", Duration::from_secs(30))?;
        let code = s.attribute(&err, "data-code")?;
        ensure!(
            code.as_deref() == Some("input.empty"),
            "error code {code:?}, want input.empty"
        );
        let message = s.text(&s.wait_for("#error .error-message", Duration::from_secs(1))?)?;
        ensure!(!message.trim().is_empty(), "the error box has no message");
        ensure!(
            s.find("#section-subjective")?.is_none(),
            "an empty dictation must not produce a draft"
        );
        save_screenshot(s, "desktop-empty-error.png").map(drop)
    })
}

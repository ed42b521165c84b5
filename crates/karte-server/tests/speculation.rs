//! Prompt-lookup speculation on the server: the settings file and `KARTE_SPECULATION` choose it (the environment
//! wins), `/metrics` says which and counts the guessed and kept tokens, and a request's `"speculation": "off"`
//! decodes that request without guesses. A real `karte-server` process with the fast test model (SmolLM2).

mod common;

use common::{curl, curl_json, serial, Server, CLIENT};
use serde_json::{json, Value};

/// A greedy request whose answer copies its prompt, so that lookup has n-grams to guess from.
fn copy_request(speculation: Option<&str>) -> String {
    let mut body = json!({
        "messages": [{"role": "user", "content": "Repeat the following text exactly, word for word:\n\
            The patient is a 72-year-old man with fever, cough and shortness of breath for three days. \
            Chest X-ray shows an infiltrate in the right lower lobe. Start ceftriaxone and review tomorrow.\n\
            The patient is a 72-year-old man with fever, cough and shortness of breath for three days."}],
        "max_tokens": 48,
        "temperature": 0,
    });
    if let Some(s) = speculation {
        body["speculation"] = json!(s);
    }
    body.to_string()
}

/// The value of an unlabelled metric line (`name value`).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn metrics(srv: &Server) -> String {
    let (s, m) = curl(&[&format!("{}/metrics", srv.base)]);
    assert_eq!(s, 200);
    m
}

fn chat(srv: &Server, body: &str) -> (u16, Value) {
    curl_json(
        "POST",
        &format!("{}/v1/chat/completions", srv.base),
        CLIENT,
        Some(body),
    )
}

/// Starts a server whose settings file holds `settings`, with `KARTE_SPECULATION` set to `env` or removed.
fn start(dir: &std::path::Path, settings: &str, env: Option<&str>) -> Server {
    std::fs::write(dir.join("no-settings.toml"), settings).unwrap();
    let assignment;
    let prefix: Vec<&str> = match env {
        Some(v) => {
            assignment = format!("KARTE_SPECULATION={v}");
            vec!["env", &assignment]
        }
        None => vec!["env", "-u", "KARTE_SPECULATION"],
    };
    Server::start_prefixed(&prefix, "127.0.0.1:0", dir, &[], "http")
}

/// Which speculation the engine runs with, from the settings file and the environment: absent is off, the file's
/// value applies, and the environment overrides the file either way.
#[test]
fn settings_and_environment_choose_speculation_and_metrics_say_which() {
    let _g = serial();
    // (settings file, KARTE_SPECULATION, engine runs lookup)
    let table = [
        ("", None, false),
        ("[model]\nspeculation = \"off\"\n", None, false),
        ("[model]\nspeculation = \"lookup\"\n", None, true),
        ("[model]\nspeculation = \"lookup\"\n", Some("off"), false),
        ("[model]\nspeculation = \"off\"\n", Some("lookup"), true),
    ];
    for (settings, env, lookup) in table {
        let dir = tempfile::tempdir().unwrap();
        let srv = start(dir.path(), settings, env);
        let m = metrics(&srv);
        let want = if lookup { 1.0 } else { 0.0 };
        assert_eq!(
            metric(&m, "karte_speculation_lookup"),
            want,
            "{settings:?} {env:?}"
        );
        assert_eq!(metric(&m, "karte_draft_proposed_tokens_total"), 0.0);
        assert_eq!(metric(&m, "karte_draft_accepted_tokens_total"), 0.0);
    }
}

/// With lookup on, a greedy answer that copies its prompt gets guesses (counted in `/metrics`, kept ≤ guessed);
/// the same request with `"speculation": "off"` adds none, and a value that is neither is a 400. With lookup off,
/// nothing is ever guessed.
#[test]
fn lookup_counters_and_the_per_request_opt_out() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "[model]\nspeculation = \"lookup\"\n", None);

    let (s, v) = chat(&srv, &copy_request(None));
    assert_eq!(s, 200, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
    let m = metrics(&srv);
    let proposed = metric(&m, "karte_draft_proposed_tokens_total");
    let accepted = metric(&m, "karte_draft_accepted_tokens_total");
    assert!(proposed > 0.0, "a copied answer gets guesses:\n{m}");
    assert!(accepted <= proposed, "{accepted} > {proposed}");

    let (s, v) = chat(&srv, &copy_request(Some("off")));
    assert_eq!(s, 200, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
    let m = metrics(&srv);
    assert_eq!(
        metric(&m, "karte_draft_proposed_tokens_total"),
        proposed,
        "opted out"
    );
    assert_eq!(metric(&m, "karte_draft_accepted_tokens_total"), accepted);

    // "lookup" in the request is the same as leaving it out: guesses again.
    let (s, _) = chat(&srv, &copy_request(Some("lookup")));
    assert_eq!(s, 200);
    assert!(metric(&metrics(&srv), "karte_draft_proposed_tokens_total") > proposed);

    for bad in ["of", "ngram", "OFF"] {
        let (s, v) = chat(&srv, &copy_request(Some(bad)));
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "server.bad_request", "{bad}");
    }
    drop(srv);

    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "", None);
    let (s, _) = chat(&srv, &copy_request(None));
    assert_eq!(s, 200);
    let m = metrics(&srv);
    assert_eq!(metric(&m, "karte_speculation_lookup"), 0.0);
    assert_eq!(metric(&m, "karte_draft_proposed_tokens_total"), 0.0);
}

//! The desktop app never runs a model in its own process (it drafts through the `karte-server --local` worker), so
//! it must not link llama.cpp either: a llama.cpp abort, or its build, has no business in the window's binary. This
//! holds only as long as nothing in the app's dependency graph reaches karte-engine; karte-llm and karte-api are
//! llama-free for that reason. The test reads the resolved graph, so a new path to the engine fails it whichever
//! crate opens it. The speech recogniser (karte-voice, candle) is banned for the same reason: it runs in the worker.

use std::process::Command;

#[test]
fn the_desktop_app_does_not_link_the_engine_llama_cpp_or_the_recogniser() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "tree",
            "-p",
            "karte-desktop",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.lines().any(|l| l.starts_with("karte-api ")),
        "the tree looks wrong (no karte-api): {tree}"
    );
    for banned in [
        "karte-engine",
        "llama-cpp-2",
        "llama-cpp-sys-2",
        "karte-voice",
        "candle-core",
    ] {
        let found: Vec<&str> = tree
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(banned))
            .collect();
        assert!(
            found.is_empty(),
            "karte-desktop depends on {banned}: {found:?}"
        );
    }
}

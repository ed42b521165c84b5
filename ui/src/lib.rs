//! The Karte window: a physician types a dictation, gets a grounded SOAP draft and suggested tests, and can see for
//! every sentence which words of the dictation it rests on.
//!
//! The UI holds no drafting logic: it sends the text to the `draft` command and renders what comes back. Anything
//! clinical (what goes in which section, which number is ungrounded) is decided by `karte-api`, so the desktop, the
//! CLI and the server cannot disagree.

// Leptos views are nested types; the signed-in shell around the drafting view goes past the default 128 levels.
#![recursion_limit = "256"]

pub mod app;
pub mod components;
pub mod documents;
pub mod highlight;
pub mod ipc;
pub mod model;
pub mod recorder;
pub mod records;
pub mod shell;
pub mod uploads;

pub use app::App;
pub use shell::Shell;

//! The window's components, one module each. They take plain data or signals as props (no global state), so the
//! native tests can render each of them alone with sample data.

pub mod dictation_form;
pub mod draft_view;
pub mod error_box;
pub mod progress_panel;
pub mod source_view;
pub mod status_bar;
pub mod suggestions;

pub use dictation_form::DictationForm;
pub use draft_view::{DraftView, SentenceItem};
pub use error_box::ErrorBox;
pub use progress_panel::ProgressPanel;
pub use source_view::SourceView;
pub use status_bar::{EngineIndicator, EngineProblem, StatusBar};
pub use suggestions::SuggestionList;

use crate::model::Span;
use leptos::prelude::*;

/// Which dictation spans the source view marks. Hover shows a sentence's evidence while the pointer is on it; a
/// click pins it so the physician can scroll the dictation and still see it (a second click unpins).
#[derive(Debug, Clone, Copy)]
pub struct Highlight {
    hovered: RwSignal<Option<Vec<Span>>>,
    pinned: RwSignal<Option<Vec<Span>>>,
}

impl Default for Highlight {
    fn default() -> Self {
        Self::new()
    }
}

impl Highlight {
    pub fn new() -> Self {
        Highlight {
            hovered: RwSignal::new(None),
            pinned: RwSignal::new(None),
        }
    }
    pub fn hover(&self, spans: Vec<Span>) {
        self.hovered.set(Some(spans));
    }
    pub fn leave(&self) {
        self.hovered.set(None);
    }
    pub fn toggle_pin(&self, spans: Vec<Span>) {
        self.pinned.update(|p| {
            *p = if p.as_ref() == Some(&spans) {
                None
            } else {
                Some(spans)
            }
        });
    }
    pub fn pin(&self, spans: Vec<Span>) {
        self.pinned.set(Some(spans));
    }
    pub fn clear(&self) {
        self.hovered.set(None);
        self.pinned.set(None);
    }
    /// The spans to mark now (tracked): the hovered item wins over the pinned one.
    pub fn spans(&self) -> Vec<Span> {
        self.hovered
            .get()
            .or_else(|| self.pinned.get())
            .unwrap_or_default()
    }
    pub fn is_pinned(&self, spans: &[Span]) -> bool {
        self.pinned.with(|p| p.as_deref() == Some(spans))
    }
}

/// `6-8 10-12`: the spans as a data attribute, so that tests and support staff can see what an item points at.
pub(crate) fn spans_attr(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| format!("{}-{}", s.start, s.end))
        .collect::<Vec<_>>()
        .join(" ")
}

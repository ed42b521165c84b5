//! karte-guard: the checks that make a draft safe to show and safe to send, for Japanese clinical text, on a
//! workstation CPU in microseconds per sentence.
//!
//! - [`pii`]: personal data (氏名, マイナンバー, 保険者番号, 電話, 住所, 生年月日…) with character offsets;
//! - [`pseudo`]: reversible placeholders (【氏名1】) before text leaves the workstation;
//! - [`leak`]: personal data in model output that was not in its input;
//! - [`policy`]: allow / flag / block for harmful output, with [`dose`] limits feeding the overdose category and
//!   the learned [`classifier`] as a second opinion on phrasings no rule names;
//! - [`injection`]: instruction-like text inside a dictation, which is data and never an instruction, by rules and
//!   the learned [`injection_classifier`];
//! - [`stream`]: the same checks on the token stream, so nothing blocked ever reaches the screen;
//! - [`Dictation`]: the input read once (normalised, scanned, analysed), which every output check judges against.

pub mod checkdigit;
pub mod classifier;
pub mod dictation;
pub mod dose;
pub mod draft;
pub mod eval;
pub mod injection;
pub mod injection_classifier;
pub mod leak;
pub mod pii;
pub mod policy;
pub mod pseudo;
pub mod stream;

pub use dictation::Dictation;
pub use pii::{scan, Finding, PiiKind};
pub use policy::{Level, Policy, Verdict};
pub use pseudo::{pseudonymise, restore, Mapping};

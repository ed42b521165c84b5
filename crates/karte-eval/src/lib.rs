//! Compare candidate models on the same suites and recommend the safest by a documented policy.
//!
//! The crate is built around two small traits so the measurements do not depend on where a model runs:
//! [`candidate::Candidate`] (chat, and draft through the full Karte pipeline) and [`canary::Scorer`] (log-likelihoods
//! of continuations). The local GGUF engine and an OpenAI-compatible endpoint both become candidates; the exposure
//! computation is a pure function of likelihoods, so it is tested on a controlled likelihood with a known rank.
//!
//! Nothing that fails is dropped: a missing model, an unreachable endpoint or a malformed data set line becomes an
//! item marked "not measured" with its stable error code, counted in the report beside every average.

pub mod cache;
pub mod canary;
pub mod candidate;
pub mod data;
pub mod memory;
pub mod policy;
mod remote;
pub mod report;
pub mod runner;
pub mod scorer;
pub mod suites;

pub use candidate::{Candidate, CandidateInfo, CandidateSpec};
pub use data::SuiteId;
pub use runner::{run, ItemResult, Outcome, RunConfig, RunResult, Settings};

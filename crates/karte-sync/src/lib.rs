//! Upload of signed documents to the hospital's cloud platform, exactly once.
//!
//! - [`fhir`]: the signed note as a FHIR R4 document Bundle (pure, table-tested, checked by a real R4 validator).
//! - [`transport`]: HTTPS with rustls only; webpki validation plus an SPKI SHA-256 pin; client certificate and
//!   bearer token from the keyring; the Bundle's identifier as idempotency key and conditional create.
//! - [`worker`]: the durable uploader over karte-store's outbox (filled in the signing transaction), with
//!   backoff and jitter, dead letters for refusals, a halt on certificate and endpoint problems, and the
//!   [`Background`] loop that rebuilds its transport from the current settings when resumed.
//! - [`credentials`]: installing the workstation's secrets, checked before anything is written, audited.
//! - [`settings`]: the `[sync]` section of the machine-wide settings file (karte-settings).
//!
//! The CLI (`karte queue …`, `karte export fhir`) and the desktop app call these; they hold no logic of their own.

pub mod credentials;
pub mod fhir;
pub mod settings;
pub mod transport;
pub mod worker;

pub use credentials::{install_credentials, install_pseudonym_key, CredentialSource, Installed};
pub use settings::SyncSettings;
pub use transport::{Credentials, SendOutcome, Transport};
pub use worker::{Background, FlushReport, PatientPolicy, Uploader};

//! Who is signed in and the accounts an administrator sees. The permission matrix itself is karte-store's.

use karte_core::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 医師
    Physician,
    /// 看護師
    Nurse,
    /// システム管理者
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Physician, Role::Nurse, Role::Admin];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Admin => "admin",
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Physician => "医師",
            Role::Nurse => "看護師",
            Role::Admin => "システム管理者",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    Code::UserInvalid,
                    "役割は physician、nurse、admin のいずれかです。",
                )
            })
    }
}

/// Who is signed in, for the window to choose its view. The window holds only this, never the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: String,
    pub role: Role,
}

/// An account as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub locked: bool,
    pub created_at: String,
}

//! The `api-version` query parameter: required on every call; versions newer than the newest
//! known are served as the newest (unless strict), since SDK upgrades must not break (NOTES.md).

use crate::error::{AcsError, AcsResult};

/// Chat api-versions this face implements, oldest first.
pub const CHAT_VERSIONS: [&str; 4] = ["2021-09-07", "2023-11-07", "2024-03-07", "2025-03-15"];
/// Identity api-versions this face accepts, oldest first (one behaviour for all).
pub const IDENTITY_VERSIONS: [&str; 5] = [
    "2021-03-07",
    "2022-06-01",
    "2022-10-01",
    "2023-08-01",
    "2023-10-01",
];

/// A chat api-version, as an index into [`CHAT_VERSIONS`]: features are gated by comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChatVersion(usize);

impl ChatVersion {
    pub const V2025_03_15: ChatVersion = ChatVersion(3);

    /// Thread and participant `metadata` and `retentionPolicy` exist from 2025-03-15 on.
    pub fn has_metadata(self) -> bool {
        self >= Self::V2025_03_15
    }
}

/// Resolves `requested` against the known versions: an exact match, or the newest known for
/// a newer date (400 when `strict`); older or malformed versions are refused.
pub fn resolve(requested: Option<&str>, known: &[&str], strict: bool) -> AcsResult<usize> {
    let requested = requested.ok_or_else(|| {
        AcsError::invalid(
            "The api-version query parameter is required.",
            "api-version",
        )
    })?;
    if let Some(index) = known.iter().position(|v| *v == requested) {
        return Ok(index);
    }
    let unsupported = || {
        AcsError::invalid(
            format!(
                "The api-version '{requested}' is not supported. Supported versions: {}.",
                known.join(", ")
            ),
            "api-version",
        )
    };
    let date = requested
        .get(..10)
        .filter(|d| is_date(d))
        .ok_or_else(unsupported)?;
    let newest = known.len() - 1;
    if strict {
        return Err(unsupported());
    }
    if date > known[newest] {
        return Ok(newest);
    }
    // A preview of a known release, or an older preview: serve the newest known at or before it.
    known
        .iter()
        .rposition(|v| *v <= date)
        .ok_or_else(unsupported)
}

pub fn chat_version(requested: Option<&str>, strict: bool) -> AcsResult<ChatVersion> {
    resolve(requested, &CHAT_VERSIONS, strict).map(ChatVersion)
}

pub fn identity_version(requested: Option<&str>, strict: bool) -> AcsResult<()> {
    resolve(requested, &IDENTITY_VERSIONS, strict).map(|_| ())
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_newer_and_older_versions() {
        assert_eq!(
            chat_version(Some("2024-03-07"), false).ok(),
            Some(ChatVersion(2))
        );
        assert_eq!(
            chat_version(Some("2099-01-01"), false).ok(),
            Some(ChatVersion(3))
        );
        assert_eq!(
            chat_version(Some("2026-01-01-preview"), false).ok(),
            Some(ChatVersion(3))
        );
        assert_eq!(
            chat_version(Some("2023-12-01-preview"), false).ok(),
            Some(ChatVersion(1))
        );
        assert!(chat_version(Some("2099-01-01"), true).is_err());
        assert!(chat_version(Some("2020-01-01"), false).is_err());
        assert!(chat_version(Some("latest"), false).is_err());
        assert!(chat_version(None, false).is_err());
        assert!(identity_version(Some("2023-10-01"), true).is_ok());
    }
}

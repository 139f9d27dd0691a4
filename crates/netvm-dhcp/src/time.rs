//! Time as the engine sees it: milliseconds since the Unix epoch, given
//! by the caller. The engine never reads a clock, so every transition is
//! testable with explicit times, and lease expiries stay meaningful
//! across restarts (the journal stores them as they are).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time, milliseconds since 1970-01-01 UTC.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Now, by the system clock (for drivers; the engine never calls it).
    pub fn now() -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// This time plus `seconds`.
    pub fn plus_secs(self, seconds: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::from(seconds) * 1000))
    }

    /// This time plus `millis`.
    pub fn plus_millis(self, millis: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// Whole seconds from `self` until `later` (0 when `later` has passed).
    pub fn secs_until(self, later: Timestamp) -> u32 {
        u32::try_from(later.0.saturating_sub(self.0) / 1000).unwrap_or(u32::MAX)
    }
}

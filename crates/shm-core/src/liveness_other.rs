//! Participant liveness where no lock-file primitive is implemented (Windows): tokens are still
//! unique per participant, but every participant counts as alive, so nothing claimed is ever
//! reused and a role held by a process that died is never taken over (docs/channel.md §6,
//! "Limits"). `LockFileEx` on a file beside the segment would give the Unix semantics.

use crate::Error;

/// A participant token without a lock file.
#[derive(Debug)]
pub struct ParticipantLock {
    token: i32,
}

impl ParticipantLock {
    /// A fresh random token in `1 ..= i32::MAX`.
    pub fn acquire(_name: &str) -> Result<ParticipantLock, Error> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Ok(ParticipantLock {
            token: ((h.finish() >> 33) as i32).max(1),
        })
    }

    /// The participant's token.
    pub fn token(&self) -> i32 {
        self.token
    }

    /// Nothing to release.
    pub fn release(&mut self) {}
}

/// Always `true` here (no liveness primitive): see the module docs.
pub fn participant_alive(_name: &str, token: i64) -> bool {
    (1..=i32::MAX as i64).contains(&token)
}

/// Nothing to remove here.
pub fn remove_stale_locks(_name: &str) -> usize {
    0
}

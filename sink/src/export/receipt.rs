//! Where what a source handed over is kept, as far as the source must know: a report is
//! answered 204 only once its [`Receipt`] says every sample and access-log record is kept as
//! configured (in memory, or written to the spool and, with `spool.sync: always`, on the disk).
//!
//! Owns the collection of what each push returned and the wait for fsync rounds; it must not
//! store anything itself.

use std::sync::Arc;

use crate::spool::SyncRound;

/// Where one push is kept.
#[derive(Clone)]
pub enum Stored {
    /// In memory only (no spool): a crash of the process loses them.
    Memory,
    /// Written to the spool (safe from a process crash); with `spool.sync: always`, on the
    /// disk once the round completes.
    Spool(Option<Arc<SyncRound>>),
    /// The spool refused the write: they wait in memory until the disk takes writes again.
    WaitingForDisk,
}

/// Where one source's pushes (a report's, over every lane of every endpoint) are kept.
#[derive(Default)]
pub struct Receipt {
    rounds: Vec<Arc<SyncRound>>,
    waiting_for_disk: bool,
}

/// Samples a spool was meant to keep but did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    #[error("the spool refused the write (full disk or read-only volume)")]
    WaitingForDisk,
    #[error("the spool's fsync failed")]
    SyncFailed,
}

impl Receipt {
    pub fn add(&mut self, stored: Stored) {
        match stored {
            Stored::Memory | Stored::Spool(None) => {}
            Stored::Spool(Some(round)) => {
                if !self.rounds.iter().any(|r| Arc::ptr_eq(r, &round)) {
                    self.rounds.push(round);
                }
            }
            Stored::WaitingForDisk => self.waiting_for_disk = true,
        }
    }

    /// Adds what another receipt covers.
    pub fn merge(&mut self, other: Receipt) {
        self.waiting_for_disk |= other.waiting_for_disk;
        for round in other.rounds {
            self.add(Stored::Spool(Some(round)));
        }
    }

    /// Waits until the samples are kept as the spool promises (written, and with
    /// `spool.sync: always` on the disk); at once without a spool.
    pub async fn kept(self) -> Result<(), NotKept> {
        if self.waiting_for_disk {
            return Err(NotKept::WaitingForDisk);
        }
        for round in self.rounds {
            if !round.persisted().await {
                return Err(NotKept::SyncFailed);
            }
        }
        Ok(())
    }
}

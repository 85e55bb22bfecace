//! The on-disk queue of one Loki endpoint's filter-shipped pushes: each accepted report's
//! records are appended as one encoded push before the report is answered, the endpoint's spool
//! task sends them in order (consecutive pushes joined) and acknowledges them once Loki
//! answered, so a Loki outage, a restart or a crash loses none.
//!
//! Owns the hand-over between the two tasks (a lock around the lane's spool, a wake-up, the
//! "no more appends" flag). Tailed files never come here: their positions already make them
//! durable. It must not send anything itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use meshtap_logformat::loki::EncodedPush;
use tokio::sync::Notify;

use crate::export::joined_body::join_records;
use crate::export::receipt::Stored;
use crate::spool::{
    disk_io, lock_off_worker, BodyForm, LaneSpool, RecordMeta, SpoolError, SpooledBatch,
};

pub struct PushSpool {
    spool: Mutex<LaneSpool>,
    appended: Notify,
    closed: AtomicBool,
}

impl PushSpool {
    pub fn new(spool: LaneSpool) -> PushSpool {
        PushSpool {
            spool: Mutex::new(spool),
            appended: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Appends a push; returns the entries of unsent pushes evicted to stay within
    /// `spool.max_bytes`, and where the push is kept.
    pub fn append(&self, push: &EncodedPush) -> Result<(Vec<u64>, Stored), SpoolError> {
        let meta = RecordMeta {
            samples: push.entries as u32,
            oldest_ms: 0,
            newest_ms: 0,
            form: BodyForm::AsSent,
        };
        let appended = disk_io(|| {
            let mut spool = self.lock();
            let evicted = spool.append(meta, &push.body)?;
            Ok::<_, SpoolError>((evicted, Stored::Spool(spool.last_round())))
        })?;
        self.appended.notify_one();
        Ok(appended)
    }

    /// The oldest pushes not yet handed out, joined while the body stays under `max_bytes`;
    /// `None` also when the next cannot be read now (logged; it is tried again at the next
    /// wake-up).
    pub fn take(&self, max_bytes: usize) -> Option<SpooledBatch> {
        let mut spool = self.lock();
        let mut pushes = Vec::new();
        let mut bytes = 0;
        loop {
            match disk_io(|| spool.take()) {
                Ok(Some(push)) => {
                    bytes += push.body.len();
                    pushes.push(push);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "spool: cannot read the next push; trying again later");
                    break;
                }
            }
            if bytes >= max_bytes || spool.next_samples().is_none() {
                break;
            }
        }
        if pushes.is_empty() {
            return None;
        }
        let (joined, unreadable) = join_records(pushes);
        if unreadable > 0 {
            tracing::error!(
                entries = unreadable,
                "spool: a push could not be decompressed; its entries are dropped"
            );
        }
        Some(joined)
    }

    /// The pushes handed out so far are done with (acknowledged or refused).
    pub fn finish(&self) {
        if let Err(e) = disk_io(|| self.lock().finish()) {
            tracing::error!(error = %e, "spool: could not acknowledge a sent push (it may be sent again after a restart)");
        }
    }

    /// Waits until something is appended or the batching task closes the spool.
    pub async fn appended(&self) {
        self.appended.notified().await;
    }

    /// The batching task is done: nothing more will be appended.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.appended.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// At shutdown: asks the disk to persist what is left; returns the entries kept.
    pub fn keep_for_restart(&self) -> u64 {
        let mut spool = self.lock();
        if let Err(e) = spool.sync() {
            tracing::error!(error = %e, "spool: could not sync to disk at shutdown");
        }
        spool.unread_samples()
    }

    /// Bytes of the spool's files.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneSpool> {
        lock_off_worker(&self.spool).expect("push spool lock")
    }
}

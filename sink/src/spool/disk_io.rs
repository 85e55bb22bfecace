//! Spool file operations called from async code, and what a disk that stops answering may hold.
//!
//! A spooled write is a buffered `write` that takes microseconds, but a disk can stall (a full
//! writeback queue, a hung network volume) and a worker thread stuck in a syscall runs none of
//! its tasks. Handing every operation's worker to another thread first (`block_in_place`) keeps
//! the runtime safe, but costs thread wake-ups and switches for each write: on the scrape
//! bench it was most of what the spool added to the sink's CPU. So one operation at a time, in
//! the whole process, runs on its worker as it is; any other that starts while it is in flight
//! hands its worker's tasks to the pool first. A stalled disk thus holds at most one worker
//! (whose queued tasks the others take over), never the runtime. A runtime of one worker
//! (or a current-thread one, which cannot hand its tasks over) never runs one on its worker:
//! the former always hands over, the latter runs the operation as it is.
//!
//! The holder of a lane's lock may be the operation that stalled, so a task that finds such a
//! lock taken waits for it off its worker too ([`lock_off_worker`]): a stalled disk holds the
//! tasks that need its lane, not the workers they ran on.
//!
//! Owns those choices; it must not know what the operation does or what the lock guards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LockResult, Mutex, MutexGuard, TryLockError};

use tokio::runtime::{Handle, RuntimeFlavor};

/// An operation runs on its worker without handing its tasks over.
static ON_WORKER: AtomicBool = AtomicBool::new(false);

/// Operations and lock waits that handed their worker's tasks over first.
static HANDED_OVER: AtomicU64 = AtomicU64::new(0);

/// How many spool operations and lane-lock waits handed their worker's tasks to another
/// thread first, since start (`meshtap_sink_spool_worker_handoffs_total`).
pub fn handed_over() -> u64 {
    HANDED_OVER.load(Ordering::Relaxed)
}

/// [`tokio::task::block_in_place`], counted.
fn hand_over<R>(f: impl FnOnce() -> R) -> R {
    HANDED_OVER.fetch_add(1, Ordering::Relaxed);
    tokio::task::block_in_place(f)
}

/// Gives the place back when the operation ends, even by panicking.
struct OnWorker;

impl Drop for OnWorker {
    fn drop(&mut self) {
        ON_WORKER.store(false, Ordering::Release);
    }
}

/// Runs a spool file operation from async code (see the module doc for where).
pub fn disk_io<R>(io: impl FnOnce() -> R) -> R {
    let Ok(handle) = Handle::try_current() else {
        return io();
    };
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return io();
    }
    let others = handle.metrics().num_workers() > 1;
    if others
        && ON_WORKER
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    {
        let _place = OnWorker;
        return io();
    }
    hand_over(io)
}

/// Locks `mutex` from async code: at once when it is free, otherwise waiting off the worker
/// (its other tasks handed to the pool first), as its holder may be a stalled disk operation.
pub fn lock_off_worker<T>(mutex: &Mutex<T>) -> LockResult<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Err(poisoned),
        Err(TryLockError::WouldBlock) => {
            let multi_thread = Handle::try_current()
                .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
            if multi_thread {
                hand_over(|| mutex.lock())
            } else {
                mutex.lock()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Two operations stuck at once on a two-worker runtime: the runtime still runs a task.
    #[test]
    fn two_stalled_operations_leave_the_runtime_running() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut releases = Vec::new();
        let mut stalled = Vec::new();
        let handed_over_before = handed_over();
        for _ in 0..2 {
            let (started_tx, started) = mpsc::channel();
            let (release, release_rx) = mpsc::channel::<()>();
            stalled.push(runtime.spawn(async move {
                disk_io(|| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
            }));
            started.recv_timeout(Duration::from_secs(30)).unwrap();
            releases.push(release);
        }
        // Both workers' threads are inside an operation; a new task still runs.
        let (ran_tx, ran) = mpsc::channel();
        runtime.spawn(async move { ran_tx.send(()).unwrap() });
        let outcome = ran.recv_timeout(Duration::from_secs(30));
        for release in releases {
            release.send(()).unwrap();
        }
        assert!(outcome.is_ok(), "a task waited for a stalled disk");
        assert!(
            handed_over() > handed_over_before,
            "the second one was counted"
        );
        for task in stalled {
            runtime.block_on(task).unwrap();
        }
    }

    /// A lock held by a stuck operation, wanted by two tasks on a two-worker runtime: the
    /// runtime still runs a task, and both get the lock once it is free.
    #[test]
    fn tasks_waiting_for_a_stuck_lock_leave_the_runtime_running() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let lock = std::sync::Arc::new(Mutex::new(0));
        let held = lock.lock().unwrap();
        let (waiting_tx, waiting) = mpsc::channel();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (lock, waiting_tx) = (lock.clone(), waiting_tx.clone());
                runtime.spawn(async move {
                    waiting_tx.send(()).unwrap();
                    *lock_off_worker(&lock).unwrap() += 1;
                })
            })
            .collect();
        for _ in 0..2 {
            waiting.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        let (ran_tx, ran) = mpsc::channel();
        runtime.spawn(async move { ran_tx.send(()).unwrap() });
        let outcome = ran.recv_timeout(Duration::from_secs(30));
        drop(held);
        assert!(outcome.is_ok(), "a task waited for a stuck lock");
        for waiter in waiters {
            runtime.block_on(waiter).unwrap();
        }
        assert_eq!(*lock.lock().unwrap(), 2);
    }

    #[test]
    fn the_place_on_the_worker_is_given_back_after_a_panic() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let panicked = runtime.spawn(async { disk_io(|| panic!("an operation fails")) });
        assert!(runtime.block_on(panicked).is_err());
        // Taken by another operation only if given back (other tests may hold it briefly).
        let taken = (0..1000).any(|_| {
            let free = ON_WORKER
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
            if free {
                ON_WORKER.store(false, Ordering::Release);
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
            free
        });
        assert!(taken);
    }
}

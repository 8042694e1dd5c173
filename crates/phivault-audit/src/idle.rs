//! When the runtime that serves a log's appenders runs out of work: the
//! signal that ends a group commit's gather early.
//!
//! Under load a group commit gathers events for a while before it writes
//! (`log::Pacer`). Waiting is right while requests are still being
//! served, since their events will join the batch; it is wrong once every
//! worker of the runtime has parked: then nothing is left to run but the
//! requests that wait for this very commit, and the machine idles until
//! the gather times out. At 64 connections that idle time was 27–30 % of
//! the CPU (BENCHMARKS.md, audit trail, sixth session). A [`RuntimeIdle`]
//! counts the runtime's workers that are running, through tokio's
//! `on_thread_park` / `on_thread_unpark` hooks, and wakes a writer that is
//! gathering when that count reaches zero.
//!
//! tokio has no "runtime idle" callback, so this counts parks and unparks
//! itself: tokio calls the two hooks around each park of a worker, in
//! pairs, so the count is the runtime's workers minus those parked. It is
//! only a hint: a wrong count would change when a batch is written, never
//! whether its appenders wait for it to be durable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Running workers of one runtime, and a writer to wake when none is.
#[derive(Debug)]
pub struct RuntimeIdle {
    running: AtomicIsize,
    /// A writer is gathering and wants to hear of the next idle moment.
    armed: AtomicBool,
    writer: Mutex<Option<Thread>>,
}

impl RuntimeIdle {
    /// For a runtime of `workers` worker threads, all running at first.
    pub fn new(workers: usize) -> Self {
        Self {
            running: AtomicIsize::new(isize::try_from(workers).unwrap_or(isize::MAX)),
            armed: AtomicBool::new(false),
            writer: Mutex::new(None),
        }
    }

    /// A worker is about to park (tokio's `on_thread_park`). Costs one
    /// atomic decrement unless it is the last one running while a writer
    /// gathers.
    pub fn parked(&self) {
        let last = self.running.fetch_sub(1, Ordering::AcqRel) <= 1;
        if last
            && self.armed.swap(false, Ordering::AcqRel)
            && let Some(t) = self.writer.lock().expect("lock").as_ref()
        {
            t.unpark();
        }
    }

    /// A worker has unparked (tokio's `on_thread_unpark`).
    pub fn unparked(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether every worker is parked now.
    fn is_idle(&self) -> bool {
        self.running.load(Ordering::Acquire) <= 0
    }

    /// Sleeps for `d`, or until every worker has parked, whichever is
    /// first; returns whether it was the latter.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        *self.writer.lock().expect("lock") = Some(std::thread::current());
        self.armed.store(true, Ordering::Release);
        // Checked after arming: a park before it found nobody to wake.
        let mut idle = self.is_idle();
        while !idle {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
            // A park that found the writer armed disarmed it.
            idle = !self.armed.load(Ordering::Acquire);
        }
        self.armed.store(false, Ordering::Release);
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_last_park_ends_a_sleep() {
        let idle = Arc::new(RuntimeIdle::new(2));
        let i = idle.clone();
        let t = std::thread::spawn(move || {
            let at = Instant::now();
            (i.sleep(Duration::from_secs(30)), at.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        idle.parked();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "one worker still runs: keep gathering");
        idle.parked();
        let (woken, took) = t.join().unwrap();
        assert!(woken);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn a_sleep_that_starts_idle_returns_at_once_and_one_with_work_times_out() {
        let idle = RuntimeIdle::new(1);
        idle.parked();
        assert!(idle.sleep(Duration::from_secs(30)));
        idle.unparked();
        let at = Instant::now();
        assert!(!idle.sleep(Duration::from_millis(30)));
        assert!(at.elapsed() >= Duration::from_millis(30));
        // A park after the sleep ended wakes nobody and arms nothing.
        idle.parked();
        assert!(!idle.armed.load(Ordering::Acquire));
    }
}

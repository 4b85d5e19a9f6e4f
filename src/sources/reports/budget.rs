//! The process-wide ceiling on report bytes held in memory at once.
//!
//! Each report is read whole (serde_json parses a slice several times
//! faster than a reader) and its strings are borrowed from that buffer, so
//! a report costs about its size while it is parsed. Several sources (and
//! the report files of one) may read at the same time: without a ceiling,
//! three sources reading a 250 MB report each hold 750 MB. A read takes its
//! size from this budget first and waits while the bytes already held plus
//! its own would exceed its source's `max_file_size`; a read alone always
//! proceeds. So the process holds at most the largest configured
//! `max_file_size` of report bytes, whatever the number of sources.
//!
//! A waiting read is never stuck: every read in flight finishes (files are
//! finite and capped) and releases its bytes.

use std::sync::{Condvar, Mutex, OnceLock};

pub struct Budget {
    in_flight: Mutex<u64>,
    freed: Condvar,
}

/// The one budget of the process.
pub fn global() -> &'static Budget {
    static B: OnceLock<Budget> = OnceLock::new();
    B.get_or_init(Budget::new)
}

/// Report bytes held until dropped.
#[must_use]
pub struct Permit<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut n = self.budget.lock();
        *n = n.saturating_sub(self.bytes);
        self.budget.freed.notify_all();
    }
}

impl Budget {
    pub fn new() -> Self {
        Budget {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `bytes`, waiting while other reads hold so much that `bytes`
    /// more would exceed `ceiling` (the reading source's `max_file_size`).
    pub fn acquire(&self, bytes: u64, ceiling: u64) -> Permit<'_> {
        let mut n = self.lock();
        while *n > 0 && n.saturating_add(bytes) > ceiling {
            n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += bytes;
        Permit {
            budget: self,
            bytes,
        }
    }

    /// Bytes held now.
    pub fn in_flight(&self) -> u64 {
        *self.lock()
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn reads_over_the_ceiling_wait_for_the_bytes_in_flight() {
        let b: &'static Budget = Box::leak(Box::new(Budget::new()));
        let in_flight = || b.in_flight();
        let acquire = |n, c| b.acquire(n, c);
        let big = acquire(60, 100);
        assert_eq!(in_flight(), 60);
        // 30 more fit under 100: no wait.
        let small = acquire(30, 100);
        assert_eq!(in_flight(), 90);
        // 50 more would be 140: waits until `big` is released.
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let p = b.acquire(50, 100);
            tx.send(b.in_flight()).unwrap();
            drop(p);
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(big);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 80);
        t.join().unwrap();
        drop(small);
        assert_eq!(in_flight(), 0);
        // Over the ceiling on its own: proceeds when alone.
        let huge = acquire(500, 100);
        assert_eq!(in_flight(), 500);
        drop(huge);
        assert_eq!(in_flight(), 0);
    }
}

//! Stream limits: per node and per token subject. A stream holds a [`Permit`] for as long as
//! it is open; dropping the stream returns it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("this node serves its maximum of {0} streams; retry (another node may take it)")]
    Node(usize),
    #[error("this token's subject already holds its maximum of {0} streams on this node")]
    Subject(usize),
}

#[derive(Debug)]
pub struct Limits {
    /// 0: no limit.
    max_node: usize,
    max_subject: usize,
    open: AtomicUsize,
    by_subject: Mutex<HashMap<String, usize>>,
}

/// One open stream's share of the limits.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    subject: Option<String>,
}

impl Limits {
    pub fn new(max_node: usize, max_subject: usize) -> Self {
        Self { max_node, max_subject, open: AtomicUsize::new(0), by_subject: Mutex::default() }
    }

    fn subjects(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.by_subject.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a stream of `subject` (tokens without `sub` count only towards the node).
    pub fn acquire(self: &Arc<Self>, subject: Option<&str>) -> Result<Permit, LimitError> {
        let taken =
            self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (self.max_node == 0 || n < self.max_node).then_some(n + 1));
        if taken.is_err() {
            return Err(LimitError::Node(self.max_node));
        }
        let subject = match subject {
            Some(s) if self.max_subject > 0 => {
                let mut subjects = self.subjects();
                let held = subjects.entry(s.to_owned()).or_default();
                if *held >= self.max_subject {
                    drop(subjects);
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return Err(LimitError::Subject(self.max_subject));
                }
                *held += 1;
                Some(s.to_owned())
            }
            _ => None,
        };
        Ok(Permit { limits: Arc::clone(self), subject })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(s) = &self.subject {
            let mut subjects = self.limits.subjects();
            if let Some(held) = subjects.get_mut(s) {
                *held -= 1;
                if *held == 0 {
                    subjects.remove(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_node_and_per_subject_and_returned_on_drop() {
        let limits = Arc::new(Limits::new(3, 2));
        let a1 = limits.acquire(Some("alice")).expect("first");
        let _a2 = limits.acquire(Some("alice")).expect("second");
        assert_eq!(limits.acquire(Some("alice")).expect_err("over the subject limit"), LimitError::Subject(2));
        let _b = limits.acquire(Some("bob")).expect("another subject");
        assert_eq!(limits.acquire(None).expect_err("over the node limit"), LimitError::Node(3));
        drop(a1);
        let _a3 = limits.acquire(Some("alice")).expect("a place came back");
        assert_eq!(limits.open.load(Ordering::Acquire), 3);
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = Arc::new(Limits::new(0, 0));
        let permits: Vec<Permit> = (0..1000).map(|_| limits.acquire(Some("s")).expect("no limit")).collect();
        drop(permits);
        assert!(limits.subjects().is_empty());
    }
}

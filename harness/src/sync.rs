//! Locking shared state without caring about poisoning: a thread that panicked while holding
//! a lock fails its own test; the state it leaves is still what the others should see. Used
//! by this crate, the scenario suite and the benchmark.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, also when a panicking thread poisoned it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

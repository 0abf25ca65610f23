//! Interrupting long work from another thread. The thread that drives an engine installs a flag
//! ([`install`]); the forward pass checks it before every layer and requantisation before every
//! matrix, so a job stops within one layer's work of being asked. The flag is per thread, so
//! several engines on several threads (as tests run them) do not stop each other.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The message of the error an interrupted pass returns.
pub const INTERRUPTED: &str = "interrupted";

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Make `flag` this thread's interrupt: work on this thread stops once it is set.
pub fn install(flag: Arc<AtomicBool>) {
    FLAG.with(|f| *f.borrow_mut() = Some(flag));
}

/// This thread's flag, for work it hands to other threads (a server it starts).
pub fn current() -> Option<Arc<AtomicBool>> {
    FLAG.with(|f| f.borrow().clone())
}

/// Whether this thread's work was asked to stop.
pub fn requested() -> bool {
    FLAG.with(|f| {
        f.borrow()
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
    })
}

/// An error when this thread's work was asked to stop.
pub fn check() -> candle_core::Result<()> {
    if requested() {
        return Err(candle_core::Error::Msg(INTERRUPTED.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_stops_only_its_own_thread() {
        let flag = Arc::new(AtomicBool::new(false));
        install(flag.clone());
        assert!(check().is_ok());
        flag.store(true, Ordering::Relaxed);
        let e = check().unwrap_err();
        assert!(e.to_string().contains(INTERRUPTED));
        let other = std::thread::spawn(requested).join().unwrap();
        assert!(!other, "another thread has no flag");
        assert!(current().is_some_and(|f| Arc::ptr_eq(&f, &flag)));
    }
}

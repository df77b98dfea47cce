//! Panic capture around user code: while a prior or simulator runs inside the engine, its
//! panics are caught and their message recorded (a bad region of parameter space would
//! otherwise flood stderr with backtraces). The panic hook that does it is installed only
//! while a run is in progress, and the previous hook is restored after.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

thread_local! {
    /// Set while user code runs on this thread under [`QuietPanics::run`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The message of the last recorded panic on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// How many guards are alive, and the hook that was in place before the first.
struct Installed {
    guards: usize,
    previous: Option<Arc<Hook>>,
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed { guards: 0, previous: None });

/// While alive, panics of code run through [`QuietPanics::run`] are recorded rather than
/// printed; every other panic goes to the previous hook unchanged. Guards nest (runs on
/// several threads at once); the last one dropped restores the previous hook.
pub(crate) struct QuietPanics(());

impl QuietPanics {
    /// Installs the recording hook (or counts one more guard if it is in place).
    pub(crate) fn install() -> QuietPanics {
        let mut state = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        if state.guards == 0 {
            let previous: Arc<Hook> = Arc::new(std::panic::take_hook());
            let chained = previous.clone();
            std::panic::set_hook(Box::new(move |info| {
                if QUIET.with(|q| q.get()) {
                    let msg = panic_message(info.payload()).unwrap_or_else(|| "panic".into());
                    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                    LAST_PANIC.with(|m| *m.borrow_mut() = Some(format!("{msg}{at}")));
                } else {
                    chained(info)
                }
            }));
            state.previous = Some(previous);
        }
        state.guards += 1;
        QuietPanics(())
    }

    /// Runs `f`, catching a panic; `Err` holds its message (and location) when known.
    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> std::result::Result<T, Option<String>> {
        QUIET.with(|q| q.set(true));
        let result = catch_unwind(AssertUnwindSafe(f));
        QUIET.with(|q| q.set(false));
        result.map_err(|payload| LAST_PANIC.with(|m| m.borrow_mut().take()).or_else(|| panic_message(&*payload)))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let mut state = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        state.guards -= 1;
        // The hook cannot be changed from a panicking thread; ours forwards anyway.
        if state.guards == 0 && !std::thread::panicking() {
            let ours = std::panic::take_hook();
            drop(ours);
            if let Some(previous) = state.previous.take() {
                match Arc::try_unwrap(previous) {
                    Ok(hook) => std::panic::set_hook(hook),
                    Err(shared) => std::panic::set_hook(Box::new(move |info| shared(info))),
                }
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caught panic's message is recorded, and the process's hook is restored after.
    #[test]
    fn panics_are_recorded_and_the_hook_restored() {
        let guard = QuietPanics::install();
        let r: std::result::Result<(), _> = guard.run(|| panic!("boom {}", 7));
        let msg = r.unwrap_err().unwrap();
        assert!(msg.starts_with("boom 7 at "), "{msg}");
        assert_eq!(guard.run(|| 3).unwrap(), 3);
        drop(guard);
        assert_eq!(INSTALLED.lock().unwrap().guards, 0);
        assert!(INSTALLED.lock().unwrap().previous.is_none());
    }
}

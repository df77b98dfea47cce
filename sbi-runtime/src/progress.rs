//! Progress output: one switch for a whole run ([`set_progress`]) over the per-stage ones
//! (`simulate(..).progress(..)`, `TrainConfig::with_progress`, `McmcConfig::with_progress`).
//!
//! A bar is drawn when both the global switch (on by default) and its stage's switch are on;
//! bars go to stderr and indicatif draws nothing when stderr is not a terminal.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static SHOWN: AtomicBool = AtomicBool::new(true);
/// Open [`Muted`] guards: while any is, stages show nothing.
static MUTED: AtomicUsize = AtomicUsize::new(0);

/// Turns progress output (bars and MCMC mixing warnings printed to stderr) on or off for every
/// stage of every run in this process, e.g. `set_progress(false)` once at the start of a batch
/// job. The per-stage switches still hide their stage when this is on. Results (including
/// the warnings stored on them) are the same either way.
pub fn set_progress(show: bool) {
    SHOWN.store(show, Ordering::Relaxed);
}

/// Whether the global switch is on (it is unless [`set_progress`]`(false)` was called).
pub fn progress_shown() -> bool {
    SHOWN.load(Ordering::Relaxed)
}

/// Whether a stage whose own switch is `stage` shows progress.
pub(crate) fn shows(stage: bool) -> bool {
    stage && progress_shown() && MUTED.load(Ordering::Relaxed) == 0
}

/// Hides the progress of every stage while it lives (bars already created keep drawing): a
/// diagnostic that runs a posterior's sampler hundreds of times shows its own bar, not one
/// per run, and collects the samplers' warnings instead of printing them.
pub(crate) struct Muted(());

impl Muted {
    pub(crate) fn new() -> Muted {
        MUTED.fetch_add(1, Ordering::Relaxed);
        Muted(())
    }
}

impl Drop for Muted {
    fn drop(&mut self) {
        MUTED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A progress bar for a stage: drawn on stderr when [`shows`]`(stage)`, hidden otherwise.
/// `len` is the number of steps (`None`: a spinner), `template` indicatif's template; a bar
/// with `tick` redraws its elapsed time while a long step runs.
pub(crate) fn bar(stage: bool, len: Option<u64>, template: &str, tick: bool) -> ProgressBar {
    let target = if shows(stage) { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(len, target);
    bar.set_style(ProgressStyle::with_template(template).expect("the template is valid"));
    if tick {
        bar.enable_steady_tick(Duration::from_millis(250));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_switch_overrides_every_stage() {
        // The only test that touches the switch; it leaves it on, as it found it.
        assert!(progress_shown());
        set_progress(false);
        assert!(!shows(true) && !shows(false));
        assert!(bar(true, Some(3), "{pos}", true).is_hidden());
        set_progress(true);
        assert!(shows(true) && !shows(false));
        assert!(bar(false, None, "{msg}", false).is_hidden());
    }
}

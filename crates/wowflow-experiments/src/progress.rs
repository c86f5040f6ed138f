//! A progress bar as a flow observer: step, loss, steps/s and ETA on a terminal, nothing
//! when stderr is not a terminal (logs and CI stay clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wowflow_core::{Control, FlowState, Observer, StepInfo};

/// A progress bar for a flow; it also stops the flow (after the current step) once Ctrl-C
/// has raised its flag.
pub struct Progress {
    bar: ProgressBar,
    interrupted: Arc<AtomicBool>,
}

impl Progress {
    /// A bar for `total` steps starting at `done`; `interrupted` is raised by Ctrl-C.
    pub fn new(total: usize, done: usize, interrupted: Arc<AtomicBool>) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} step {pos}/{len}  loss {msg}  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(done as u64);
        bar.reset_eta();
        Self { bar, interrupted }
    }

    /// Clears the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn on_step(&mut self, info: &StepInfo, _state: &FlowState) -> wowflow_core::Result<Control> {
        self.bar.set_position(info.step as u64 + 1);
        self.bar.set_message(format!("{:.4e}", info.loss));
        Ok(if self.interrupted.load(Ordering::Relaxed) {
            Control::Stop
        } else {
            Control::Continue
        })
    }

    fn needs_state(&self, _steps_done: usize, _total: usize) -> bool {
        false
    }
}

/// Installs a Ctrl-C handler that raises the returned flag: a flow observed by [`Progress`]
/// stops after the current step. What follows is the caller's: `wowflow flow` writes a
/// checkpoint and exits cleanly; the experiments' flows (`run_flow`, `flow_to_end`) end
/// with an error naming the step, because a table cell is computed whole or not at all.
/// A second Ctrl-C exits at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Installing can fail only if another handler exists (e.g. in tests); the flow then
    // simply cannot be interrupted gracefully, which is not an error.
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    flag
}

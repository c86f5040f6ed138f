//! A progress bar as a flow observer: step, loss, steps/s and ETA on a terminal. When
//! stderr is not a terminal (a log file, a batch or Ray job), one plain line a minute
//! instead, so a run left in the background still says how far it is and how fast — and a
//! short run (a test, most CI jobs) prints nothing. `WOWFLOW_PROGRESS_SECS` sets the
//! interval (`0`: no lines).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wowflow_core::{Control, FlowState, Observer, StepInfo};

/// A progress bar for a flow; it also stops the flow (after the current step) once Ctrl-C
/// has raised its flag.
pub struct Progress {
    bar: ProgressBar,
    log: Option<StepLog>,
    interrupted: Arc<AtomicBool>,
}

/// The environment variable that sets the seconds between two plain progress lines.
pub const PROGRESS_SECS_VAR: &str = "WOWFLOW_PROGRESS_SECS";

/// The interval between plain lines: `$WOWFLOW_PROGRESS_SECS` (a warning and the default of
/// 60 s when it is not a number of seconds), `None` for 0.
fn log_interval() -> Option<Duration> {
    const DEFAULT: Duration = Duration::from_secs(60);
    let Ok(text) = std::env::var(PROGRESS_SECS_VAR) else {
        return Some(DEFAULT);
    };
    match text.trim().parse::<f64>() {
        Ok(0.0) => None,
        Ok(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        _ => {
            eprintln!(
                "warning: {PROGRESS_SECS_VAR}={text:?} is not a number of seconds (0 for no \
                 progress lines); using {} s",
                DEFAULT.as_secs()
            );
            Some(DEFAULT)
        }
    }
}

/// Plain progress lines for a flow of `total` steps resumed at `first_step`: at most one per
/// `every`, with the speed measured since this process started the flow.
struct StepLog {
    every: Duration,
    total: usize,
    first_step: usize,
    started: Instant,
    last: Instant,
}

impl StepLog {
    fn new(every: Duration, total: usize, first_step: usize, now: Instant) -> Self {
        Self {
            every,
            total,
            first_step,
            started: now,
            last: now,
        }
    }

    /// The line to print after `steps_done` steps at `now`, if one is due.
    fn line(&mut self, steps_done: usize, loss: f64, now: Instant) -> Option<String> {
        if now.duration_since(self.last) < self.every {
            return None;
        }
        self.last = now;
        let done_here = steps_done.saturating_sub(self.first_step).max(1);
        let per_step = now.duration_since(self.started).as_secs_f64() / done_here as f64;
        let left = per_step * self.total.saturating_sub(steps_done) as f64;
        Some(format!(
            "step {steps_done}/{}  loss {loss:.4e}  {per_step:.3} s/step  ETA {}",
            self.total,
            minutes_seconds(left)
        ))
    }
}

/// `75.4` → `1 min 15 s`; `3 h 02 min` beyond an hour.
fn minutes_seconds(secs: f64) -> String {
    let secs = secs.round() as u64;
    match secs {
        s if s >= 3600 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
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
        let log = if std::io::stderr().is_terminal() {
            None
        } else {
            log_interval().map(|every| StepLog::new(every, total, done, Instant::now()))
        };
        Self {
            bar,
            log,
            interrupted,
        }
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
        if let Some(log) = &mut self.log {
            if let Some(line) = log.line(info.step + 1, info.loss, Instant::now()) {
                eprintln!("{line}");
            }
        }
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

/// The process's interrupt flag, cleared: Ctrl-C, SIGTERM or SIGHUP (what a batch scheduler
/// sends before it kills a job) raises it, and a flow observed by [`Progress`] stops after the
/// current step. What follows is the caller's: `wowflow flow` writes a checkpoint and exits
/// cleanly; the experiments' flows ([`crate::run_observed`]) save the flow's state as its last
/// segment and end with an error naming the step, because a table cell is computed whole or
/// not at all. A signal while no flow holds the flag (a network training, say), or a second
/// one, exits at once, as the signal would without the handler.
///
/// Why one flag for the process: a signal handler can be installed only once, so a flag made
/// per flow would leave every flow after the first deaf to the signal. Whether a flow listens
/// is whether a returned clone is alive (the handler and the process hold the other two).
///
/// In a host that handles the signals itself ([`host_interrupt_flag`]) no handler is
/// installed and the flag is not cleared here: the host clears and raises it.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    if HOST_SIGNALS.load(Ordering::SeqCst) {
        return shared_flag(false).clone();
    }
    let flag = shared_flag(true);
    flag.store(false, Ordering::SeqCst);
    flag.clone()
}

/// For a host program that handles Ctrl-C itself (the Python package, where it is Python's
/// `KeyboardInterrupt`): from now on no signal handler is installed, and the returned flag
/// (cleared) is the one every flow of the process watches. The host raises it to stop the
/// running flow after its current step, with its state saved as in [`interrupt_flag`]; a
/// flow that starts after that stops at its first step. Call it before each run.
pub fn host_interrupt_flag() -> Arc<AtomicBool> {
    HOST_SIGNALS.store(true, Ordering::SeqCst);
    let flag = shared_flag(false);
    flag.store(false, Ordering::SeqCst);
    flag.clone()
}

static HOST_SIGNALS: AtomicBool = AtomicBool::new(false);

/// The one flag; the first call decides whether the signal handler is installed.
fn shared_flag(install: bool) -> &'static Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        if install {
            let f = flag.clone();
            // Installing fails only if another handler exists (a host program's); flows
            // then cannot be interrupted gracefully, which is not an error.
            let _ = ctrlc::set_handler(move || {
                let listening = Arc::strong_count(&f) > 2;
                if !listening || f.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
            });
        }
        flag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_once_per_interval_with_the_speed_since_the_resume() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        // Resumed at step 500 of 5 000.
        let mut log = StepLog::new(every, 5000, 500, t0);
        assert_eq!(log.line(501, 1.0, t0 + Duration::from_secs(1)), None);
        // 400 steps in 60 s: 0.15 s/step, 4 100 steps left = 615 s.
        let line = log.line(900, 1.25e-3, t0 + every).expect("a line is due");
        assert_eq!(
            line,
            "step 900/5000  loss 1.2500e-3  0.150 s/step  ETA 10 min 15 s"
        );
        // Not again before another interval.
        assert_eq!(
            log.line(950, 1.0, t0 + every + Duration::from_secs(59)),
            None
        );
        assert!(log.line(1300, 1.0, t0 + 2 * every).is_some());
    }

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(minutes_seconds(4.4), "4 s");
        assert_eq!(minutes_seconds(75.4), "1 min 15 s");
        assert_eq!(minutes_seconds(3600.0 + 120.0 + 5.0), "1 h 02 min");
    }
}

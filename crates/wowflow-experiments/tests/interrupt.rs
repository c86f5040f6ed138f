//! The interrupt flag hears Ctrl-C's siblings SIGTERM and SIGHUP (what a batch scheduler sends
//! before it kills a job), for every flow of the process, not only the first. Its own test
//! binary: the signals go to the whole process (and with no flag held, one would end it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wowflow_experiments::progress::interrupt_flag;

fn signal_self(name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), std::process::id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name}");
}

fn raised_within(flag: &Arc<std::sync::atomic::AtomicBool>, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn every_flow_of_the_process_hears_sigterm_and_sighup() {
    let first = interrupt_flag();
    assert!(!first.load(Ordering::SeqCst));
    signal_self("TERM");
    assert!(raised_within(&first, Duration::from_secs(10)), "SIGTERM");

    // The next flow gets the same flag, cleared, and still hears the signals.
    let second = interrupt_flag();
    assert!(Arc::ptr_eq(&first, &second));
    assert!(
        !second.load(Ordering::SeqCst),
        "a new flow starts uninterrupted"
    );
    signal_self("HUP");
    assert!(raised_within(&second, Duration::from_secs(10)), "SIGHUP");
}

//! The stop signals of `meanflow train`: Ctrl-C (SIGINT), SIGTERM and SIGHUP (not on Windows).
//!
//! Until [`StopSignal::stop_cleanly`] (nothing written yet) a signal ends the process at once with
//! 128 + the signal number. After it, the first signal sets the stop flag the training session
//! looks at ([`StopSignal::flag`]): the session finishes its step (an evaluation in progress is
//! abandoned), writes the checkpoint, and the process exits with 128 + the signal (130 for
//! Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A second signal exits at once with that code (every
//! file is written atomically, so nothing is left half written).

use super::output::{errln, final_exit_code};
use super::{exit_code_for_signal, signal_name};
use meanflow::run::evaluation::STOP_POLL;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// The signals that stop a run cleanly.
#[cfg(unix)]
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];
#[cfg(not(unix))]
const STOP_SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// The stop signals of a run, registered (see the module documentation).
pub struct StopSignal {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
    /// When set, the next signal ends the process in the handler.
    exit_at_once: Arc<AtomicBool>,
}

impl StopSignal {
    /// Registers the handlers: from now until [`StopSignal::stop_cleanly`] a signal ends the
    /// process at once.
    pub fn install() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        let exit_at_once = Arc::new(AtomicBool::new(true));
        for sig in STOP_SIGNALS {
            // The actions run in this order: the shutdown fires only if `exit_at_once` is set
            // when the signal comes; the first signal after stop_cleanly sets it, after looking.
            // The signal number is stored before the stop flag, so a set flag has its signal.
            let installed = signal_hook::flag::register_conditional_shutdown(
                sig,
                exit_code_for_signal(sig),
                exit_at_once.clone(),
            )
            .and_then(|_| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .and_then(|_| signal_hook::flag::register(sig, exit_at_once.clone()));
            if let Err(e) = installed {
                errln!(
                    "warning: cannot catch {} ({e}); an interruption will lose the steps since the last checkpoint",
                    signal_name(sig)
                );
            }
        }
        StopSignal {
            stop,
            signal,
            exit_at_once,
        }
    }

    /// From now on the first signal stops the run cleanly instead of ending the process.
    pub fn stop_cleanly(&self) {
        self.exit_at_once.store(false, Ordering::SeqCst);
    }

    /// The flag the first signal sets, for the training session to look at.
    pub fn flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        if self.stop.load(Ordering::SeqCst) {
            Some(self.signal.load(Ordering::SeqCst) as i32)
        } else {
            None
        }
    }
}

/// Runs `work` on its own thread while this one watches for a stop signal. On one, `on_signal`
/// (given the signal) saves what must be saved and returns the exit code, and the process ends
/// with it, `work` unfinished: a long computation is abandoned within [`STOP_POLL`].
pub fn interruptible<R: Send>(
    stop: &StopSignal,
    work: impl FnOnce() -> R + Send,
    on_signal: impl FnOnce(i32) -> i32,
) -> R {
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel();
        let worker = scope.spawn(move || {
            let result = work();
            let _ = done.send(());
            result
        });
        loop {
            if let Some(signal) = stop.received() {
                std::process::exit(final_exit_code(on_signal(signal)));
            }
            match finished.recv_timeout(STOP_POLL) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                // Done, or the worker panicked (the channel closed): join tells which.
                _ => break,
            }
        }
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

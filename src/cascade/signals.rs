//! SIGINT and SIGTERM while a cascade writes. The default action would end cip wherever it is, and a
//! cascade ended between two renames leaves a project half applied. Instead the signal is noted:
//! while files are being staged the write stops cleanly (nothing replaced), and once files are being
//! replaced it is deferred until every file is (`transaction`). The async commands use
//! `crate::interrupt`; a cascade is synchronous and needs no runtime for this.
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::interrupt::Signal;

/// The first SIGINT or SIGTERM received since `catch`, 0 if none. Global because a signal handler
/// can reach nothing else (it gets no argument but the signal number).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM are noted, not fatal; `received` tells.
pub fn catch() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; `note` is async-signal-safe and lives forever.
        let failed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The first signal noted since `catch`, if any.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        libc::SIGINT => Some(Signal::Interrupt),
        libc::SIGTERM => Some(Signal::Terminate),
        _ => None,
    }
}

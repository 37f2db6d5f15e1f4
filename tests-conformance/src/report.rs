//! Measurements cases record for the conformance report (times, sizes). They are printed
//! by `cargo xtask conformance`, never asserted: performance is measured, not tested.

use std::sync::Mutex;

static METRICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records one measurement line.
pub fn metric(line: impl Into<String>) {
    METRICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.into());
}

/// Takes every recorded line.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *METRICS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Peak resident memory of this process so far (`VmHWM`), in KiB, where Linux reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Current resident memory of this process (`VmRSS`), in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

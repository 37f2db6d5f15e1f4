//! Pinning the server and the load generator to different CPUs with `taskset`, where the
//! machine has two or more: on a 2-core host an unpinned run measures the scheduler.

use std::process::Command;

/// The CPU the server runs on.
pub(crate) const SERVER_CPU: usize = 0;
/// The CPU the bench (and `redis-benchmark`, its child) runs on.
pub(crate) const CLIENT_CPU: usize = 1;

/// Pins every thread of process `pid` to `cpu`.
pub(crate) fn pin_pid(pid: u32, cpu: usize) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -a -p -c {cpu} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Pins this process to [`CLIENT_CPU`] before any runtime thread exists (threads made
/// later inherit it); the CPU on success, why not otherwise.
pub(crate) fn pin_self() -> Result<usize, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(format!("{cpus} CPU available: server and bench share it"));
    }
    pin_pid(std::process::id(), CLIENT_CPU)?;
    Ok(CLIENT_CPU)
}

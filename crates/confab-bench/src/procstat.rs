//! CPU time and memory of a process, read from /proc (Linux). Elsewhere every reading is None
//! and the report says so.

use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/<pid>/stat. The kernel reports USER_HZ, which is 100 on
/// every Linux architecture in use (glibc's sysconf(_SC_CLK_TCK) answers the same constant).
const TICKS_PER_SEC: f64 = 100.0;

/// Total CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name come state (field 3), ..., utime (14), stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SEC,
    ))
}

/// A `/proc/<pid>/status` field in kB (VmRSS, VmHWM), as bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The resident set size now.
pub fn rss(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// The peak resident set size since start (or since [`reset_peak`]).
pub fn peak_rss(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0); false if that is not possible.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Total size of the files under `dir` (the data dir's footprint).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// CPU use and peak memory of a process over one stretch of time.
pub struct Meter {
    pid: u32,
    start: Instant,
    cpu_start: Option<Duration>,
    own_cpu_start: Option<Duration>,
    peak_reset: bool,
    sampled_peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

/// What a [`Meter`] measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// CPU time of the process per wall-clock second, in cores (1.0 = one core busy).
    pub cores: Option<f64>,
    /// The same for the benchmark process itself (the load generator).
    pub client_cores: Option<f64>,
    /// The highest RSS seen during the stretch.
    pub peak_rss: Option<u64>,
}

impl Meter {
    /// Starts measuring `pid`: resets its peak RSS and samples its RSS every 50 ms as well
    /// (in case the reset is refused).
    pub fn start(pid: u32) -> Self {
        let peak_reset = reset_peak(pid);
        let sampled_peak =
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss(pid).unwrap_or(0)));
        let sampler = tokio::spawn({
            let peak = sampled_peak.clone();
            async move {
                let mut ticks = tokio::time::interval(Duration::from_millis(50));
                loop {
                    ticks.tick().await;
                    match rss(pid) {
                        Some(now) => {
                            peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                        }
                        None => return,
                    }
                }
            }
        });
        Self {
            pid,
            start: Instant::now(),
            cpu_start: cpu_time(pid),
            own_cpu_start: cpu_time(std::process::id()),
            peak_reset,
            sampled_peak,
            sampler: Some(sampler),
        }
    }

    pub fn stop(mut self) -> Usage {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let per_sec = |before: Option<Duration>, after: Option<Duration>| {
            Some(after?.saturating_sub(before?).as_secs_f64() / wall)
        };
        let cores = per_sec(self.cpu_start, cpu_time(self.pid));
        let client_cores = per_sec(self.own_cpu_start, cpu_time(std::process::id()));
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
        let sampled = self.sampled_peak.load(std::sync::atomic::Ordering::Relaxed);
        let hwm = if self.peak_reset {
            peak_rss(self.pid)
        } else {
            None
        };
        let peak = hwm.unwrap_or(0).max(sampled);
        Usage {
            cores,
            client_cores,
            peak_rss: (peak > 0).then_some(peak),
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(rss(pid).unwrap() > 0);
        assert!(peak_rss(pid).unwrap() >= rss(pid).unwrap() / 2);
    }
}

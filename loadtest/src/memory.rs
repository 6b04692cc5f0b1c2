//! Gateway memory and CPU time: the resident set size and the CPU time of local gateway
//! processes, from `/proc`.

use anyhow::Context;

/// The summed RSS of `pids`, in bytes.
pub(crate) fn rss(pids: &[u32]) -> anyhow::Result<u64> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no VmRSS for process {pid}"))?;
        total += kib * 1024;
    }
    Ok(total)
}

/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/100 s (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The summed CPU time (user and system, every thread) `pids` used so far, in seconds; 10 ms
/// resolution.
pub(crate) fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    let mut ticks = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The fields after the command name (which may hold spaces and parentheses) start with
        // the third, the state; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        ticks += field(14).zip(field(15)).map(|(u, s)| u + s).with_context(|| format!("no CPU times for process {pid}"))?;
    }
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        assert!(super::rss(&[std::process::id()]).expect("rss") > 1024 * 1024);
        let before = super::cpu_seconds(&[std::process::id()]).expect("cpu");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            std::hint::black_box(0);
        }
        assert!(super::cpu_seconds(&[std::process::id()]).expect("cpu") > before);
    }
}

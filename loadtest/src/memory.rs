//! Gateway memory: the resident set size of local gateway processes, from `/proc`.

use anyhow::Context;

/// The summed RSS of `pids`, in bytes.
pub fn rss(pids: &[u32]) -> anyhow::Result<u64> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        assert!(super::rss(&[std::process::id()]).expect("rss") > 1024 * 1024);
    }
}

//! Gateway process cost from Linux procfs: CPU time (user + system, `/proc/<pid>/stat` fields
//! 14 and 15, in USER_HZ ticks, proc(5)) and resident set size (`VmRSS` of
//! `/proc/<pid>/status`).

use std::path::PathBuf;

/// USER_HZ: the unit of the stat CPU fields. Linux fixes it at 100 for user space on every
/// architecture it supports (the kernel's own HZ may differ; the ABI value does not).
const USER_HZ: u64 = 100;

/// One reading of a process's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcSample {
    /// User + system CPU time since the process started, in milliseconds.
    pub cpu_ms: u64,
    pub rss_kib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected format in {0}")]
    Format(PathBuf),
}

/// Reads CPU time and RSS of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat_path = base.join("stat");
    let status_path = base.join("status");
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|source| ProcError::Read {
            path: path.clone(),
            source,
        })
    };
    let cpu_ms = parse_stat_cpu_ms(&read(&stat_path)?)
        .ok_or_else(|| ProcError::Format(stat_path.clone()))?;
    let rss_kib =
        parse_status_rss_kib(&read(&status_path)?).ok_or(ProcError::Format(status_path))?;
    Ok(ProcSample { cpu_ms, rss_kib })
}

/// utime + stime from a `/proc/<pid>/stat` line, in ms. The command name (field 2) is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat_cpu_ms(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; utime and stime are fields 14 and 15.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime).saturating_mul(1000) / USER_HZ)
}

/// `VmRSS` in KiB from `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_command_name() {
        // utime 250 ticks, stime 50 ticks -> 3000 ms.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 \
                    9 0 1234 987654321 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(parse_stat_cpu_ms(stat), Some(3000));
    }

    #[test]
    fn truncated_stat_gives_none() {
        assert_eq!(parse_stat_cpu_ms("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ms("no parenthesis"), None);
    }

    #[test]
    fn rss_comes_from_vmrss_not_vmhwm() {
        let status = "Name:\tcastgate\nVmHWM:\t  90000 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss_kib(status), Some(51234));
        assert_eq!(parse_status_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0, "{s:?}");
    }
}

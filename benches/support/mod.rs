//! Helpers shared by the benchmarks.
#![allow(dead_code)]

/// An environment override of a size, e.g. `NHI_BENCH_FINDINGS=100000`.
pub fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// A `/proc/self/status` memory field in KiB (`VmHWM:` is peak RSS).
pub fn rss_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

//! Exporter health metrics: build info, per-source up / last success /
//! poll duration / errors, and config reload status. Reported by the one
//! central runner, never by the sources themselves.

use crate::model::ErrorReason;
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("NHI_EXPORTER_REVISION_OR_UNKNOWN");

#[derive(Debug, Clone)]
pub struct Health {
    pub build_info: GaugeVec,
    pub up: GaugeVec,
    pub last_success: GaugeVec,
    pub interval: GaugeVec,
    pub poll_duration: HistogramVec,
    pub errors: IntCounterVec,
    pub reload_ok: Gauge,
    pub reload_ts: Gauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and labels are constants: failure is a programming error.
    r.expect("static metric definition")
}

impl Health {
    pub fn new(registry: &Registry) -> Self {
        let h = Health {
            build_info: must(GaugeVec::new(
                Opts::new("nhi_exporter_build_info", "Always 1; labelled with the build's version and revision."),
                &["version", "revision"],
            )),
            up: must(GaugeVec::new(
                Opts::new(
                    "nhi_source_up",
                    "1 when the source's latest poll succeeded with every input read, else 0.",
                ),
                &["source", "source_type"],
            )),
            last_success: must(GaugeVec::new(
                Opts::new(
                    "nhi_source_last_success_timestamp_seconds",
                    "Unix time of the source's latest poll whose result was applied to the store.",
                ),
                &["source", "source_type"],
            )),
            interval: must(GaugeVec::new(
                Opts::new(
                    "nhi_source_interval_seconds",
                    "The source's configured poll interval (before jitter).",
                ),
                &["source", "source_type"],
            )),
            poll_duration: must(HistogramVec::new(
                HistogramOpts::new("nhi_source_poll_duration_seconds", "Wall time of each poll, fetch and apply.")
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
                &["source", "source_type"],
            )),
            errors: must(IntCounterVec::new(
                Opts::new(
                    "nhi_source_errors_total",
                    "Failed polls and rejected inputs, by reason (timeout, auth, rate_limited, http_4xx, http_5xx, parse, io).",
                ),
                &["source", "source_type", "reason"],
            )),
            reload_ok: must(Gauge::new(
                "nhi_config_last_reload_successful",
                "1 when the latest configuration (re)load succeeded, 0 when it failed and the previous configuration is still in use.",
            )),
            reload_ts: must(Gauge::new(
                "nhi_config_last_reload_success_timestamp_seconds",
                "Unix time of the latest successful configuration (re)load.",
            )),
        };
        must(registry.register(Box::new(h.build_info.clone())));
        must(registry.register(Box::new(h.up.clone())));
        must(registry.register(Box::new(h.last_success.clone())));
        must(registry.register(Box::new(h.interval.clone())));
        must(registry.register(Box::new(h.poll_duration.clone())));
        must(registry.register(Box::new(h.errors.clone())));
        must(registry.register(Box::new(h.reload_ok.clone())));
        must(registry.register(Box::new(h.reload_ts.clone())));
        h.build_info
            .with_label_values(&[VERSION, REVISION])
            .set(1.0);
        // The standard process_* family (CPU, resident memory, open fds,
        // start time): restarts and leaks show on the dashboards.
        #[cfg(target_os = "linux")]
        must(registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        h
    }

    /// Create a source's series (errors at 0 for every reason) so that
    /// rate() and absent() work from the first scrape.
    pub fn add_source(&self, name: &str, kind: &str, last_success: Option<i64>) {
        self.up.with_label_values(&[name, kind]).set(0.0);
        let _ = self.interval.with_label_values(&[name, kind]);
        self.last_success
            .with_label_values(&[name, kind])
            .set(last_success.unwrap_or(0) as f64);
        let _ = self.poll_duration.with_label_values(&[name, kind]);
        for r in ErrorReason::ALL {
            let _ = self.errors.with_label_values(&[name, kind, r.as_str()]);
        }
    }

    /// Forget a source removed by a reload.
    pub fn remove_source(&self, name: &str, kind: &str) {
        let _ = self.up.remove_label_values(&[name, kind]);
        let _ = self.last_success.remove_label_values(&[name, kind]);
        let _ = self.interval.remove_label_values(&[name, kind]);
        let _ = self.poll_duration.remove_label_values(&[name, kind]);
        for r in ErrorReason::ALL {
            let _ = self.errors.remove_label_values(&[name, kind, r.as_str()]);
        }
    }
}

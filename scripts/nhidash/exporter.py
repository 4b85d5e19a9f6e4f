"""The nhi-exporter dashboard: health of the exporter and its sources."""

from .common import *  # noqa: F401,F403 (panel builders and constants)


def exporter():
    x = sel('source=~"$source"')
    health = "Measurement integrity for every NHI KPI (a failing or stale source under-counts them)"
    panels = [
        row("Exporter"),
        stat("Scrape target up",
             doc("Whether Prometheus can scrape the exporter (Prometheus' own up series). While it is 0 every "
                 "NHI KPI and alert from this instance is blind.", "", CSF_MONITOR + ", GV.OV-03", how=health + "."),
             targets([(f"up{sel()}", "{{instance}}")]), "short", th("red", (1, "green")),
             w=4, h=5, mappings=UP_MAPPING, graph=False),
        stat("Config reload",
             doc("Whether the last configuration reload succeeded. After a failed reload the exporter keeps "
                 "running the previous configuration.", "", "NIST CSF 2.0: PR.PS-01 (configuration management)"),
             targets([(f"nhi_config_last_reload_successful{sel()}", "{{instance}}")]), "short", th("red", (1, "green")),
             w=4, h=5, mappings=RELOAD_MAPPING, graph=False),
        stat("Last successful config reload",
             doc("When the configuration was last loaded successfully.", "", "NIST CSF 2.0: PR.PS-01"),
             targets([(f"nhi_config_last_reload_success_timestamp_seconds{sel()} * 1000", "{{instance}}")]),
             "dateTimeFromNow", NEUTRAL, w=4, h=5, graph=False),
        stat("Store history",
             doc("Time since the store's first successful poll. A policy window longer than this is young: its "
                 "KPIs cover only the history there is. Orange below 7d, yellow below 90d.",
                 "", CSF_REVIEW),
             targets([(f"nhi_store_history_seconds{sel()}", "{{instance}}")]),
             "s", th("orange", (7 * 86400, "yellow"), (90 * 86400, "green")), w=4, h=5, graph=False),
        table("Build info",
              doc("Version and revision of each exporter instance (nhi_exporter_build_info).", "", CSF_MONITOR),
              targets([(f"nhi_exporter_build_info{sel()}", "")], instant=True, fmt="table"),
              "short", NEUTRAL, w=8, h=5,
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "__name__": True},
                  "indexByName": {"job": 0, "instance": 1, "version": 2, "revision": 3},
                  "renameByName": {},
              }}]),
        timeseries("Exporter process: memory, CPU, open files",
                   doc("The exporter's own process (process_* from the standard process collector): resident "
                       "memory, CPU cores used, open file descriptors. A restart shows as an annotation and as "
                       "uptime falling to 0.", "", CSF_MONITOR),
                   targets([
                       (f"process_resident_memory_bytes{sel()}", "{{instance}} resident memory"),
                       (f"rate(process_cpu_seconds_total{sel()}[$__rate_interval])", "{{instance}} CPU cores"),
                       (f"process_open_fds{sel()}", "{{instance}} open fds"),
                   ]),
                   "bytes", NEUTRAL, w=16, h=7,
                   overrides=[override_ref("B", unit="short", custom__axisPlacement="right"),
                              override_ref("C", unit="short", custom__axisPlacement="right")]),
        stat("Exporter uptime",
             doc("Time since the exporter process started (time() − process_start_time_seconds). Counters and "
                 "histograms continue across restarts (they are persisted); this shows when one happened.",
                 "", CSF_MONITOR),
             targets([(f"time() - process_start_time_seconds{sel()}", "{{instance}}")]),
             "s", th("orange", (600, "green")), w=8, h=7, graph=False),
        row("Sources"),
        stat("Sources up",
             doc("Whether each source's latest poll succeeded. A source down for 15m fires NHISourceDown.",
                 "", CSF_MONITOR, how=health + "."),
             targets([(f"nhi_source_up{x}", "{{source}}")]), "short", th("red", (1, "green")),
             w=12, h=6, mappings=UP_MAPPING, graph=False),
        bargauge("Time since last successful poll",
                 doc("Seconds since each source's last successful poll. Orange above 1h, red above 6h (the "
                     "NHISourceStale thresholds); past policy.stale_after the source's data is dropped from the KPIs.",
                     "", CSF_MONITOR, how=health + "."),
                 targets([(f"time() - nhi_source_last_success_timestamp_seconds{x}", "{{source}}")], instant=True),
                 "s", SOURCE_AGE, w=12, h=6),
        timeseries("Source up over time",
                   doc("Per-source poll success (1) or failure (0) over time.", "", CSF_MONITOR, how=health + "."),
                   targets([(f"nhi_source_up{x}", "{{source}}")]),
                   "short", th("red", (1, "green")), w=12, h=8, min=0, max=1, mappings=UP_MAPPING),
        timeseries("Time since last successful poll over time",
                   doc("Seconds since each source's last successful poll, with the 1h/6h stale thresholds.",
                       "", CSF_MONITOR, how=health + "."),
                   targets([(f"time() - nhi_source_last_success_timestamp_seconds{x}", "{{source}}")]),
                   "s", SOURCE_AGE, w=12, h=8, threshold_lines=True),
        timeseries("Poll duration p50/p90 by source (1h)",
                   doc("p50 and p90 of source poll duration over the last hour, from nhi_source_poll_duration_seconds. "
                       "A poll close to the source's timeout will start failing.", "", CSF_MONITOR),
                   targets([
                       (f"histogram_quantile(0.5, sum by (source, le) (rate(nhi_source_poll_duration_seconds_bucket{x}[1h])))", "{{source}} p50"),
                       (f"histogram_quantile(0.9, sum by (source, le) (rate(nhi_source_poll_duration_seconds_bucket{x}[1h])))", "{{source}} p90"),
                   ]),
                   "s", NEUTRAL, w=12, h=8),
        timeseries("Poll errors by source and reason (per hour)",
                   doc("Failed polls in the trailing hour by source and reason (timeout, auth, rate_limited, "
                       "http_4xx, http_5xx, parse, io).", "", CSF_MONITOR, how=health + "."),
                   targets([(f"sum by (source, reason) (increase(nhi_source_errors_total{x}[1h]))", "{{source}} {{reason}}")]),
                   "short", NEUTRAL, w=12, h=8, stack=True, bars=True),
        bargauge("Poll errors by reason (last 24h)",
                 doc("Failed polls in the last 24h by reason, all selected sources.", "", CSF_MONITOR),
                 targets([(f"sum by (reason) (increase(nhi_source_errors_total{x}[1d]))", "{{reason}}")], instant=True),
                 "short", th("green", (1, "orange")), w=12, h=8),
        timeseries("Scrape duration and samples",
                   doc("How long Prometheus takes to scrape the exporter and how many samples it returns (Prometheus' "
                       "own scrape_* series). Scrapes render a cached snapshot and must stay cheap.", "", CSF_MONITOR),
                   targets([
                       (f"scrape_duration_seconds{sel()}", "{{instance}} duration"),
                       (f"scrape_samples_scraped{sel()}", "{{instance}} samples"),
                   ]),
                   "s", NEUTRAL, w=12, h=8,
                   overrides=[override_ref("B", unit="short", custom__axisPlacement="right")]),
    ]
    extra = [var_query("source", "Source", f"label_values(nhi_source_up{{{SEL}}}, source)")]
    return dashboard(
        "nhi-exporter", "NHI exporter health",
        "Health of nhi-exporter itself: scrape, sources up and stale, poll duration, poll errors by reason, "
        "config reload status.",
        panels, extra_vars=extra, time_from="now-24h", tags=["exporter-health"],
    )

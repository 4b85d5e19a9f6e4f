"""The nhi-exposure dashboard: leaked secrets and their remediation."""

from .common import *  # noqa: F401,F403 (panel builders and constants)


def exposure():
    f = ('source=~"$source"', 'secret_type=~"$secret_type"')
    panels = [
        row("Open exposures (deduplicated across scanners)"),
        stat(
            "Open exposures by validity",
            doc("Distinct open exposures (one per secret, however many scanners report it) by validity: "
                "live = the secret works, inactive = shown unusable, unknown = not checkable.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"sum by (validity) (nhi_exposed_secrets{sel()})", "{{validity}}")]),
            "short", LOWER_BETTER_COUNT, w=8, h=5, decimals=0,
            overrides=[
                override_name("inactive", thresholds=th("blue")),
                override_name("unknown", thresholds=th("green", (1, "orange"))),
            ],
        ),
        stat(
            "Oldest open exposure by validity",
            doc("Age of the oldest open exposure per validity. Orange above 4h, red above 24h (the "
                "NHILiveSecretExposed thresholds, which apply to live only).",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"nhi_exposure_oldest_open_age_seconds{sel()}", "{{validity}}")]),
            "s", LIVE_AGE, w=8, h=5, noValue="none open",
        ),
        stat(
            "Residual exposures",
            doc("Exposures whose findings are all closed but whose secret still works (closed, still exposed).",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f"nhi_residual_exposures{sel()}", "{{instance}}")]),
            "short", LOWER_BETTER_COUNT, w=4, h=5, decimals=0,
        ),
        stat(
            "Secrets-in-code delta",
            doc("Open exposures now minus at the start of each window; negative is better.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f"nhi_secrets_in_code_delta{sel()}", "{{window}}")]),
            "short", LOWER_BETTER_COUNT, w=4, h=5, decimals=0, graph=False,
        ),
        timeseries(
            "Open exposures by validity",
            doc("Distinct open exposures over time, stacked by validity. The live band is the exposure an "
                "attacker can use now.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"sum by (validity) (nhi_exposed_secrets{sel()})", "{{validity}}")]),
            "short", NEUTRAL, w=12, h=8, stack=True,
            overrides=[
                override_name("live", color=fixed("red")),
                override_name("unknown", color=fixed("orange")),
                override_name("inactive", color=fixed("blue")),
            ],
        ),
        timeseries(
            "Oldest open exposure age",
            doc("Age of the oldest open exposure per validity over time, with the 4h/24h live-secret alert "
                "thresholds as lines. A saw-tooth is healthy (exposures get closed); a ramp is not.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"nhi_exposure_oldest_open_age_seconds{sel()}", "{{validity}}")]),
            "s", LIVE_AGE, w=12, h=8, threshold_lines=True,
        ),
        row("Findings by scanner and secret type (activity)"),
        bargauge(
            "Open findings by secret type (top 15)",
            doc("Open findings reported by the selected scanners, by normalised secret type (scanner rule id). "
                "Counts findings, not distinct secrets: one secret found by two scanners counts twice.",
                OWASP_EXPOSURE, CSF_MONITOR),
            targets([(f"topk(15, sum by (secret_type) (nhi_findings_open{sel(*f)}))", "{{secret_type}}")], instant=True),
            "short", NEUTRAL, w=12, h=10,
        ),
        table(
            "Open findings by source, secret type and validity",
            doc("Open findings per scanner, secret type and validity, for triage. Activity counts; the "
                "deduplicated exposures are above.",
                OWASP_EXPOSURE, CSF_MONITOR),
            targets([(f"sum by (source, secret_type, validity) (nhi_findings_open{sel(*f)})", "")], instant=True, fmt="table"),
            "short", NEUTRAL, w=12, h=10,
            transformations=[{
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": {"Value": "open findings"}},
            }],
        ),
        timeseries(
            "Open findings by source and validity",
            doc("Open findings over time per scanner and validity.",
                OWASP_EXPOSURE, CSF_MONITOR),
            targets([(f"sum by (source, validity) (nhi_findings_open{sel(*f)})", "{{source}} {{validity}}")]),
            "short", NEUTRAL, w=24, h=8,
        ),
        row("Detections vs closures vs confirmed revocations"),
        timeseries(
            "Detections vs closures vs confirmed revocations (per 24h)",
            doc("Rolling 24h counts: findings detected and findings closed (activity, filtered by source) next "
                "to exposures confirmed revoked (outcome: the secret shown unusable; not per source). Closures "
                "far above confirmed revocations means findings are closed without the secret being revoked.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([
                (f"sum(increase(nhi_findings_detected_total{sel(*f)}[1d]))", "detected (activity)"),
                (f'sum(increase(nhi_findings_closed_total{sel(f[0])}[1d]))', "closed (activity)"),
                (f"sum(increase(nhi_exposures_revoked_total{sel()}[1d]))", "confirmed revoked (outcome)"),
            ]),
            "short", NEUTRAL, w=24, h=9,
            overrides=[
                override_ref("A", color=fixed("orange")),
                override_ref("B", color=fixed("blue")),
                override_ref("C", color=fixed("green")),
            ],
        ),
        timeseries(
            "Closures by resolution (per 24h)",
            doc("Findings closed in the last 24h by resolution (revoked, false_positive, wont_fix, used_in_tests, "
                "disappeared, other). Only 'revoked' claims the secret is dead, and only a confirmed revocation "
                "proves it.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f'sum by (resolution) (increase(nhi_findings_closed_total{sel(f[0])}[1d]))', "{{resolution}}")]),
            "short", NEUTRAL, w=12, h=8, stack=True,
        ),
        timeseries(
            "Confirmed revocations by confirmer (per 24h)",
            doc("Exposures confirmed unusable in the last 24h, by what confirmed it (aws, gcp, azure, vault, "
                "kubernetes, validity_check).",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"sum by (confirmed_by) (increase(nhi_exposures_revoked_total{sel()}[1d]))", "{{confirmed_by}}")]),
            "short", NEUTRAL, w=12, h=8, stack=True,
        ),
        bargauge(
            "Time to revoke distribution (all time)",
            doc("How many exposures were revoked within each time-to-revoke bucket (seconds, upper bound), "
                "since the store started. Outcome KPI distribution.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"sum by (le) (nhi_time_to_revoke_seconds_bucket{sel()})", "{{le}}")], instant=True, fmt="heatmap"),
            "short", NEUTRAL, w=12, h=9, overrides=BUCKET_NAMES,
        ),
        bargauge(
            "Time to close distribution (all time)",
            doc("How many findings were closed within each time-to-close bucket (seconds, upper bound), for the "
                "selected scanners, since the store started. The activity twin of time to revoke.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f'sum by (le) (nhi_time_to_close_seconds_bucket{sel(f[0])})', "{{le}}")], instant=True, fmt="heatmap"),
            "short", NEUTRAL, w=12, h=9, overrides=BUCKET_NAMES,
        ),
    ]
    extra = [
        var_query("source", "Scanner", f"label_values(nhi_findings_open{{{SEL}}}, source)"),
        var_query("secret_type", "Secret type", f'label_values(nhi_findings_open{{{SEL}, source=~"$source"}}, secret_type)'),
    ]
    return dashboard(
        "nhi-exposure", "NHI exposure",
        "Leaked secrets: open exposures by validity and secret type, the oldest open exposure, and "
        "detections vs closures vs confirmed revocations.",
        panels, extra_vars=extra, time_from="now-30d", tags=["exposure"],
    )

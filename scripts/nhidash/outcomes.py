"""The nhi-outcomes dashboard: the outcome story for security reviews."""

from .common import *  # noqa: F401,F403 (panel builders and constants)


def outcomes():
    w = 'window="$window"'
    panels = [
        # First screen: each panel answers one review question (activity next to outcome).
        row("Outcome story: is exposure actually going down?"),
        stat(
            "Working leaked secrets now",
            doc("Q: how many leaked secrets still work right now? Open exposures that are live (confirmed "
                "working) or unknown (nobody could verify), deduplicated across scanners. The outcome every "
                "other number serves.", OWASP_EXPOSURE, CSF_RESPOND),
            targets([
                (f"nhi_exposed_secrets{sel(eq('validity', 'live'))}", "live"),
                (f"nhi_exposed_secrets{sel(eq('validity', 'unknown'))}", "unverified"),
                (f"nhi_residual_exposures{sel()}", "closed, still working"),
            ]),
            "short", LOWER_BETTER_COUNT, w=6, h=6, decimals=0,
        ),
        stat(
            "Closed (activity) vs revoked (outcome), $window",
            doc("Q: does closing findings reduce exposure? Closure ratio (activity: findings closed ÷ open + "
                "detected in the window) next to exposure-reduction ratio (outcome: exposures confirmed revoked "
                "÷ open + opened). A large gap is compliance theatre.", OWASP_EXPOSURE, CSF_REVIEW),
            targets([
                (f"nhi_closure_ratio{sel(w)}", "closed (activity)"),
                (f"nhi_exposure_reduction_ratio{sel(w)}", "revoked (outcome)"),
            ]),
            "percentunit", HIGHER_BETTER, w=6, h=6, decimals=0, graph=False,
        ),
        stat(
            "Time to revoke (exact median), $window",
            doc("Q: how fast does a leaked secret stop working? THE time-to-revoke KPI: exact median of first "
                "detection → confirmed revocation over the window, computed by the exporter from its store. "
                "Below: days without any confirmed revocation (remediation stalled when it grows while secrets "
                "are open). The p50/p90 further down are histogram estimates over Prometheus' last 7 days.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([
                (f"nhi_time_to_revoke_median_seconds{sel(w)}", "median"),
                (f"nhi_exposure_revocation_idle_seconds{sel()}", "since last revocation"),
            ]),
            "s", REVOKE_TIME, w=6, h=6, graph=False, noValue="no revocations in window",
        ),
        stat(
            "Standing privilege and governed share",
            doc("Q: are identities getting safer? Standing privileged NHIs added in the window (per the "
                "exporter's store; negative is better) next to the share of NHIs in a governed lifecycle.",
                "OWASP NHI Top 10: NHI5 Overprivileged NHI, NHI1 Improper Offboarding",
                "NIST CSF 2.0: PR.AA-05, PR.AA-01"),
            targets([
                (f"sum(nhi_standing_privileged_identities_change{sel(w)})", "privileged added"),
                (f"instance:nhi_identities_governed:ratio{sel()}", "governed share"),
            ]),
            "short", th("green", (1, "red")), w=6, h=6, decimals=0, graph=False,
            overrides=[override_ref("B", unit="percentunit", thresholds=HIGHER_BETTER)],
        ),
        bargauge(
            "Trend per window: secrets in code",
            doc("Q: is it getting better over 7d, 30d and 90d? Distinct open exposures now minus at each window's "
                "start; negative = secrets removed faster than they leak. A rise only in the long windows is a "
                "slow leak (NHISecretsInCodeRising fires per window).", OWASP_EXPOSURE, CSF_REVIEW),
            targets([(f"nhi_secrets_in_code_delta{sel()}", "{{window}}")], instant=True),
            "short", LOWER_BETTER_COUNT, w=8, h=6, decimals=0,
        ),
        bargauge(
            "Trend per window: posture",
            doc("Q: which way is the posture moving? Overall posture score now minus at each window's start "
                "(0.05 = 5 points); red below −0.05, the NHIPostureScoreDropping threshold.",
                "OWASP NHI Top 10: NHI1, NHI2, NHI5, NHI7", CSF_REVIEW),
            targets([(f"nhi_posture_score_change{sel(eq('dimension', 'overall'))}", "{{window}}")], instant=True),
            "percentunit", CHANGE, w=8, h=6, min=-0.25, max=0.25, decimals=1,
        ),
        bargauge(
            "Trend per window: standing privilege",
            doc("Q: is standing privilege falling quarter over quarter? Standing privileged NHIs now minus at each "
                "window's start, all sources (a source added later counts from its first poll).",
                "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05"),
            targets([(f"sum by (window) (nhi_standing_privileged_identities_change{sel()})", "{{window}}")], instant=True),
            "short", th("green", (1, "red")), w=8, h=6, decimals=0,
        ),
        row("Posture"),
        stat(
            "Overall posture score",
            doc("Overall NHI posture score, 0..1, higher is better: the mean of the exposure, privilege, "
                "hygiene and governance dimensions that have data. Values come from the exporter's latest poll.",
                "OWASP NHI Top 10: NHI1, NHI2, NHI5, NHI7", CSF_REVIEW),
            targets([(f"nhi_posture_score{sel(eq('dimension', 'overall'))}", "{{instance}}")]),
            "percentunit", HIGHER_BETTER, w=5, h=6, min=0, max=1, decimals=0,
        ),
        bargauge(
            "Posture score by dimension",
            doc("Posture score per dimension, 0..1: exposure = 1 ÷ (1 + open live/unknown exposures ÷ 10), "
                "so every leak lowers it; privilege = 1 − standing privileged ÷ NHIs; hygiene = 1 − long-lived ÷ active "
                "credentials; governance = governed ÷ NHIs.",
                "OWASP NHI Top 10: NHI2 (exposure), NHI5 (privilege), NHI7 (hygiene), NHI1 (governance)",
                "NIST CSF 2.0: GV.OV-03, PR.AA-01, PR.AA-05, RS.MI-02"),
            targets([(f"nhi_posture_score{sel(ne('dimension', 'overall'))}", "{{dimension}}")], instant=True),
            "percentunit", HIGHER_BETTER, w=7, h=6, min=0, max=1, decimals=0,
        ),
        bargauge(
            "Overall posture change per window",
            doc("Overall posture score now minus at the start of each policy window (7d, 30d, 90d), from the "
                "exporter's own history. Negative = posture regressed; 0.05 = 5 points. Orange below 0, red "
                "below −0.05 (the NHIPostureScoreDropping warning).",
                "OWASP NHI Top 10: NHI1, NHI2, NHI5, NHI7", CSF_REVIEW),
            targets([(f"nhi_posture_score_change{sel(eq('dimension', 'overall'))}", "{{window}}")], instant=True),
            "percentunit", CHANGE, w=6, h=6, min=-0.25, max=0.25, decimals=1,
        ),
        stat(
            "Posture change by dimension ($window)",
            doc("Change of each posture dimension over the selected window (score now minus at the window's "
                "start). Tells which dimension moved the overall score.",
                "OWASP NHI Top 10: NHI2 (exposure), NHI5 (privilege), NHI7 (hygiene), NHI1 (governance)",
                CSF_REVIEW),
            targets([(f"nhi_posture_score_change{sel(w)}", "{{dimension}}")]),
            "percentunit", CHANGE, w=6, h=6, decimals=1, graph=False,
        ),
        timeseries(
            "Posture score trend",
            doc("Posture score per dimension over time (0..1). An outcome trend: it moves only when exposure, "
                "privilege, credential hygiene or governance actually change.",
                "OWASP NHI Top 10: NHI1, NHI2, NHI5, NHI7", CSF_REVIEW),
            targets([(f"nhi_posture_score{sel()}", "{{dimension}}")]),
            "percentunit", HIGHER_BETTER, w=24, h=8, min=0, max=1,
        ),
        row("Exposure outcomes"),
        stat(
            "Secrets-in-code delta per window",
            doc("Distinct open exposures (all validities) now minus at the start of each window. Negative is "
                "better: secrets are removed faster than they leak. Red above 0 (the NHISecretsInCodeRising "
                "warning on the 7d window).",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f"nhi_secrets_in_code_delta{sel()}", "{{window}}")]),
            "short", LOWER_BETTER_COUNT, w=6, h=5, decimals=0,
        ),
        stat(
            "Live exposed secrets",
            doc("Distinct open exposures whose secret is confirmed to still work (validity live), "
                "deduplicated across scanners. The number that matters most: each one is usable by an attacker now.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"nhi_exposed_secrets{sel(eq('validity', 'live'))}", "{{instance}}")]),
            "short", LOWER_BETTER_COUNT, w=6, h=5, decimals=0,
        ),
        stat(
            "Residual exposures (closed, still valid)",
            doc("Exposures whose findings are all closed but whose secret still works: the ticket was closed, "
                "the risk was not. Should be 0; the NHIResidualExposures alert fires above 0.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f"nhi_residual_exposures{sel()}", "{{instance}}")]),
            "short", LOWER_BETTER_COUNT, w=6, h=5, decimals=0,
        ),
        stat(
            "Oldest live exposure",
            doc("Age of the oldest open exposure whose secret still works. Orange above 4h, red above 24h "
                "(the NHILiveSecretExposed warning and critical thresholds).",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"nhi_exposure_oldest_open_age_seconds{sel(eq('validity', 'live'))}", "{{instance}}")]),
            "s", LIVE_AGE, w=6, h=5, noValue="none open",
        ),
        timeseries(
            "Secrets-in-code delta trend",
            doc("Secrets-in-code delta per window over time. A line that stays above 0 means more secrets are "
                "exposed in code than at the start of that window.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([(f"nhi_secrets_in_code_delta{sel()}", "{{window}}")]),
            "short", LOWER_BETTER_COUNT, w=24, h=7, threshold_lines=True,
        ),
        row("Remediation: activity next to outcome"),
        stat(
            "Time to revoke, exact median ($window, the KPI)",
            doc("Exact median of first detection → confirmed revocation (the secret shown unusable by its "
                "provider or a validity check) for exposures revoked in the selected window, from the "
                "exporter's store. Outcome KPI; empty when nothing was revoked in the window.",
                OWASP_EXPOSURE, CSF_RESPOND),
            targets([(f"nhi_time_to_revoke_median_seconds{sel(w)}", "{{window}}")]),
            "s", REVOKE_TIME, w=6, h=6, noValue="no revocations in window",
        ),
        stat(
            "Histogram estimate: revoke vs close p50/p90 (trailing 7d)",
            doc("p50/p90 of time to revoke (outcome: detection → secret confirmed unusable) next to p50/p90 "
                "of time to close (activity: detection → finding closed), over the last 7 days, from the "
                "persisted histograms. Closing fast while revoking slowly is compliance theatre.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([
                (f"instance:nhi_time_to_revoke_seconds:p50_7d{sel()}", "revoke p50"),
                (f"instance:nhi_time_to_revoke_seconds:p90_7d{sel()}", "revoke p90"),
                (f"instance:nhi_time_to_close_seconds:p50_7d{sel()}", "close p50"),
                (f"instance:nhi_time_to_close_seconds:p90_7d{sel()}", "close p90"),
            ]),
            "s", REVOKE_TIME, w=9, h=6, graph=False, noValue="no observations in 7d",
        ),
        stat(
            "Closure ratio vs exposure-reduction ratio ($window)",
            doc("Closure ratio (activity) = findings closed in the window ÷ (open at its start + detected in it). "
                "Exposure-reduction ratio (outcome) = exposures confirmed revoked in the window ÷ (open at its "
                "start + opened in it). The theatre gap is their difference: findings closed without the secret "
                "being made unusable.",
                OWASP_EXPOSURE, "NIST CSF 2.0: GV.OV-03, RS.MI-02"),
            targets([
                (f"nhi_closure_ratio{sel(w)}", "closure (activity)"),
                (f"nhi_exposure_reduction_ratio{sel(w)}", "exposure reduction (outcome)"),
                (f"instance:nhi_theatre_gap:ratio{sel(w)}", "theatre gap"),
            ]),
            "percentunit", HIGHER_BETTER, w=9, h=6, graph=False, decimals=0,
            overrides=[override_ref("C", thresholds=th("green", (0.1, "orange"), (0.3, "red")))],
        ),
        timeseries(
            "Histogram estimate: revoke vs close p50/p90 over time (trailing 7d)",
            doc("Trailing-7-day p50/p90 of time to revoke (outcome) and time to close (activity). Log scale. "
                "The gap between the revoke and close lines is time a closed finding's secret kept working.",
                OWASP_EXPOSURE, "NIST CSF 2.0: RS.MI-02, GV.OV-03"),
            targets([
                (f"instance:nhi_time_to_revoke_seconds:p50_7d{sel()}", "revoke p50"),
                (f"instance:nhi_time_to_revoke_seconds:p90_7d{sel()}", "revoke p90"),
                (f"instance:nhi_time_to_close_seconds:p50_7d{sel()}", "close p50"),
                (f"instance:nhi_time_to_close_seconds:p90_7d{sel()}", "close p90"),
            ]),
            "s", REVOKE_TIME, w=12, h=8, log=True,
        ),
        timeseries(
            "Closure vs exposure reduction over time ($window)",
            doc("Closure ratio (activity), exposure-reduction ratio (outcome) and the theatre gap between them "
                "for the selected window, over time. A growing gap means closing tickets is not reducing exposure.",
                OWASP_EXPOSURE, "NIST CSF 2.0: GV.OV-03, RS.MI-02"),
            targets([
                (f"nhi_closure_ratio{sel(w)}", "closure (activity)"),
                (f"nhi_exposure_reduction_ratio{sel(w)}", "exposure reduction (outcome)"),
                (f"instance:nhi_theatre_gap:ratio{sel(w)}", "theatre gap"),
            ]),
            "percentunit", HIGHER_BETTER, w=12, h=8,
        ),
        row("Identity outcomes"),
        timeseries(
            "Standing privileged NHIs by provider",
            doc("Non-human identities holding admin-equivalent rights permanently (not granted just in time), "
                "stacked by provider. The outcome to drive down quarter over quarter.",
                "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05 (least privilege)"),
            targets([(f"sum by (provider) (nhi_standing_privileged_identities{sel()})", "{{provider}}")]),
            "short", NEUTRAL, w=12, h=8, stack=True,
        ),
        stat(
            "Standing privileged NHIs",
            doc("Count of NHIs holding admin-equivalent rights permanently, and their share of all NHIs "
                "(1 − the posture privilege score).",
                "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05"),
            targets([
                (f"instance:nhi_standing_privileged_identities:sum{sel()}", "count"),
                (f"instance:nhi_standing_privileged_identities:ratio{sel()}", "share of NHIs"),
            ]),
            "short", th("green", (1, "orange")), w=6, h=8,
            overrides=[override_ref("B", unit="percentunit", thresholds=th("green", (0.02, "orange"), (0.1, "red")))],
        ),
        stat(
            "NHI:human ratio",
            doc("Non-human identities per human principal (NHIs ÷ humans, humans counted only for this ratio). "
                "Shows the scale of the inventory that offboarding and ownership must keep up with.",
                "OWASP NHI Top 10: NHI1 Improper Offboarding (context)",
                "NIST CSF 2.0: ID.AM-02 (inventory of services), PR.AA-01"),
            targets([
                (f"instance:nhi_identities_per_human:ratio{sel()}", "NHIs per human"),
                (f"instance:nhi_identities:sum{sel()}", "NHIs"),
                (f"instance:nhi_human_identities:sum{sel()}", "humans"),
            ]),
            "short", NEUTRAL, w=6, h=8, decimals=1, graph=False,
        ),
        gauge(
            "Governed share of NHIs",
            doc("NHIs inside a governed lifecycle (owned, every active credential within max age or "
                "auto-rotated, used within unused_after) ÷ all NHIs. The coverage of lifecycle controls.",
                "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI7 Long-Lived Secrets",
                "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
            targets([(f"instance:nhi_identities_governed:ratio{sel()}", "{{instance}}")]),
            "percentunit", HIGHER_BETTER, w=6, h=7, min=0, max=1, decimals=0,
        ),
        gauge(
            "Owned share of NHIs",
            doc("NHIs with a known owning team ÷ all NHIs (visibility: someone answers for each identity).",
                "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: ID.AM-08, PR.AA-01"),
            targets([(f"instance:nhi_identities_owned:ratio{sel()}", "{{instance}}")]),
            "percentunit", HIGHER_BETTER, w=6, h=7, min=0, max=1, decimals=0,
        ),
        gauge(
            "Unused share of NHIs",
            doc("NHIs not used within policy.unused_after ÷ all NHIs: identities to offboard.",
                "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
            targets([(f"instance:nhi_identities_unused:ratio{sel()}", "{{instance}}")]),
            "percentunit", th("green", (0.1, "orange"), (0.25, "red")), w=6, h=7, min=0, max=1, decimals=0,
        ),
        timeseries(
            "Governed, owned and unused share trend",
            doc("Governed, owned and unused shares of NHIs over time. Governed and owned should rise, unused "
                "should fall.",
                "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI7 Long-Lived Secrets",
                "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
            targets([
                (f"instance:nhi_identities_governed:ratio{sel()}", "governed"),
                (f"instance:nhi_identities_owned:ratio{sel()}", "owned"),
                (f"instance:nhi_identities_unused:ratio{sel()}", "unused"),
            ]),
            "percentunit", HIGHER_BETTER, w=6, h=7, min=0, max=1,
        ),
    ]
    # nhi_secrets_in_code_delta exists for every configured window (the ratio
    # gauges are omitted for a window without data).
    window_var = var_query(
        "window", "Window", f"label_values(nhi_secrets_in_code_delta{{{SEL}}}, window)",
        multi=False, include_all=False, sort=3,
        current={"selected": True, "text": "30d", "value": "30d"},
    )
    return dashboard(
        "nhi-outcomes", "NHI outcomes (review)",
        "Outcome KPIs of the non-human-identity programme for security reviews: posture, exposure that "
        "actually dropped, time to revoke next to time to close, standing privilege, governed share.",
        panels, extra_vars=[window_var], time_from="now-90d", tags=["outcomes"],
    )

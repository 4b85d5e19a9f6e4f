#!/usr/bin/env python3
"""Generate the Grafana dashboards in dashboards/ (Python 3 stdlib only).

The JSON files in dashboards/ are this script's output and are committed, so
Grafana users can import or provision them directly. Edit this script, not the
JSON, then run:

    python3 scripts/gen-dashboards.py            # rewrite dashboards/*.json
    python3 scripts/gen-dashboards.py --check    # exit 1 if the JSON is stale

Conventions (checked by scripts/lint-dashboards.py):
- every query selects {job=~"$job", instance=~"$instance"} and uses the
  ${datasource} variable;
- every panel has a description naming the KPI's meaning and its OWASP NHI Top
  10 (2025) / NIST CSF 2.0 ids, a unit and thresholds;
- ratios are 0..1 (percentunit), durations in seconds (s), counts (short).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "dashboards")

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'


def sel(*extra):
    return "{" + ", ".join((SEL,) + extra) + "}"


def eq(label, value):
    return f'{label}="{value}"'


def ne(label, value):
    return f'{label}!="{value}"'


# ---------------------------------------------------------------- thresholds


def th(base, *steps):
    """th("green", (1, "red")) -> absolute thresholds."""
    out = [{"color": base, "value": None}]
    for value, color in steps:
        out.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": out}


NEUTRAL = th("blue")
HIGHER_BETTER = th("red", (0.5, "orange"), (0.8, "green"))
LOWER_BETTER_COUNT = th("green", (1, "red"))
LIVE_AGE = th("green", (4 * 3600, "orange"), (24 * 3600, "red"))  # = NHILiveSecretExposed
REVOKE_TIME = th("green", (86400, "orange"), (7 * 86400, "red"))
CHANGE = th("red", (-0.05, "orange"), (0, "green"))  # = NHIPostureScoreDropping warning
CRED_AGE = th("green", (90 * 86400, "orange"), (365 * 86400, "red"))
SOURCE_AGE = th("green", (3600, "orange"), (6 * 3600, "red"))  # = NHISourceStale

UP_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    }
]
RELOAD_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "FAILED", "color": "red", "index": 0},
            "1": {"text": "OK", "color": "green", "index": 1},
        },
    }
]

# ---------------------------------------------------------------- panels


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def targets(specs, instant=False, fmt="time_series"):
    """specs: list of (expr, legend)."""
    return [
        target(e, l, chr(ord("A") + i), instant=instant, fmt=fmt)
        for i, (e, l) in enumerate(specs)
    ]


REDUCE = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def base_panel(kind, title, desc, tgts, unit, thresholds, w, h, **kw):
    defaults = {
        "unit": unit,
        "thresholds": thresholds,
        "color": {"mode": kw.pop("color_mode", "thresholds")},
        "mappings": kw.pop("mappings", []),
    }
    for key in ("min", "max", "decimals", "noValue"):
        if key in kw:
            defaults[key] = kw.pop(key)
    panel = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": kw.pop("overrides", [])},
        "_w": w,
        "_h": h,
    }
    if "transformations" in kw:
        panel["transformations"] = kw.pop("transformations")
    panel["_extra"] = kw
    return panel


def stat(title, desc, tgts, unit, thresholds, w=6, h=5, graph=True, **kw):
    p = base_panel("stat", title, desc, tgts, unit, thresholds, w, h, **kw)
    p["options"] = {
        "colorMode": "value",
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": REDUCE,
        "showPercentChange": False,
        "textMode": "auto",
        "wideLayout": True,
    }
    return p


def gauge(title, desc, tgts, unit, thresholds, w=6, h=6, **kw):
    p = base_panel("gauge", title, desc, tgts, unit, thresholds, w, h, **kw)
    p["options"] = {
        "minVizHeight": 75,
        "minVizWidth": 75,
        "orientation": "auto",
        "reduceOptions": REDUCE,
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "sizing": "auto",
    }
    return p


def bargauge(title, desc, tgts, unit, thresholds, w=12, h=8, **kw):
    p = base_panel("bargauge", title, desc, tgts, unit, thresholds, w, h, **kw)
    p["options"] = {
        "displayMode": "gradient",
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": REDUCE,
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    return p


def timeseries(title, desc, tgts, unit, thresholds, w=12, h=8, stack=False,
               bars=False, log=False, threshold_lines=False, **kw):
    kw.setdefault("color_mode", "palette-classic")
    p = base_panel("timeseries", title, desc, tgts, unit, thresholds, w, h, **kw)
    p["fieldConfig"]["defaults"]["custom"] = {
        "axisBorderShow": False,
        "axisCenteredZero": False,
        "axisColorMode": "text",
        "axisLabel": "",
        "axisPlacement": "auto",
        "barAlignment": 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (30 if stack else 10),
        "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "insertNulls": False,
        "lineInterpolation": "stepAfter",
        "lineWidth": 1,
        "pointSize": 5,
        "scaleDistribution": {"type": "log", "log": 10} if log else {"type": "linear"},
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "line" if threshold_lines else "off"},
    }
    p["options"] = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def table(title, desc, tgts, unit, thresholds, w=12, h=8, **kw):
    p = base_panel("table", title, desc, tgts, unit, thresholds, w, h, **kw)
    p["fieldConfig"]["defaults"]["custom"] = {
        "align": "auto",
        "cellOptions": {"type": "auto"},
        "inspect": False,
    }
    p["options"] = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
    }
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def override_ref(ref, **props):
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()],
    }


def override_name(name, **props):
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()],
    }


def fixed(color):
    return {"fixedColor": color, "mode": "fixed"}


# ---------------------------------------------------------------- dashboard


def layout(panels):
    x = y = 0
    row_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        extra = p.pop("_extra", {})
        if extra:
            raise SystemExit(f"unknown panel options {sorted(extra)} in {p['title']!r}")
        if x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        if p["type"] == "row" and x != 0:
            x, y = 0, y + row_h
            row_h = 0
        p["id"] = pid
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        # stable key order: id, type, title first
        ordered = {k: p[k] for k in ("id", "type", "title", "description", "datasource", "gridPos") if k in p}
        ordered.update({k: v for k, v in p.items() if k not in ordered})
        out.append(ordered)
    return out


def var_datasource():
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def var_query(name, label, query, multi=True, include_all=True, sort=1, current=None, all_value=None):
    v = {
        "current": current or {},
        "datasource": DS,
        "definition": query,
        "hide": 0,
        "includeAll": include_all,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": sort,
        "type": "query",
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


def base_vars():
    return [
        var_datasource(),
        var_query("job", "Job", 'label_values(nhi_exporter_build_info{job="nhi-exporter"}, job)'),
        var_query("instance", "Instance", 'label_values(nhi_exporter_build_info{job=~"$job"}, instance)'),
    ]


def prom_annotation(name, color, expr, title, text):
    """A Prometheus-query annotation (alerts, reloads, restarts) on every dashboard."""
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "enable": True,
        "expr": expr,
        "iconColor": color,
        "name": name,
        "step": "1m",
        "titleFormat": title,
        "textFormat": text,
        "useValueForTime": False,
    }


def dashboard(uid, title, desc, panels, extra_vars=(), time_from="now-30d", tags=()):
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                prom_annotation("NHI alerts firing", "red",
                                'ALERTS{alertname=~"NHI.*", alertstate="firing", job=~"$job"}',
                                "{{alertname}} {{severity}}", "{{alertname}} ({{severity}}, {{area}}) {{window}} {{source}}"),
                prom_annotation("Config reloads", "blue",
                                f"changes(nhi_config_last_reload_success_timestamp_seconds{sel()}[2m]) > 0",
                                "config reload", "configuration reloaded on {{instance}}"),
                prom_annotation("Exporter restarts", "orange",
                                f"changes(process_start_time_seconds{sel()}[2m]) > 0",
                                "restart", "nhi-exporter restarted on {{instance}}"),
            ]
        },
        "description": desc,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["nhi-exporter"],
                "targetBlank": False,
                "title": "NHI dashboards",
                "tooltip": "",
                "type": "dashboards",
                "url": "",
            }
        ],
        "panels": layout(panels),
        "refresh": "5m",
        "schemaVersion": 39,
        "tags": ["nhi-exporter", "nhi", "security"] + list(tags),
        "templating": {"list": base_vars() + list(extra_vars)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# ---------------------------------------------------------------- framework ids

# OWASP Non-Human Identities Top 10 (2025) and NIST CSF 2.0 references.
OWASP_EXPOSURE = "OWASP NHI Top 10: NHI2 Secret Leakage"
CSF_RESPOND = "NIST CSF 2.0: RS.MI-01, RS.MI-02 (incidents contained and eradicated)"
CSF_REVIEW = "NIST CSF 2.0: GV.OV-03 (risk-management performance evaluated and reviewed)"
CSF_MONITOR = "NIST CSF 2.0: DE.CM-09 (computing software and their data monitored)"


def doc(meaning, owasp, csf, how=""):
    text = meaning.strip()
    if how:
        text += " " + how.strip()
    if owasp:
        text += " " + owasp.strip().rstrip(".") + "."
    return text + " " + csf.strip().rstrip(".") + "."


# ================================================================ nhi-outcomes


# Histogram bucket bounds (le, seconds) shown as durations.
BUCKET_NAMES = [
    {"matcher": {"id": "byName", "options": le}, "properties": [{"id": "displayName", "value": name}]}
    for le, name in [("300", "≤ 5m"), ("900", "≤ 15m"), ("3600", "≤ 1h"), ("14400", "≤ 4h"),
                     ("43200", "≤ 12h"), ("86400", "≤ 1d"), ("259200", "≤ 3d"), ("604800", "≤ 7d"),
                     ("1209600", "≤ 14d"), ("2592000", "≤ 30d"), ("7776000", "≤ 90d"), ("+Inf", "> 90d")]
]


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


# ================================================================ nhi-exposure


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


# ================================================================ nhi-identities


def identities():
    # `scope` (account, project, subscription, cluster) exists only with
    # labels.scope.enabled; "All" is `.*`, which also matches series without it.
    # `team` likewise exists only with labels.team.enabled.
    f = ('source=~"$source"', 'provider=~"$provider"', 'scope=~"$scope"', 'team=~"$team"')
    s = sel(*f)
    active = sel(*f, 'state="active"')
    by = "by (source, provider)"
    panels = [
        row("Inventory"),
        stat("NHIs",
             doc("Non-human identities inventoried (service accounts, roles, API keys, tokens, apps) in the "
                 "selected sources and providers.",
                 "OWASP NHI Top 10: NHI1 Improper Offboarding (scope)", "NIST CSF 2.0: ID.AM-02, PR.AA-01"),
             targets([(f"sum(nhi_identities{s})", "NHIs")]), "short", NEUTRAL, w=4, h=5, decimals=0),
        stat("Human principals",
             doc("Human principals seen by the identity sources; counted only for the NHI:human ratio.",
                 "OWASP NHI Top 10: context for NHI1 Improper Offboarding (NHIs per human)",
                 "NIST CSF 2.0: ID.AM-02, PR.AA-01"),
             targets([(f"sum(nhi_human_identities{s})", "humans")]), "short", NEUTRAL, w=4, h=5, decimals=0),
        stat("NHI:human ratio",
             doc("NHIs per human principal in the selected sources and providers.",
                 "OWASP NHI Top 10: NHI1 Improper Offboarding (context)", "NIST CSF 2.0: ID.AM-02"),
             targets([(f"sum(nhi_identities{s}) / (sum(nhi_human_identities{s}) > 0)", "NHIs per human")]),
             "short", NEUTRAL, w=4, h=5, decimals=1),
        stat("Standing privileged NHIs",
             doc("NHIs holding admin-equivalent rights permanently rather than just in time.",
                 "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05"),
             targets([(f"sum(nhi_standing_privileged_identities{s})", "standing privileged")]),
             "short", th("green", (1, "orange")), w=4, h=5, decimals=0),
        stat("Unused NHIs",
             doc("NHIs not used within policy.unused_after: candidates for offboarding.",
                 "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
             targets([(f"sum(nhi_unused_identities{s})", "unused")]),
             "short", th("green", (1, "orange")), w=4, h=5, decimals=0),
        stat("Long-lived credentials",
             doc("Active credentials not rotated within policy.max_credential_age.",
                 "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
             targets([(f"sum(nhi_long_lived_credentials{s})", "long-lived")]),
             "short", th("green", (1, "orange")), w=4, h=5, decimals=0),
        row("Shares"),
        gauge("Governed share",
              doc("NHIs in a governed lifecycle (owned, credentials within max age or auto-rotated, used within "
                  "unused_after) ÷ NHIs.",
                  "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
              targets([(f"sum(nhi_identities_governed{s}) / (sum(nhi_identities{s}) > 0)", "governed")]),
              "percentunit", HIGHER_BETTER, w=4, h=6, min=0, max=1, decimals=0),
        gauge("Owned share",
              doc("NHIs with a known owning team ÷ NHIs.",
                  "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: ID.AM-08, PR.AA-01"),
              targets([(f"sum(nhi_identities_owned{s}) / (sum(nhi_identities{s}) > 0)", "owned")]),
              "percentunit", HIGHER_BETTER, w=4, h=6, min=0, max=1, decimals=0),
        gauge("Unused share",
              doc("NHIs not used within policy.unused_after ÷ NHIs.",
                  "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
              targets([(f"sum(nhi_unused_identities{s}) / (sum(nhi_identities{s}) > 0)", "unused")]),
              "percentunit", th("green", (0.1, "orange"), (0.25, "red")), w=4, h=6, min=0, max=1, decimals=0),
        gauge("Standing privileged share",
              doc("NHIs holding admin-equivalent rights permanently ÷ NHIs (1 − posture privilege score).",
                  "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05"),
              targets([(f"sum(nhi_standing_privileged_identities{s}) / (sum(nhi_identities{s}) > 0)", "standing privileged")]),
              "percentunit", th("green", (0.02, "orange"), (0.1, "red")), w=4, h=6, min=0, max=1, decimals=1),
        gauge("Long-lived share of active credentials",
              doc("Active credentials not rotated within policy.max_credential_age ÷ active credentials "
                  "(1 − posture hygiene score).",
                  "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
              targets([(f"sum(nhi_long_lived_credentials{s}) / (sum(nhi_credentials{active}) > 0)", "long-lived")]),
              "percentunit", th("green", (0.1, "orange"), (0.3, "red")), w=4, h=6, min=0, max=1, decimals=0),
        gauge("Rotation coverage",
              doc("Active credentials with automatic rotation ÷ active credentials.",
                  "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
              targets([(f"sum(nhi_credentials_rotation_enabled{s}) / (sum(nhi_credentials{active}) > 0)", "auto-rotated")]),
              "percentunit", HIGHER_BETTER, w=4, h=6, min=0, max=1, decimals=0),
        row("Where the risk sits"),
        table(
            "Worst scopes",
            doc("Per scope (AWS account, GCP project, Azure subscription or tenant, Vault address, Kubernetes "
                "cluster; with labels.scope.enabled): standing privileged NHIs, long-lived credentials and unused "
                "NHIs, the worst first. Scopes past labels.scope.max_values are grouped as `other`; without the "
                "label every NHI is in one row.",
                "OWASP NHI Top 10: NHI5 Overprivileged NHI, NHI7 Long-Lived Secrets, NHI1 Improper Offboarding",
                "NIST CSF 2.0: PR.AA-05, PR.AA-01, ID.AM-08"),
            targets([
                (f"topk(20, sum by (scope) (nhi_standing_privileged_identities{s}))", ""),
                (f"sum by (scope) (nhi_long_lived_credentials{s})", ""),
                (f"sum by (scope) (nhi_unused_identities{s})", ""),
                (f"sum by (scope) (nhi_identities{s})", ""),
            ], instant=True, fmt="table"),
            "short", NEUTRAL, w=24, h=8,
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {"scope": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3, "Value #D": 4},
                    "renameByName": {"Value #A": "standing privileged", "Value #B": "long-lived credentials",
                                     "Value #C": "unused NHIs", "Value #D": "NHIs"},
                }},
                {"id": "sortBy", "options": {"sort": [{"field": "standing privileged", "desc": True}]}},
            ],
        ),
        row("Identities per source and provider"),
        table(
            "Identities per source and provider",
            doc("Per source and provider: NHIs, standing privileged, unused, owned and governed NHIs.",
                "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI5 Overprivileged NHI",
                "NIST CSF 2.0: ID.AM-02, PR.AA-01, PR.AA-05"),
            targets([
                (f"sum {by} (nhi_identities{s})", ""),
                (f"sum {by} (nhi_standing_privileged_identities{s})", ""),
                (f"sum {by} (nhi_unused_identities{s})", ""),
                (f"sum {by} (nhi_identities_owned{s})", ""),
                (f"sum {by} (nhi_identities_governed{s})", ""),
            ], instant=True, fmt="table"),
            "short", NEUTRAL, w=24, h=8,
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {"source": 0, "provider": 1, "Value #A": 2, "Value #B": 3,
                                    "Value #C": 4, "Value #D": 5, "Value #E": 6},
                    "renameByName": {"Value #A": "NHIs", "Value #B": "standing privileged",
                                     "Value #C": "unused", "Value #D": "owned", "Value #E": "governed"},
                }},
            ],
        ),
        timeseries("NHIs by source and provider",
                   doc("NHIs inventoried over time, stacked per source and provider.",
                       "OWASP NHI Top 10: NHI1 Improper Offboarding (scope)", "NIST CSF 2.0: ID.AM-02"),
                   targets([(f"sum {by} (nhi_identities{s})", "{{source}} / {{provider}}")]),
                   "short", NEUTRAL, w=8, h=8, stack=True),
        timeseries("Standing privileged NHIs by source and provider",
                   doc("NHIs holding admin-equivalent rights permanently, per source and provider, over time.",
                       "OWASP NHI Top 10: NHI5 Overprivileged NHI", "NIST CSF 2.0: PR.AA-05"),
                   targets([(f"sum {by} (nhi_standing_privileged_identities{s})", "{{source}} / {{provider}}")]),
                   "short", NEUTRAL, w=8, h=8, stack=True),
        timeseries("Unused NHIs by source and provider",
                   doc("NHIs not used within policy.unused_after, per source and provider, over time.",
                       "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
                   targets([(f"sum {by} (nhi_unused_identities{s})", "{{source}} / {{provider}}")]),
                   "short", NEUTRAL, w=8, h=8, stack=True),
        bargauge("Governed share by source and provider",
                 doc("Governed NHIs ÷ NHIs per source and provider.",
                     "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI7 Long-Lived Secrets",
                     "NIST CSF 2.0: PR.AA-01, ID.AM-08"),
                 targets([(f"sum {by} (nhi_identities_governed{s}) / (sum {by} (nhi_identities{s}) > 0)",
                           "{{source}} / {{provider}}")], instant=True),
                 "percentunit", HIGHER_BETTER, w=12, h=8, min=0, max=1),
        bargauge("Owned share by source and provider",
                 doc("NHIs with a known owning team ÷ NHIs per source and provider.",
                     "OWASP NHI Top 10: NHI1 Improper Offboarding", "NIST CSF 2.0: ID.AM-08, PR.AA-01"),
                 targets([(f"sum {by} (nhi_identities_owned{s}) / (sum {by} (nhi_identities{s}) > 0)",
                           "{{source}} / {{provider}}")], instant=True),
                 "percentunit", HIGHER_BETTER, w=12, h=8, min=0, max=1),
        row("Credentials"),
        bargauge("Active credentials by age band",
                 doc("Active credentials by time since last rotation: < 30d, 30–90d, 90–365d, > 365d.",
                     "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                 targets([
                     (f"sum(nhi_credentials_by_age{sel(*f, eq('band', 'lt_30d'))})", "< 30d"),
                     (f"sum(nhi_credentials_by_age{sel(*f, eq('band', '30d_90d'))})", "30d – 90d"),
                     (f"sum(nhi_credentials_by_age{sel(*f, eq('band', '90d_365d'))})", "90d – 365d"),
                     (f"sum(nhi_credentials_by_age{sel(*f, eq('band', 'gt_365d'))})", "> 365d"),
                 ], instant=True),
                 "short", NEUTRAL, w=8, h=8, decimals=0,
                 overrides=[
                     override_ref("A", color=fixed("green")),
                     override_ref("B", color=fixed("yellow")),
                     override_ref("C", color=fixed("orange")),
                     override_ref("D", color=fixed("red")),
                 ]),
        timeseries("Active credentials by age band over time",
                   doc("Active credentials per age band over time. Bands above 90d should shrink.",
                       "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                   targets([(f"sum by (band) (nhi_credentials_by_age{s})", "{{band}}")]),
                   "short", NEUTRAL, w=16, h=8, stack=True,
                   overrides=[
                       override_name("lt_30d", color=fixed("green")),
                       override_name("30d_90d", color=fixed("yellow")),
                       override_name("90d_365d", color=fixed("orange")),
                       override_name("gt_365d", color=fixed("red")),
                   ]),
        bargauge("Rotation coverage by source and provider",
                 doc("Active credentials with automatic rotation ÷ active credentials, per source and provider.",
                     "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                 targets([(f"sum {by} (nhi_credentials_rotation_enabled{s}) / (sum {by} (nhi_credentials{active}) > 0)",
                           "{{source}} / {{provider}}")], instant=True),
                 "percentunit", HIGHER_BETTER, w=8, h=8, min=0, max=1),
        bargauge("Long-lived share by source and provider",
                 doc("Active credentials not rotated within policy.max_credential_age ÷ active credentials, per "
                     "source and provider.",
                     "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                 targets([(f"sum {by} (nhi_long_lived_credentials{s}) / (sum {by} (nhi_credentials{active}) > 0)",
                           "{{source}} / {{provider}}")], instant=True),
                 "percentunit", th("green", (0.1, "orange"), (0.3, "red")), w=8, h=8, min=0, max=1),
        bargauge("Oldest active credential by source and provider",
                 doc("Time since last rotation of the oldest active credential per source and provider. Orange "
                     "above 90d, red above 365d.",
                     "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                 targets([(f"max {by} (nhi_credential_oldest_age_seconds{s})", "{{source}} / {{provider}}")], instant=True),
                 "s", CRED_AGE, w=8, h=8),
        timeseries("Credentials by state",
                   doc("Credentials by state (active, inactive) over time. Inactive credentials that linger are "
                       "offboarding debt.",
                       "OWASP NHI Top 10: NHI1 Improper Offboarding, NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                   targets([(f"sum by (state) (nhi_credentials{s})", "{{state}}")]),
                   "short", NEUTRAL, w=12, h=8, stack=True),
        timeseries("Long-lived share and rotation coverage over time",
                   doc("Long-lived share of active credentials (should fall) and rotation coverage (should rise).",
                       "OWASP NHI Top 10: NHI7 Long-Lived Secrets", "NIST CSF 2.0: PR.AA-01"),
                   targets([
                       (f"sum(nhi_long_lived_credentials{s}) / (sum(nhi_credentials{active}) > 0)", "long-lived share"),
                       (f"sum(nhi_credentials_rotation_enabled{s}) / (sum(nhi_credentials{active}) > 0)", "rotation coverage"),
                   ]),
                   "percentunit", NEUTRAL, w=12, h=8, min=0, max=1),
    ]
    extra = [
        var_query("source", "Source", f"label_values(nhi_identities{{{SEL}}}, source)"),
        var_query("provider", "Provider", f'label_values(nhi_identities{{{SEL}, source=~"$source"}}, provider)'),
        var_query("scope", "Scope",
                  f'label_values(nhi_identities{{{SEL}, source=~"$source", provider=~"$provider"}}, scope)',
                  all_value=".*"),
        var_query("team", "Team",
                  f'label_values(nhi_identities{{{SEL}, source=~"$source", provider=~"$provider"}}, team)',
                  all_value=".*"),
    ]
    return dashboard(
        "nhi-identities", "NHI identities and credentials",
        "Inventory of non-human identities and their credentials per source and provider: privilege, "
        "unused identities, ownership, governance, credential age and rotation.",
        panels, extra_vars=extra, time_from="now-30d", tags=["identities"],
    )


# ================================================================ nhi-exporter


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


DASHBOARDS = {
    "nhi-outcomes.json": outcomes,
    "nhi-exposure.json": exposure,
    "nhi-identities.json": identities,
    "nhi-exporter.json": exporter,
}


def render(fn):
    return json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if dashboards/*.json differ from the generated output")
    args = ap.parse_args()
    stale = []
    for name, fn in DASHBOARDS.items():
        path = os.path.join(OUT, name)
        text = render(fn)
        if args.check:
            try:
                with open(path, encoding="utf-8") as fh:
                    if fh.read() != text:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            os.makedirs(OUT, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
    if stale:
        print("dashboards out of date with scripts/gen-dashboards.py: " + ", ".join(stale), file=sys.stderr)
        print("run: python3 scripts/gen-dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Panel, variable and dashboard builders, thresholds and framework ids shared by
the dashboards (scripts/gen-dashboards.py)."""

import re

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


# Replicas sharing a PostgreSQL store (SPEC §5) all export the same KPI
# values, each under its own `instance`: a panel must not add them up. Every
# KPI selector is taken once across replicas, `max without (instance, pod)`,
# before the panel's own aggregation; a counter's rate or increase is taken
# per replica first (a replica's restart resets only its own series). What
# each process counts for itself (its polls' durations and errors, reloads,
# process_*, up, scrape_*) and the per-instance health panels stay per
# instance: a poll is counted by the one replica that made it, so sums over
# replicas are right there.
PER_INSTANCE = r"nhi_(?:source_|config_|exporter_build_info|store_history_seconds)"
_KPI = r"(?<![\w:])((?!" + PER_INSTANCE + r")(?:nhi_[a-z0-9_]+|instance:[a-z0-9_:]+)\{[^{}]*\})"
_ONCE = "max without (instance, pod) "


def one_replica(expr):
    """`expr` with each KPI selector (and each rate/increase over one) taken
    once across replicas."""
    expr = re.sub(r"\b([a-z_]+)\(" + _KPI + r"(\[[^\]]+\])\)",
                  lambda m: f"{_ONCE}({m.group(1)}({m.group(2)}{m.group(3)}))", expr)
    return re.sub(_KPI + r"(?!\[)", lambda m: f"{_ONCE}({m.group(1)})", expr)


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": one_replica(expr),
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


# Every stat shows how fresh its numbers are: the KPIs come from the latest
# successful polls, so the age of the stalest source's data sits beside them.
FRESHNESS_EXPR = (
    "time() - min(nhi_source_last_success_timestamp_seconds{"
    + SEL
    + "} > 0)"
)
FRESHNESS_REF = "Z"
FRESHNESS_DESC = (
    " Beside the value: data age, the time since the stalest source's last "
    "successful poll (the KPIs are computed from the latest polls, not at scrape time)."
)


def with_freshness(tgts, overrides, desc):
    """The targets plus the data-age target, its field override and the description."""
    ref = FRESHNESS_REF
    t = target(FRESHNESS_EXPR, "data age", ref, instant=tgts[0].get("instant", False),
               fmt=tgts[0].get("format", "time_series"))
    override = {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "unit", "value": "s"},
            {"id": "decimals", "value": 0},
            {"id": "thresholds", "value": th("green", (3600, "orange"), (21600, "red"))},
        ],
    }
    return tgts + [t], overrides + [override], desc + FRESHNESS_DESC


def stat(title, desc, tgts, unit, thresholds, w=6, h=5, graph=True, **kw):
    if "transformations" not in kw and all(t.get("format", "time_series") == "time_series" for t in tgts):
        tgts, overrides, desc = with_freshness(tgts, kw.pop("overrides", []), desc)
        kw["overrides"] = overrides
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


BUCKET_NAMES = [
    {"matcher": {"id": "byName", "options": le}, "properties": [{"id": "displayName", "value": name}]}
    for le, name in [("300", "≤ 5m"), ("900", "≤ 15m"), ("3600", "≤ 1h"), ("14400", "≤ 4h"),
                     ("43200", "≤ 12h"), ("86400", "≤ 1d"), ("259200", "≤ 3d"), ("604800", "≤ 7d"),
                     ("1209600", "≤ 14d"), ("2592000", "≤ 30d"), ("7776000", "≤ 90d"), ("+Inf", "> 90d")]
]

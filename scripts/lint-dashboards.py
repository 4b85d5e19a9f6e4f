#!/usr/bin/env python3
"""Lint the Grafana dashboards in dashboards/ (Python 3 stdlib only).

  lint-dashboards.py --exposition FILE
      Check every dashboard against a text exposition scraped from the exporter
      (or the hand-written tests/rules/sample-exposition.prom):
      - every metric name used in a panel query or a template-variable query
        exists in the exposition (histogram _bucket/_sum/_count series count as
        their histogram) or is a recording rule in deploy/prometheus/*.rules.yml
        (Prometheus' own per-target series up and scrape_* are allowed too);
      - every panel except rows has a non-empty description naming a NIST CSF
        2.0 id (and an OWASP NHI Top 10 id, except on dashboards tagged
        exporter-health) and a unit (fieldConfig.defaults.unit) and thresholds;
      - every query uses the ${datasource} data source and selects
        {job=~"$job", instance=~"$instance"} in each vector selector, and uses
        only template variables that the dashboard defines;
      - uid set and unique, schemaVersion >= 39, datasource/job/instance
        variables present, panel ids unique.
      Exit 1 listing every problem, 0 when clean.

  lint-dashboards.py --list-queries [--job NAME]
      Print a JSON list of {dashboard, panel, refId, instant, expr} for every
      panel query and template-variable query, with template variables
      substituted ($job -> NAME (default nhi-exporter), $instance/$source/...
      -> .*, $__rate_interval -> 5m, $__range -> 1h, $window -> 7d), so a test
      can run each one against a real Prometheus's /api/v1/query.
"""
import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Series Prometheus adds for every scrape target.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}

BUILTIN_VARS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}

# Values for dashboard variables in --list-queries. "job" is set by --job.
VAR_VALUES = {
    "instance": ".*",
    "window": "7d",
    "source": ".*",
    "secret_type": ".*",
    "provider": ".*",
    "scope": ".*",
    "team": ".*",
}

PROMQL_KEYWORDS = {
    # aggregation operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # set / binary operators and modifiers
    "and", "or", "unless", "atan2", "bool", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset",
    # literals and @ modifiers
    "inf", "nan", "start", "end",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

CSF_ID = re.compile(r"\b(GV|ID|PR|DE|RS|RC)\.[A-Z]{2}(-\d{2})?\b")
OWASP_ID = re.compile(r"\bNHI(10|[1-9])\b")
VAR_REF = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


# ---------------------------------------------------------------- PromQL tokens

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)[a-zA-Z0-9]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<var>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)


def tokenize(expr):
    pos = 0
    out = []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot parse at {expr[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            out.append((kind, m.group()))
        pos = m.end()
    return out


def unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def selectors(expr):
    """Yield (metric_name, [(label, op, value), ...]) for every vector selector."""
    toks = tokenize(expr)
    i = 0
    n = len(toks)
    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < n else None
        if kind == "op" and text == "[":
            # range or subquery duration: skip to the matching ]
            while i < n and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if kind == "ident":
            if text in LABEL_LIST_KEYWORDS and nxt == "(":
                # skip the label list
                while i < n and toks[i][1] != ")":
                    i += 1
                i += 1
                continue
            if text in PROMQL_KEYWORDS or nxt == "(":
                i += 1
                continue
            matchers = []
            i += 1
            if i < n and toks[i][1] == "{":
                i += 1
                matchers, i = parse_matchers(toks, i)
            yield text, matchers
            continue
        if kind == "op" and text == "{":
            # selector without a metric name
            i += 1
            matchers, i = parse_matchers(toks, i)
            name = next((v for (l, o, v) in matchers if l == "__name__" and o == "="), None)
            yield name, matchers
            continue
        i += 1


def parse_matchers(toks, i):
    matchers = []
    n = len(toks)
    while i < n and toks[i][1] != "}":
        if toks[i][0] in ("ident", "string") and i + 2 < n and toks[i + 1][0] == "op" and toks[i + 2][0] == "string":
            label = toks[i][1] if toks[i][0] == "ident" else unquote(toks[i][1])
            matchers.append((label, toks[i + 1][1], unquote(toks[i + 2][1])))
            i += 3
        else:
            i += 1
    return matchers, i + 1


# ---------------------------------------------------------------- inputs


def load_exposition(path):
    names, types = set(), {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    types[parts[2]] = parts[3].strip()
                    names.add(parts[2])
                continue
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if m:
                names.add(m.group())
    return names, types


def load_recording_rules(pattern):
    names = set()
    files = sorted(glob.glob(pattern))
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                m = re.match(r"""\s*(?:-\s*)?record:\s*["']?([A-Za-z_:][A-Za-z0-9_:]*)""", line)
                if m:
                    names.add(m.group(1))
    return names, files


def load_dashboards(directory):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as fh:
            out.append((path, json.load(fh)))
    return out


def iter_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for sub in p.get("panels", []) or []:
            yield sub


def variables(dash):
    return {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}


def variable_query(var):
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q if isinstance(q, str) else ""


def label_values_selector(query):
    """label_values(sel, label) -> sel; label_values(label) -> None; query_result(q) -> q."""
    m = re.match(r"\s*label_values\s*\((.*),\s*\w+\s*\)\s*$", query, re.S)
    if m:
        return m.group(1).strip()
    m = re.match(r"\s*query_result\s*\((.*)\)\s*$", query, re.S)
    if m:
        return m.group(1).strip()
    return None


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise KeyError(name)
        return values[name]

    return VAR_REF.sub(repl, expr)


def dash_queries(dash):
    """Yield (panel title, refId, instant, expr) for panel targets and variable queries."""
    for name, var in variables(dash).items():
        if var.get("type") == "query":
            sel = label_values_selector(variable_query(var))
            if sel:
                yield f"variable:{name}", "var", True, sel
    for p in iter_panels(dash):
        if p.get("type") == "row":
            continue
        for t in p.get("targets", []) or []:
            yield p.get("title", ""), t.get("refId", ""), bool(t.get("instant")), t.get("expr", "")


# ---------------------------------------------------------------- lint


def lint(dashboards, known, histos, rules):
    problems = []
    uids = {}
    for path, dash in dashboards:
        name = os.path.basename(path)

        def bad(msg, _name=name):
            problems.append(f"{_name}: {msg}")

        uid = dash.get("uid")
        if not uid:
            bad("no uid")
        elif uid in uids:
            bad(f"uid {uid!r} also used by {uids[uid]}")
        else:
            uids[uid] = name
        if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 39:
            bad(f"schemaVersion {dash.get('schemaVersion')!r} < 39")
        vs = variables(dash)
        ds = vs.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            bad("no 'datasource' variable of type datasource/prometheus")
        for required in ("job", "instance"):
            if required not in vs:
                bad(f"no '{required}' template variable")
        defined = set(vs) | set(BUILTIN_VARS)
        health = "exporter-health" in (dash.get("tags") or [])

        ids = set()
        for p in iter_panels(dash):
            title = p.get("title") or "<untitled>"
            where = f"panel {title!r}"
            if p.get("id") in ids:
                bad(f"{where}: duplicate panel id {p.get('id')}")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                continue
            desc = (p.get("description") or "").strip()
            if not desc:
                bad(f"{where}: no description")
            else:
                if not CSF_ID.search(desc):
                    bad(f"{where}: description names no NIST CSF 2.0 id")
                if not health and not OWASP_ID.search(desc):
                    bad(f"{where}: description names no OWASP NHI Top 10 id")
            defaults = (p.get("fieldConfig") or {}).get("defaults") or {}
            if not defaults.get("unit"):
                bad(f"{where}: no unit (fieldConfig.defaults.unit)")
            if not ((defaults.get("thresholds") or {}).get("steps")):
                bad(f"{where}: no thresholds")
            if (p.get("datasource") or {}).get("uid") != "${datasource}":
                bad(f"{where}: data source is not ${{datasource}}")
            targets = p.get("targets") or []
            if not targets:
                bad(f"{where}: no queries")
            for t in targets:
                if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                    bad(f"{where} {t.get('refId')}: data source is not ${{datasource}}")
                if not (t.get("expr") or "").strip():
                    bad(f"{where} {t.get('refId')}: empty expr")

        for title, ref, _instant, expr in dash_queries(dash):
            where = f"panel {title!r} {ref}"
            for m in VAR_REF.finditer(expr):
                var = m.group(1) or m.group(2) or m.group(3)
                if var not in defined:
                    bad(f"{where}: undefined variable ${var}")
            try:
                sels = list(selectors(expr))
            except ValueError as e:
                bad(f"{where}: {e}")
                continue
            if not sels:
                bad(f"{where}: no metric in {expr!r}")
            for metric, matchers in sels:
                if metric is None:
                    bad(f"{where}: selector without a metric name")
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if not (metric in known or metric in rules or metric in PROMETHEUS_SERIES
                        or (base != metric and base in histos)):
                    bad(f"{where}: metric {metric} is neither in the exposition nor a recording rule")
                if title.startswith("variable:"):
                    continue  # variable queries narrow step by step ($job first)
                ms = {(l, o, v) for (l, o, v) in matchers}
                if ("job", "=~", "$job") not in ms or ("instance", "=~", "$instance") not in ms:
                    bad(f'{where}: {metric} does not select {{job=~"$job", instance=~"$instance"}}')
    return problems


def list_queries(dashboards, job):
    values = dict(BUILTIN_VARS)
    values.update(VAR_VALUES)
    values["job"] = job
    values["datasource"] = ""
    out = []
    for path, dash in dashboards:
        uid = dash.get("uid") or os.path.splitext(os.path.basename(path))[0]
        for title, ref, instant, expr in dash_queries(dash):
            out.append({
                "dashboard": uid,
                "panel": title,
                "refId": ref,
                "instant": instant,
                "expr": substitute(expr, values),
            })
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--exposition", metavar="FILE", help="text exposition scraped from the exporter")
    mode.add_argument("--list-queries", action="store_true", help="print every query as JSON")
    ap.add_argument("--job", default="nhi-exporter", help="value of $job for --list-queries (default nhi-exporter)")
    ap.add_argument("--dashboards", default=os.path.join(ROOT, "dashboards"), help="dashboards directory")
    ap.add_argument("--rules", default=os.path.join(ROOT, "deploy", "prometheus", "*.rules.yml"),
                    help="glob of Prometheus rule files")
    args = ap.parse_args()

    dashboards = load_dashboards(args.dashboards)
    if not dashboards:
        print(f"no dashboards in {args.dashboards}", file=sys.stderr)
        return 2

    if args.list_queries:
        try:
            print(json.dumps(list_queries(dashboards, args.job), indent=2, ensure_ascii=False))
        except KeyError as e:
            print(f"no substitution for variable ${e.args[0]}", file=sys.stderr)
            return 1
        return 0

    known, types = load_exposition(args.exposition)
    if not known:
        print(f"no metrics in {args.exposition}", file=sys.stderr)
        return 2
    histos = {n for n, t in types.items() if t in ("histogram", "summary")}
    rules, files = load_recording_rules(args.rules)
    if not files:
        print(f"no rule files match {args.rules}", file=sys.stderr)
        return 2
    problems = lint(dashboards, known, histos, rules)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {len(dashboards)} dashboard(s)", file=sys.stderr)
        return 1
    n = sum(1 for _ in (q for _, d in dashboards for q in dash_queries(d)))
    print(f"OK: {len(dashboards)} dashboards, {n} queries, {len(rules)} recording rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())

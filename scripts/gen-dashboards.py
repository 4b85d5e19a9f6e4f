#!/usr/bin/env python3
"""Generate the Grafana dashboards in dashboards/ (Python 3 stdlib only).

The JSON files in dashboards/ are this script's output and are committed, so
Grafana users can import or provision them directly. Edit the builders in
scripts/nhidash/ (common.py: panels, variables, annotations, thresholds; one
module per dashboard), not the JSON, then run:

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


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nhidash.exporter import exporter  # noqa: E402
from nhidash.exposure import exposure  # noqa: E402
from nhidash.identities import identities  # noqa: E402
from nhidash.outcomes import outcomes  # noqa: E402

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

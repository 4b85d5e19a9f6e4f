#!/usr/bin/env python3
"""Render and validate the nhi-exporter Helm chart without Helm.

    python3 tests/deploy/render_chart.py [--chart DIR] [--values FILE]... [--out DIR]
                                         [--exporter BIN]

Helm cannot be installed on the machines that run these tests (Debian has no
helm package, PyPI's and npm's "helm" are unrelated projects, and Debian's Go
1.19 is too old to build it), so this script renders the chart itself
with a small Go-template interpreter and then checks the result. It is a test
of the chart, not a replacement for Helm: run `helm lint` and
`helm template | kubeconform` where Helm exists.

Run by scripts/check-deploy.sh, with each values file (default: the chart's
values.yaml alone, then with each ci/*-values.yaml on top in turn:
all-features-values.yaml, postgres-values.yaml) and two release names. Exits
1 on any failure, after printing every problem.

WHAT IS CHECKED
  1. Chart.yaml parses, is apiVersion v2 and has name, version, appVersion.
  2. values.yaml and every --values file parse; the coalesced values (Helm's
     rule: maps merge, lists and scalars replace, null deletes a key) and
     values.yaml alone validate against values.schema.json (jsonschema,
     draft 7, like Helm). The schema's cross-field rules are tried on
     purpose-made values (SCHEMA_REJECTS, SCHEMA_ACCEPTS): it must refuse
     replicaCount 2 with store.backend sqlite, postgres without its Secrets,
     postgres keys in config.state with sqlite, and accept replicaCount 0 and
     several PostgreSQL replicas.
  3. Every template renders with the subset below. Anything outside the subset
     is an error, not a guess. Stricter than Helm on purpose: printing a
     missing value (Helm silently prints "") is an error, and so is .Files.Get
     of a missing file (Helm returns "").
  4. Every rendered manifest parses with PyYAML; NOTES.txt renders non-empty.
  5. Every built-in Kubernetes object validates, in strict mode (unknown fields
     are errors), against the OpenAPI-derived JSON schemas shipped by the PyPI
     package kubernetes-validate, for the oldest Kubernetes the chart supports
     (Chart.yaml kubeVersion) and the newest the package knows.
  6. The CRD objects (ServiceMonitor, PrometheusRule), which kubernetes-validate
     has no schema for, are checked by hand: apiVersion, kind, metadata.name,
     the spec fields the chart sets, field names against the operator's
     Endpoint/RelabelConfig fields, durations, and for PrometheusRule that
     spec equals what the monitoring mixin (mixin/, run with jsonnet)
     generates with the chart's prometheusRule values as its _config
     (selector, severities, keep-firing durations, URLs, thresholds).
  7. Cross-references: selectors match the pod labels; the Service and the
     probes name a container port that exists; every volumeMount has a volume;
     the ConfigMap, Secret, PVC and ServiceAccount the pod refers to are
     rendered (or are existing ones named in values); replicas is
     replicaCount; the strategy is Recreate with SQLite and RollingUpdate
     (maxUnavailable 0, maxSurge 1) with PostgreSQL; with SQLite the store
     volume is mounted at /var/lib/nhi-exporter, with PostgreSQL there is no
     store volume or PVC and the rendered config's state.url_file and
     hash_key_file are the store.postgres Secrets' keys, projected read-only;
     above one replica a policy/v1 PodDisruptionBudget on the Deployment's
     selector and, without `affinity`, a preferred anti-affinity by hostname
     on the selector labels; the security settings the chart promises are present;
     the checksum/config annotation is the SHA-256 of the rendered config; the
     dashboard ConfigMaps hold exactly dashboards/*.json.
  8. With --exporter BIN: the rendered nhi-exporter.yaml passes
     `BIN --config.check` (the exporter's own strict validation; it does not
     read state.url_file or connect to a database).

WHAT IS NOT CHECKED
  - That real Helm renders byte-identical output. Known differences: toYaml
    uses PyYAML (same data, other quoting/formatting choices than Go's yaml
    library); `quote` escapes like JSON rather than Go's %q (same for printable
    text); map iteration and key order follow Go's rules only where this file
    implements them (sorted keys in range and toYaml).
  - Helm features the chart does not use (see the subset), .helmignore,
    subcharts, hooks, `helm lint` rules, --set parsing.
  - Admission: Pod Security Standards, quota, the server-side defaults and
    cross-field validation of the API server (kubernetes-validate checks
    structure and types only), CRD schemas of the prometheus-operator.
  - That the pod starts: no cluster, no image build, no PostgreSQL here; that
    the named Secrets exist and hold a valid URL and key.

THE TEMPLATE SUBSET (the chart must stay within it)
  Syntax: text, {{ action }}, trim markers "{{- " and " -}}", comments
    {{/* */}}, define (in _helpers.tpl), if / else if / else / end,
    with / else / end, range over a list or map with "$v :=" or "$k, $v :="
    (maps iterate in sorted key order) / end, variable declaration
    "{{ $x := pipeline }}" and assignment "$x = pipeline", pipelines with "|",
    parenthesised pipelines as arguments, string literals ("..." and `...`),
    integer literals, true, false.
  Data: .Values (coalesced, numbers are float64 as in Helm: 1000000 prints
    as 1e+06 outside toYaml), .Chart.{Name,Version,AppVersion,Description,
    Type,APIVersion,KubeVersion,Home,Keywords,Sources,Annotations},
    .Release.{Name,Namespace,Service,IsInstall,IsUpgrade,Revision},
    .Files.Get, .Files.Glob (map of path to content), $ and variables.
  Functions: include, default, quote, toYaml, indent, nindent, trunc,
    trimSuffix, contains, replace, printf (%s %d %v), sha256sum, base, and,
    or, not (and/or evaluate every argument; Go stops at the deciding one, so
    an argument that errors is an error here even where Go would skip it),
    eq, ne, gt (strings, bools, numbers of one kind: Helm numbers are float64
    and literals int, which Go refuses to compare, so write
    `gt (int .Values.n) 1`; a missing value is an error here, false in Go),
    int (of a number), omit (a map without the given keys).
  Not supported (error): template, block, tpl, required, fail, lookup, lt, le,
    ge, .Capabilities, .Template, method calls other than
    .Files.Get/.Files.Glob, break/continue, range else, fields after a
    parenthesised pipeline.
"""

from __future__ import annotations

import argparse
import copy
import decimal
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

# ---------------------------------------------------------------------------
# Go-template subset
# ---------------------------------------------------------------------------


class TemplateError(Exception):
    pass


SPACE = " \t\r\n"  # text/template trims exactly these characters


def go_float_str(f: float) -> str:
    """fmt.Sprint of a float64, as text/template prints Helm's numbers.

    %v is strconv's 'g' format with the shortest digits, and for the shortest
    precision strconv switches to the exponent form when the decimal exponent
    is < -4 or >= 6. So 100000 prints as 100000 but 1000000 as 1e+06 (the
    well-known Helm surprise with large integers in values).
    """
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    sign, digits, exp = decimal.Decimal(repr(f)).normalize().as_tuple()
    digits_s = "".join(map(str, digits))
    x = len(digits_s) + exp - 1  # decimal exponent of the first digit
    neg = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = digits_s[0] + ("." + digits_s[1:] if len(digits_s) > 1 else "")
        return f"{neg}{mant}e{'+' if x >= 0 else '-'}{abs(x):02d}"
    if exp >= 0:
        return neg + digits_s + "0" * exp
    point = len(digits_s) + exp
    if point > 0:
        return neg + digits_s[:point] + "." + digits_s[point:]
    return neg + "0." + "0" * (-point) + digits_s


def go_str(v) -> str:
    """fmt.Sprint of a template value, as text/template prints it."""
    if v is None:
        raise TemplateError("prints a missing value (Helm would print an empty string)")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float_str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode()
    raise TemplateError(f"prints a {type(v).__name__} (Go would print its map[...] / [...] form)")


def truthy(v) -> bool:
    """text/template's truth: false, 0, nil, empty string/list/map are false."""
    if v is None:
        return False
    if isinstance(v, (bool, int, float, str, bytes, list, dict, tuple)):
        return bool(v)
    return True


def to_json_numbers(v):
    """Helm's toYaml goes through JSON: integral float64 values are written
    as integers."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: to_json_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json_numbers(x) for x in v]
    return v


def to_yaml(v) -> str:
    if v is None:
        return "null"
    out = yaml.safe_dump(to_json_numbers(v), default_flow_style=False, sort_keys=True,
                         allow_unicode=True, width=1 << 20)
    if out.endswith("\n...\n"):
        out = out[: -len("...\n")]
    return out[:-1] if out.endswith("\n") else out


def indent(n, s):
    pad = " " * int(n)
    return pad + go_str(s).replace("\n", "\n" + pad)


def sprig_trunc(c, s):
    s = go_str(s)
    c = int(c)
    if c < 0 and len(s) + c > 0:
        return s[len(s) + c:]
    if c >= 0 and len(s) > c:
        return s[:c]
    return s


def sprig_printf(fmt, *args):
    args = list(args)
    out = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        verb = fmt[i + 1: i + 2]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if verb not in ("s", "d", "v"):
            raise TemplateError(f"printf verb %{verb} is not in the supported subset")
        if not args:
            raise TemplateError("printf: missing argument")
        a = args.pop(0)
        if verb == "d":
            if isinstance(a, bool) or not isinstance(a, int):
                raise TemplateError(f"printf %d of a {type(a).__name__} (Helm numbers are float64: use %v)")
            out.append(str(a))
        else:
            out.append(go_str(a))
    if args:
        raise TemplateError("printf: extra arguments")
    return "".join(out)


def sprig_quote(*args):
    return " ".join(json.dumps(go_str(a), ensure_ascii=False) for a in args if a is not None)


def sprig_default(d, *given):
    if not given or not truthy(given[0]):
        return d
    return given[0]


def _basic_kind(v):
    """The Go kind of a template value, for eq/ne/gt: Helm numbers are
    float64, template literals int; comparing the two is an error in Go."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    raise TemplateError(f"invalid type for comparison: {type(v).__name__}")


def go_eq(a, *others):
    """text/template eq: a == b, or a == any of several; same kind only."""
    if not others:
        raise TemplateError("eq: missing argument for comparison")
    ka = _basic_kind(a)
    for b in others:
        if _basic_kind(b) != ka:
            raise TemplateError(f"eq: incompatible types for comparison ({ka} and {_basic_kind(b)})")
        if a == b:
            return True
    return False


def go_ne(a, b):
    return not go_eq(a, b)


def go_gt(a, b):
    """text/template gt: ordered kinds (int, float, string), same kind only."""
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka != kb:
        raise TemplateError(f"gt: incompatible types for comparison ({ka} and {kb})")
    if ka == "bool":
        raise TemplateError("gt: invalid type for comparison (bool)")
    return a > b


def sprig_int(v):
    """sprig int (cast.ToInt), for numbers only: float64 truncates."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TemplateError(f"int of a {type(v).__name__} is not in the supported subset (numbers only)")
    return int(v)


def sprig_omit(d, *keys):
    """sprig omit: a copy of the map without the given keys."""
    if not isinstance(d, dict):
        raise TemplateError(f"omit of a {type(d).__name__} (needs a map)")
    drop = {go_str(k) for k in keys}
    return {k: v for k, v in d.items() if k not in drop}


def go_base(p):
    p = go_str(p)
    if p == "":
        return "."
    p = p.rstrip("/")
    return "/" if p == "" else p.rsplit("/", 1)[-1]


class Obj:
    """A Go struct: missing fields are errors, unlike map keys."""

    def __init__(self, kind, fields):
        self.kind = kind
        self.fields = fields

    def field(self, name):
        if name not in self.fields:
            raise TemplateError(f"can't evaluate field {name} in type {self.kind}")
        return self.fields[name]


class Files:
    """.Files: the chart's files outside templates/ (like Helm, Chart.yaml,
    values.yaml, values.schema.json and charts/ are not among them)."""

    EXCLUDED = ("Chart.yaml", "values.yaml", "values.schema.json")

    def __init__(self, chart_dir):
        self.chart_dir = chart_dir
        self.paths = []
        for root, dirs, names in os.walk(chart_dir):
            rel_root = os.path.relpath(root, chart_dir)
            if rel_root == ".":
                dirs[:] = [d for d in dirs if d not in ("templates", "charts")]
            for n in names:
                rel = os.path.normpath(os.path.join(rel_root, n)).replace(os.sep, "/")
                if rel not in self.EXCLUDED:
                    self.paths.append(rel)
        self.paths.sort()
        self.used = set()

    def Get(self, path):
        path = go_str(path)
        if path not in self.paths:
            raise TemplateError(f".Files.Get {path!r}: no such file in the chart (Helm would return \"\")")
        self.used.add(path)
        with open(os.path.join(self.chart_dir, path), encoding="utf-8") as f:
            return f.read()

    def Glob(self, pattern):
        pattern = go_str(pattern)
        # Helm uses gobwas/glob with "/" as separator: "*" does not cross "/".
        rx = re.compile("^" + "".join(
            "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern) + "$")
        matched = {p: None for p in self.paths if rx.match(p)}
        for p in matched:
            matched[p] = self.Get(p)
        return matched


# --- lexer --------------------------------------------------------------------

def split_actions(src, name):
    """Split a template into ('text', s) and ('action', body, line) items,
    applying the trim markers."""
    items = []
    pos = 0
    trim_next = False
    while True:
        start = src.find("{{", pos)
        if start < 0:
            text = src[pos:]
            if trim_next:
                text = text.lstrip(SPACE)
            items.append(("text", text))
            return items
        text = src[pos:start]
        if trim_next:
            text = text.lstrip(SPACE)
        line = src.count("\n", 0, start) + 1
        i = start + 2
        left_trim = src.startswith("-", i) and i + 1 < len(src) and src[i + 1] in SPACE
        if left_trim:
            text = text.rstrip(SPACE)
            i += 2
        items.append(("text", text))
        # Find the closing "}}", skipping quoted strings.
        j = i
        quote = None
        while j < len(src):
            c = src[j]
            if quote:
                if c == "\\" and quote == '"':
                    j += 2
                    continue
                if c == quote:
                    quote = None
            elif c in "\"`":
                quote = c
            elif src.startswith("}}", j):
                break
            j += 1
        else:
            raise TemplateError(f"{name}:{line}: unclosed action")
        body = src[i:j]
        trim_next = False
        if len(body) >= 2 and body.endswith("-") and body[-2] in SPACE:
            body = body[:-2]
            trim_next = True
        stripped = body.strip(SPACE)
        if stripped.startswith("/*"):
            # Go: a comment starts right after "{{" or "{{- " and ends right
            # before "}}" or " -}}".
            if not (body.startswith("/*") and body.endswith("*/")):
                raise TemplateError(f"{name}:{line}: a comment must be written {{{{/* ... */}}}} "
                                    "or {{{{- /* ... */ -}}}}")
        else:
            items.append(("action", stripped, line))
        pos = j + 2


TOKEN_RX = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<number>-?[0-9]+(?![A-Za-z0-9_.]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)


def tokenize(body, where):
    toks = []
    pos = 0
    while pos < len(body):
        m = TOKEN_RX.match(body, pos)
        if not m:
            raise TemplateError(f"{where}: unsupported syntax at {body[pos:pos + 20]!r}")
        kind = m.lastgroup
        val = m.group()
        if kind != "ws":
            if kind == "field" and toks and toks[-1][0] in ("var", "rparen") and pos > 0 and body[pos - 1] not in SPACE:
                if toks[-1][0] == "rparen":
                    raise TemplateError(f"{where}: fields after a parenthesised pipeline are not supported")
                toks[-1] = ("var", toks[-1][1], val)  # $x.Field.Chain
            elif kind == "var":
                toks.append(("var", val, ""))
            else:
                toks.append((kind, val))
        pos = m.end()
    return toks


# --- parser -------------------------------------------------------------------

class Pipeline:
    def __init__(self, decl, declare, commands, where):
        self.decl = decl          # variable names
        self.declare = declare    # True for :=, False for =
        self.commands = commands  # list of list of operands
        self.where = where


def parse_pipeline(toks, where, allow_decl=True, max_vars=1):
    decl, declare = [], True
    # Declaration: $a := / $a, $b := / $a =
    i = 0
    names = []
    while i < len(toks) and toks[i][0] == "var" and toks[i][2] == "":
        names.append(toks[i][1])
        if i + 1 < len(toks) and toks[i + 1][0] == "comma":
            i += 2
            continue
        i += 1
        break
    if names and i < len(toks) and toks[i][0] in ("declare", "assign"):
        if not allow_decl:
            raise TemplateError(f"{where}: variable declaration not supported here")
        if len(names) > max_vars:
            raise TemplateError(f"{where}: too many variables in declaration")
        decl, declare = names, toks[i][0] == "declare"
        toks = toks[i + 1:]
    elif names and len(names) > 1:
        raise TemplateError(f"{where}: unexpected comma")
    commands, operands, i = [], [], 0
    while i < len(toks):
        t = toks[i]
        if t[0] == "pipe":
            if not operands:
                raise TemplateError(f"{where}: empty command in pipeline")
            commands.append(operands)
            operands = []
            i += 1
        elif t[0] == "lparen":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(toks[j][0], 0)
                j += 1
            if depth:
                raise TemplateError(f"{where}: unbalanced parenthesis")
            operands.append(("paren", parse_pipeline(toks[i + 1:j - 1], where, allow_decl=False)))
            i = j
        elif t[0] in ("string", "raw", "number", "ident", "field", "var"):
            operands.append(t)
            i += 1
        else:
            raise TemplateError(f"{where}: unexpected {t[1]!r}")
    if operands:
        commands.append(operands)
    if not commands:
        raise TemplateError(f"{where}: missing value")
    return Pipeline(decl, declare, commands, where)


KEYWORDS = {"if", "else", "end", "range", "with", "define"}
UNSUPPORTED = {"template", "block", "break", "continue", "tpl", "required", "fail", "lookup",
               "lt", "le", "ge", "len", "index", "print", "println"}


def parse_template(src, name):
    """Parse into a node list; returns (nodes, defines)."""
    items = split_actions(src, name)
    defines = {}
    # Each stack entry: (kind, node, current_body_list)
    root = []
    stack = [("root", None, root)]

    def body():
        return stack[-1][2]

    for item in items:
        if item[0] == "text":
            if item[1]:
                body().append(("text", item[1]))
            continue
        _, action, line = item
        where = f"{name}:{line}"
        toks = tokenize(action, where)
        if not toks:
            raise TemplateError(f"{where}: empty action")
        head = toks[0][1] if toks[0][0] == "ident" else None
        if head in UNSUPPORTED:
            raise TemplateError(f"{where}: {head!r} is not in the supported subset")
        if head == "define":
            if len(stack) != 1 or len(toks) != 2 or toks[1][0] != "string":
                raise TemplateError(f"{where}: define must be top-level: define \"name\"")
            node = {"name": json.loads(toks[1][1]), "body": []}
            stack.append(("define", node, node["body"]))
        elif head == "if" or head == "with":
            node = {"kind": head, "branches": [(parse_pipeline(toks[1:], where, allow_decl=False), [])],
                    "else": None, "where": where}
            body().append((head, node))
            stack.append((head, node, node["branches"][0][1]))
        elif head == "range":
            pipe = parse_pipeline(toks[1:], where, max_vars=2)
            if pipe.decl and not pipe.declare:
                raise TemplateError(f"{where}: range needs :=")
            node = {"pipe": pipe, "body": [], "where": where}
            body().append(("range", node))
            stack.append(("range", node, node["body"]))
        elif head == "else":
            kind, node, _ = stack[-1]
            if kind not in ("if", "with") or node["else"] is not None:
                raise TemplateError(f"{where}: else outside if/with (range else is not supported)")
            if len(toks) > 1:
                if toks[1] != ("ident", "if") or kind != "if":
                    raise TemplateError(f"{where}: only 'else if' is supported after else")
                node["branches"].append((parse_pipeline(toks[2:], where, allow_decl=False), []))
                stack[-1] = (kind, node, node["branches"][-1][1])
            else:
                node["else"] = []
                stack[-1] = (kind, node, node["else"])
        elif head == "end":
            if len(stack) == 1 or len(toks) != 1:
                raise TemplateError(f"{where}: unexpected end")
            kind, node, _ = stack.pop()
            if kind == "define":
                defines[node["name"]] = node["body"]
        else:
            body().append(("action", parse_pipeline(toks, where)))
    if len(stack) != 1:
        raise TemplateError(f"{name}: missing end for {stack[-1][0]}")
    return root, defines


# --- evaluator ----------------------------------------------------------------

class Renderer:
    def __init__(self, defines, files):
        self.defines = defines
        self.files = files
        self.funcs = {
            "default": sprig_default,
            "quote": sprig_quote,
            "toYaml": to_yaml,
            "indent": indent,
            "nindent": lambda n, s: "\n" + indent(n, s),
            "trunc": sprig_trunc,
            "trimSuffix": lambda suf, s: go_str(s)[: -len(suf)] if suf and go_str(s).endswith(suf) else go_str(s),
            "contains": lambda sub, s: go_str(sub) in go_str(s),
            "replace": lambda old, new, s: go_str(s).replace(go_str(old), go_str(new)),
            "printf": sprig_printf,
            "sha256sum": lambda s: hashlib.sha256(go_str(s).encode()).hexdigest(),
            "base": go_base,
            "not": lambda x: not truthy(x),
            "eq": go_eq,
            "ne": go_ne,
            "gt": go_gt,
            "int": sprig_int,
            "omit": sprig_omit,
        }

    def render(self, nodes, dot):
        out = []
        self.exec_nodes(nodes, dot, [{"$": dot}], out)
        return "".join(out)

    def include(self, name, dot):
        name = go_str(name)
        if name not in self.defines:
            raise TemplateError(f"include: no template named {name!r}")
        return self.render(self.defines[name], dot)

    def exec_nodes(self, nodes, dot, scopes, out):
        for kind, node in nodes:
            if kind == "text":
                out.append(node)
            elif kind == "action":
                v = self.eval_pipeline(node, dot, scopes)
                if not node.decl:
                    out.append(self.print_value(v, node.where))
            elif kind in ("if", "with"):
                for pipe, body in node["branches"]:
                    v = self.eval_pipeline(pipe, dot, scopes)
                    if truthy(v):
                        self.exec_nodes(body, v if kind == "with" else dot, scopes + [{}], out)
                        break
                else:
                    if node["else"] is not None:
                        self.exec_nodes(node["else"], dot, scopes + [{}], out)
            elif kind == "range":
                pipe = node["pipe"]
                v = self.eval_pipeline(Pipeline([], True, pipe.commands, pipe.where), dot, scopes)
                if v is None:
                    pairs = []
                elif isinstance(v, dict):
                    pairs = [(k, v[k]) for k in sorted(v)]
                elif isinstance(v, list):
                    pairs = list(enumerate(v))
                else:
                    raise TemplateError(f"{node['where']}: range can't iterate over {type(v).__name__}")
                for k, elem in pairs:
                    scope = {}
                    if len(pipe.decl) == 1:
                        scope[pipe.decl[0]] = elem
                    elif len(pipe.decl) == 2:
                        scope[pipe.decl[0]] = k
                        scope[pipe.decl[1]] = elem
                    self.exec_nodes(node["body"], elem, scopes + [scope], out)

    def print_value(self, v, where):
        try:
            return go_str(v)
        except TemplateError as e:
            raise TemplateError(f"{where}: {e}") from None

    def lookup_var(self, name, scopes, where):
        for scope in reversed(scopes):
            if name in scope:
                return scope
        raise TemplateError(f"{where}: undefined variable {name}")

    def eval_pipeline(self, pipe, dot, scopes):
        try:
            v = None
            for n, cmd in enumerate(pipe.commands):
                v = self.eval_command(cmd, dot, scopes, pipe.where, v if n else _NOPIPE)
        except TemplateError as e:
            msg = str(e)
            raise TemplateError(msg if msg.startswith(pipe.where) else f"{pipe.where}: {msg}") from None
        if pipe.decl:
            if pipe.declare:
                scopes[-1][pipe.decl[0]] = v
            else:
                self.lookup_var(pipe.decl[0], scopes, pipe.where)[pipe.decl[0]] = v
        return v

    def eval_command(self, cmd, dot, scopes, where, piped):
        first = cmd[0]
        if first[0] == "ident" and first[1] not in ("true", "false", "nil"):
            name = first[1]
            if name in KEYWORDS or name in UNSUPPORTED:
                raise TemplateError(f"{name!r} is not supported here")
            args = [self.eval_arg(a, dot, scopes, where) for a in cmd[1:]]
            if piped is not _NOPIPE:
                args.append(piped)
            if name == "include":
                if len(args) != 2:
                    raise TemplateError("include takes a name and a context")
                return self.include(args[0], args[1])
            if name in ("and", "or"):
                if not args:
                    raise TemplateError(f"{name} needs arguments")
                for a in args:
                    if (name == "and") != truthy(a):
                        return a
                return args[-1]
            if name not in self.funcs:
                raise TemplateError(f"function {name!r} is not in the supported subset")
            try:
                return self.funcs[name](*args)
            except TypeError as e:
                raise TemplateError(f"{name}: wrong arguments ({e})") from None
        if first[0] in ("field", "var"):
            target = self.resolve(first, dot, scopes, where)
            if callable(target):
                args = [self.eval_arg(a, dot, scopes, where) for a in cmd[1:]]
                if piped is not _NOPIPE:
                    args.append(piped)
                return target(*args)
        if len(cmd) > 1 or piped is not _NOPIPE:
            raise TemplateError(f"can't give arguments to a non-function {first[1]}")
        return self.eval_arg(first, dot, scopes, where)

    def eval_arg(self, tok, dot, scopes, where):
        kind = tok[0]
        if kind == "string":
            try:
                return json.loads(tok[1])
            except json.JSONDecodeError:
                raise TemplateError(f"unsupported string literal {tok[1]}") from None
        if kind == "raw":
            return tok[1][1:-1]
        if kind == "number":
            return int(tok[1])
        if kind == "ident":
            if tok[1] in ("true", "false"):
                return tok[1] == "true"
            raise TemplateError(f"{tok[1]!r}: functions with arguments must be parenthesised")
        if kind == "paren":
            return self.eval_pipeline(tok[1], dot, scopes)
        v = self.resolve(tok, dot, scopes, where)
        if callable(v):
            return v()
        return v

    def resolve(self, tok, dot, scopes, where):
        if tok[0] == "var":
            base = self.lookup_var(tok[1], scopes, where)[tok[1]]
            chain = tok[2]
        else:
            base = dot
            chain = "" if tok[1] == "." else tok[1]
        v = base
        for name in [p for p in chain.split(".") if p]:
            if v is None:
                raise TemplateError(f"nil pointer evaluating {chain} (at .{name})")
            if isinstance(v, dict):
                v = v.get(name)
            elif isinstance(v, Obj):
                v = v.field(name)
            elif isinstance(v, Files) and name in ("Get", "Glob"):
                v = getattr(v, name)
            else:
                raise TemplateError(f"can't evaluate field {name} of a {type(v).__name__}")
        return v


class _NoPipe:
    pass


_NOPIPE = _NoPipe()


# ---------------------------------------------------------------------------
# Helm-like chart loading
# ---------------------------------------------------------------------------


def to_helm_numbers(v):
    """Helm reads values through JSON: every number is a float64."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {k: to_helm_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_helm_numbers(x) for x in v]
    return v


def coalesce(base, override):
    """Helm's values merge: maps merge recursively, anything else replaces,
    null deletes the key."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


CHART_FIELDS = {"name": "Name", "version": "Version", "appVersion": "AppVersion",
                "description": "Description", "type": "Type", "apiVersion": "APIVersion",
                "kubeVersion": "KubeVersion", "home": "Home", "keywords": "Keywords",
                "sources": "Sources", "annotations": "Annotations"}


def render_chart(chart_dir, values, release_name, namespace):
    """Returns ({template path: rendered text}, notes text, Files)."""
    chart = load_yaml(os.path.join(chart_dir, "Chart.yaml"))
    fields = {v: chart.get(k, "" if k not in ("keywords", "sources", "annotations") else None)
              for k, v in CHART_FIELDS.items()}
    files = Files(chart_dir)
    dot = {
        "Values": to_helm_numbers(values),
        "Chart": Obj("Chart", fields),
        "Release": Obj("Release", {"Name": release_name, "Namespace": namespace, "Service": "Helm",
                                   "IsInstall": True, "IsUpgrade": False, "Revision": 1}),
        "Files": files,
    }
    tdir = os.path.join(chart_dir, "templates")
    parsed, defines = {}, {}
    for n in sorted(os.listdir(tdir)):
        path = os.path.join(tdir, n)
        if os.path.isdir(path):
            raise TemplateError(f"templates/{n}: subdirectories are not supported")
        with open(path, encoding="utf-8") as f:
            nodes, defs = parse_template(f.read(), f"templates/{n}")
        dup = set(defs) & set(defines)
        if dup:
            raise TemplateError(f"templates/{n}: template {sorted(dup)} defined twice")
        defines.update(defs)
        parsed[n] = nodes
    r = Renderer(defines, files)
    rendered, notes = {}, None
    for n, nodes in parsed.items():
        text = r.render(nodes, dot)
        if n == "NOTES.txt":
            notes = text
        elif n.startswith("_"):
            if text.strip():
                raise TemplateError(f"templates/{n}: a helper file renders text outside define")
        elif n.endswith((".yaml", ".yml")):
            rendered[f"templates/{n}"] = text
        else:
            raise TemplateError(f"templates/{n}: unexpected file type")
    return rendered, notes, files


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

# Fields of the prometheus-operator monitoring.coreos.com/v1 types the chart may
# set (ServiceMonitor Endpoint and RelabelConfig).
ENDPOINT_FIELDS = {"port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout",
                   "tlsConfig", "bearerTokenFile", "bearerTokenSecret", "authorization", "honorLabels",
                   "honorTimestamps", "trackTimestampsStaleness", "basicAuth", "oauth2",
                   "metricRelabelings", "relabelings", "proxyUrl", "noProxy", "proxyFromEnvironment",
                   "proxyConnectHeader", "followRedirects", "enableHttp2", "filterRunning"}
RELABEL_FIELDS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
RELABEL_ACTIONS = {"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                   "lowercase", "uppercase", "keepequal", "dropequal",
                   "Replace", "Keep", "Drop", "HashMod", "LabelMap", "LabelDrop", "LabelKeep",
                   "Lowercase", "Uppercase", "KeepEqual", "DropEqual"}
OPERATOR_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Checker:
    def __init__(self, label):
        self.label = label
        self.problems = []

    def check(self, cond, msg):
        if not cond:
            self.problems.append(f"{self.label}: {msg}")
        return cond


def k8s_versions(chart):
    import kubernetes_validate.utils as kvu
    known = kvu.all_versions()
    m = re.match(r"^>=\s*(\d+\.\d+)", chart.get("kubeVersion", ""))
    oldest = m.group(1) if m else known[0]
    return sorted({kvu.major_minor(oldest), kvu.major_minor(known[-1])},
                  key=lambda v: tuple(map(int, v.split("."))))


def validate_k8s(c, docs, versions):
    import kubernetes_validate
    import kubernetes_validate.utils as kvu
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key in CRDS:
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kvu.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                c.check(False, f"{d['kind']}/{d['metadata'].get('name')} against Kubernetes {v}: {path}: {e.message}")
            except kvu.SchemaNotFoundError as e:
                c.check(False, f"{d['kind']} {d['apiVersion']}: no schema for Kubernetes {v} ({e.message})")


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_objects(c, docs, values, repo_root, chart_dir, versions, release_namespace):
    by_kind = {}
    for d in docs:
        c.check(isinstance(d, dict), f"a rendered document is not a mapping: {d!r:.60}")
        if not isinstance(d, dict):
            continue
        for k in ("apiVersion", "kind", "metadata"):
            c.check(k in d, f"a document has no {k}")
        name = (d.get("metadata") or {}).get("name", "")
        c.check(bool(DNS_SUBDOMAIN.match(name)) and len(name) <= 253, f"{d.get('kind')} name {name!r} is not a DNS subdomain")
        if d.get("kind") in ("Service", "Deployment"):
            c.check(bool(DNS_LABEL.match(name)) and len(name) <= 63, f"{d['kind']} name {name!r} is not a DNS label")
        c.check((d["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "nhi-exporter"
                or values.get("nameOverride"), f"{d.get('kind')}/{name} lacks app.kubernetes.io/name")
        key = (d.get("kind"), name)
        c.check(key not in {(x.get("kind"), x["metadata"]["name"]) for l in by_kind.values() for x in l},
                f"duplicate {key}")
        by_kind.setdefault(d.get("kind"), []).append(d)

    before = len(c.problems)
    validate_k8s(c, docs, versions)
    if len(c.problems) > before:
        return None  # the cross-checks below rely on the schemas' structure

    deps = by_kind.get("Deployment", [])
    if not c.check(len(deps) == 1, f"expected one Deployment, got {len(deps)}"):
        return
    dep = deps[0]
    spec = dep["spec"]
    postgres = values["store"]["backend"] == "postgres"
    replicas = values["replicaCount"]
    c.check(spec.get("replicas") == replicas, f"replicas is {spec.get('replicas')}, not replicaCount {replicas}")
    c.check(postgres or replicas <= 1, "more than one replica on SQLite")
    strategy = spec.get("strategy", {})
    if postgres:
        c.check(strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                f"strategy on PostgreSQL is {strategy}, not RollingUpdate with maxUnavailable 0 and maxSurge 1")
    else:
        c.check(strategy == {"type": "Recreate"}, f"strategy on SQLite is {strategy}, not Recreate")
    pod = spec["template"]
    pod_labels = pod["metadata"].get("labels", {})
    c.check(labels_match(spec["selector"].get("matchLabels"), pod_labels), "Deployment selector does not match the pod labels")
    pspec = pod["spec"]

    # Several replicas: a PodDisruptionBudget on the pods, and by default a
    # preferred anti-affinity by node on the selector labels.
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if replicas > 1:
        if c.check(len(pdbs) == 1, f"replicaCount {replicas}: expected one PodDisruptionBudget, got {len(pdbs)}"):
            pdb = pdbs[0]["spec"]
            c.check(pdbs[0]["apiVersion"] == "policy/v1", "PodDisruptionBudget is not policy/v1")
            c.check(pdb.get("selector", {}).get("matchLabels") == spec["selector"].get("matchLabels"),
                    "PodDisruptionBudget selector differs from the Deployment's")
            c.check(pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 1,
                    "PodDisruptionBudget is neither maxUnavailable 1 nor minAvailable 1")
    else:
        c.check(not pdbs, "PodDisruptionBudget rendered with one replica")
    affinity = pspec.get("affinity")
    if values["affinity"]:
        c.check(affinity == values["affinity"], "affinity differs from values")
    elif replicas > 1:
        terms = (affinity or {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
        c.check(len(terms) == 1 and terms[0]["podAffinityTerm"].get("topologyKey") == "kubernetes.io/hostname"
                and terms[0]["podAffinityTerm"].get("labelSelector", {}).get("matchLabels") == spec["selector"].get("matchLabels"),
                f"default anti-affinity (preferred, by hostname, on the selector labels) missing: {affinity}")
        c.check(set(affinity) == {"podAntiAffinity"}, "default affinity has more than podAntiAffinity")
    else:
        c.check(affinity is None, "affinity rendered with one replica and none in values")
    containers = pspec["containers"]
    c.check(len(containers) == 1, "expected one container")
    ctr = containers[0]
    ports = {p.get("name"): p for p in ctr.get("ports", [])}
    c.check(ports.get("http-metrics", {}).get("containerPort") == 10073, "container port http-metrics is not 10073")

    # Security settings the chart promises (values may change them; the CI
    # values files keep them).
    psc, sc = pspec.get("securityContext", {}), ctr.get("securityContext", {})
    c.check(psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is True, "runAsNonRoot is not set")
    c.check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    c.check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    c.check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    c.check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
            and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile is not RuntimeDefault")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready"), ("startupProbe", "/-/healthy")):
        p = ctr.get(probe)
        if c.check(p is not None, f"no {probe}"):
            hg = p.get("httpGet", {})
            c.check(hg.get("path") == path, f"{probe} path is {hg.get('path')!r}, not {path}")
            c.check(hg.get("port") in ports, f"{probe} port {hg.get('port')!r} is not a container port")
    c.check("limits" in ctr.get("resources", {}) and "requests" in ctr["resources"], "resources lack requests or limits")

    args = ctr.get("args", [])
    cfg_args = [a for a in args if a.startswith("--config.file=")]
    c.check(cfg_args == ["--config.file=/etc/nhi-exporter/config/nhi-exporter.yaml"], f"--config.file args: {cfg_args}")

    vols = {v["name"]: v for v in pspec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in ctr.get("volumeMounts", [])}
    for m in ctr.get("volumeMounts", []):
        c.check(m["name"] in vols, f"volumeMount {m['name']} has no volume")
    c.check(mounts.get("/etc/nhi-exporter/config", {}).get("readOnly") is True, "config is not mounted read-only at /etc/nhi-exporter/config")
    names = lambda kind: {d["metadata"]["name"] for d in by_kind.get(kind, [])}
    cm_name = vols.get("config", {}).get("configMap", {}).get("name")
    c.check(cm_name in names("ConfigMap"), f"config ConfigMap {cm_name} is not rendered")

    persistence = values["persistence"]
    state = vols.get("state", {})
    # The files the rendered config's state points at (PostgreSQL): mount
    # path + item path -> (Secret name, key).
    store_files = {}
    if postgres:
        c.check("state" not in vols and "/var/lib/nhi-exporter" not in mounts, "a store volume on PostgreSQL")
        c.check(not by_kind.get("PersistentVolumeClaim"), "a PersistentVolumeClaim on PostgreSQL")
        store_mount = mounts.get("/etc/nhi-exporter/store", {})
        c.check(store_mount.get("name") == "store" and store_mount.get("readOnly") is True,
                "the store Secrets are not mounted read-only at /etc/nhi-exporter/store")
        proj = vols.get("store", {}).get("projected", {})
        c.check(proj.get("defaultMode") == 0o440, "the store Secrets are not mode 0440")
        for src in proj.get("sources", []):
            sec = src.get("secret", {})
            c.check(sec.get("optional") is not True, "a store Secret is optional")
            for it in sec.get("items", []):
                store_files["/etc/nhi-exporter/store/" + it["path"]] = (sec.get("name"), it["key"])
        pg = values["store"]["postgres"]
        c.check(set(store_files.values()) == {(pg["urlSecret"]["name"], pg["urlSecret"]["key"]),
                                               (pg["hashKeySecret"]["name"], pg["hashKeySecret"]["key"])},
                f"the store volume holds {sorted(store_files.values())}, not store.postgres' Secrets")
    elif persistence["enabled"]:
        c.check(mounts.get("/var/lib/nhi-exporter", {}).get("name") == "state", "the store volume is not mounted at /var/lib/nhi-exporter")
        claim = state.get("persistentVolumeClaim", {}).get("claimName")
        if persistence.get("existingClaim"):
            c.check(claim == persistence["existingClaim"], "existingClaim not used")
        else:
            c.check(claim in names("PersistentVolumeClaim"), f"PVC {claim} is not rendered")
            for pvc in by_kind.get("PersistentVolumeClaim", []):
                c.check(pvc["spec"]["accessModes"] == ["ReadWriteOnce"], "PVC is not ReadWriteOnce")
                c.check(pvc["spec"]["resources"]["requests"]["storage"] == persistence["size"], "PVC size differs from values")
    else:
        c.check(mounts.get("/var/lib/nhi-exporter", {}).get("name") == "state", "the store volume is not mounted at /var/lib/nhi-exporter")
        c.check("emptyDir" in state, "no emptyDir store without persistence")

    secrets = values["secrets"]
    secret_vol = vols.get("secrets", {}).get("secret", {}).get("secretName")
    if secrets.get("existingSecret"):
        c.check(secret_vol == secrets["existingSecret"], "existingSecret is not mounted")
    elif secrets.get("create"):
        c.check(secret_vol in names("Secret"), "chart Secret is not mounted")
        for s in by_kind.get("Secret", []):
            c.check(s.get("stringData") == secrets["files"], "Secret stringData differs from secrets.files")
        c.check("checksum/secrets" in pod["metadata"].get("annotations", {}), "no checksum/secrets annotation")
    else:
        c.check(secret_vol is None and not by_kind.get("Secret"), "a Secret without secrets.create or existingSecret")
    if secret_vol:
        c.check(mounts.get("/etc/nhi-exporter/secrets", {}).get("readOnly") is True, "secrets are not mounted read-only at /etc/nhi-exporter/secrets")

    sa = pspec.get("serviceAccountName")
    if values["serviceAccount"]["create"]:
        sas = by_kind.get("ServiceAccount", [])
        c.check([s["metadata"]["name"] for s in sas] == [sa], f"ServiceAccount {sa} is not rendered")
        for s in sas:
            c.check((s["metadata"].get("annotations") or {}) == values["serviceAccount"]["annotations"],
                    "ServiceAccount annotations differ from values")
    c.check(pspec.get("automountServiceAccountToken") == values["serviceAccount"]["automountToken"], "automountServiceAccountToken differs from values")

    # The configuration: ConfigMap content and its checksum.
    cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == cm_name]
    config_text = None
    if cms:
        config_text = cms[0]["data"].get("nhi-exporter.yaml")
        c.check(config_text is not None, "the ConfigMap has no nhi-exporter.yaml")
        if config_text is not None:
            want_cfg = values["config"]
            if postgres:
                # The chart writes state; the rest is .Values.config.
                want_cfg = {k: v for k, v in values["config"].items() if k != "state"}
                want_cfg["state"] = {"backend": "postgres", "url_file": "/etc/nhi-exporter/store/url",
                                     "hash_key_file": "/etc/nhi-exporter/store/hmac.key"}
                c.check(set(store_files) == {"/etc/nhi-exporter/store/url", "/etc/nhi-exporter/store/hmac.key"}
                        and store_files["/etc/nhi-exporter/store/url"] == (values["store"]["postgres"]["urlSecret"]["name"], values["store"]["postgres"]["urlSecret"]["key"])
                        and store_files["/etc/nhi-exporter/store/hmac.key"] == (values["store"]["postgres"]["hashKeySecret"]["name"], values["store"]["postgres"]["hashKeySecret"]["key"]),
                        f"state.url_file / hash_key_file are not the mounted Secrets: {store_files}")
            c.check(yaml.safe_load(config_text) == want_cfg, "rendered config differs from .Values.config (with the chart's state on PostgreSQL)")
            want = hashlib.sha256(config_text.encode()).hexdigest()
            c.check(pod["metadata"].get("annotations", {}).get("checksum/config") == want,
                    "checksum/config is not the SHA-256 of the rendered config")

    svcs = by_kind.get("Service", [])
    if c.check(len(svcs) == 1, "expected one Service"):
        svc = svcs[0]
        c.check(labels_match(svc["spec"]["selector"], pod_labels), "Service selector does not match the pod labels")
        sp = svc["spec"]["ports"]
        c.check([p["name"] for p in sp] == ["http-metrics"], "Service port is not named http-metrics")
        c.check(all(p["targetPort"] in ports for p in sp), "Service targetPort is not a container port name")

    for np in by_kind.get("NetworkPolicy", []):
        c.check(labels_match(np["spec"]["podSelector"].get("matchLabels"), pod_labels), "NetworkPolicy does not select the pod")
        ing = np["spec"].get("ingress", [])
        c.check(len(ing) == 1 and [p["port"] for p in ing[0]["ports"]] == ["http-metrics"], "NetworkPolicy ingress is not only the metrics port")
        restrict = values["networkPolicy"]["egress"]["restrict"]
        c.check(("Egress" in np["spec"]["policyTypes"]) == restrict, "NetworkPolicy Egress policyType differs from egress.restrict")
    c.check(bool(by_kind.get("NetworkPolicy")) == values["networkPolicy"]["enabled"], "NetworkPolicy presence differs from values")

    # ServiceMonitor, by hand.
    sms = by_kind.get("ServiceMonitor", [])
    c.check(bool(sms) == values["serviceMonitor"]["enabled"], "ServiceMonitor presence differs from values")
    for sm in sms:
        c.check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
        c.check(set(sm) <= {"apiVersion", "kind", "metadata", "spec"}, "ServiceMonitor has unknown top-level fields")
        s = sm.get("spec", {})
        c.check(set(s) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels",
                           "podTargetLabels", "sampleLimit", "targetLimit", "attachMetadata"}, f"ServiceMonitor spec fields {sorted(s)}")
        c.check(svcs and labels_match(s.get("selector", {}).get("matchLabels"), svcs[0]["metadata"]["labels"]),
                "ServiceMonitor selector does not match the Service labels")
        c.check(s.get("namespaceSelector") == {"matchNames": [release_namespace]}, "ServiceMonitor namespaceSelector")
        eps = s.get("endpoints", [])
        c.check(len(eps) == 1, "ServiceMonitor must have one endpoint")
        for ep in eps:
            c.check(set(ep) <= ENDPOINT_FIELDS, f"unknown endpoint fields {sorted(set(ep) - ENDPOINT_FIELDS)}")
            c.check(svcs and ep.get("port") in [p["name"] for p in svcs[0]["spec"]["ports"]], "endpoint port is not a Service port name")
            for f in ("interval", "scrapeTimeout"):
                c.check(isinstance(ep.get(f), str) and OPERATOR_DURATION.match(ep[f]) is not None, f"endpoint {f} {ep.get(f)!r} is not an operator duration")
            for rl in ep.get("relabelings", []) + ep.get("metricRelabelings", []):
                c.check(set(rl) <= RELABEL_FIELDS, f"unknown relabel fields {sorted(set(rl) - RELABEL_FIELDS)}")
                c.check(rl.get("action", "replace") in RELABEL_ACTIONS, f"unknown relabel action {rl.get('action')}")
            job = [r for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"]
            c.check(len(job) == 1 and job[0].get("replacement") == values["serviceMonitor"]["jobName"], "job relabeling missing")
        c.check(all(sm["metadata"]["labels"].get(k) == v for k, v in values["serviceMonitor"]["labels"].items()), "ServiceMonitor labels from values missing")

    # PrometheusRule, by hand: spec must be the rules file, parsed.
    prs = by_kind.get("PrometheusRule", [])
    if values["prometheusRule"]["enabled"]:
        # Expected: the mixin (mixin/) generated with the chart's knobs as _config.
        pv = values["prometheusRule"]
        cfg = {
            "selector": pv["selector"], "severities": pv["severities"],
            "keepFiringFor": pv["keepFiringFor"], "healthKeepFiringFor": pv["healthKeepFiringFor"],
            "runbookURLPattern": pv["runbookURLPrefix"] + "%s", "dashboardURL": pv["dashboardURL"],
            "thresholds": pv["thresholds"],
        }
        r = subprocess.run(
            ["jsonnet", "--ext-code", "cfg=" + json.dumps(cfg), "-e",
             "local m = (import 'mixin/mixin.libsonnet') + { _config+:: std.extVar('cfg') };"
             " { 'nhi-alerts': m.prometheusAlerts, 'nhi-recording': m.prometheusRules }"],
            cwd=repo_root, capture_output=True, text=True)
        c.check(r.returncode == 0, f"jsonnet (the mixin) failed: {r.stderr}")
        want = json.loads(r.stdout) if r.returncode == 0 else {}
        got = {}
        for pr in prs:
            c.check(pr["apiVersion"] == "monitoring.coreos.com/v1", "PrometheusRule apiVersion")
            c.check(set(pr) <= {"apiVersion", "kind", "metadata", "spec"}, "PrometheusRule has unknown top-level fields")
            c.check(set(pr.get("spec", {})) == {"groups"}, "PrometheusRule spec must hold only groups")
            for g in pr.get("spec", {}).get("groups", []):
                c.check(isinstance(g.get("name"), str) and g["name"], "rule group without name")
                for rule in g.get("rules", []):
                    c.check(("record" in rule) != ("alert" in rule) and isinstance(rule.get("expr"), str),
                            f"rule {rule.get('record') or rule.get('alert')}: needs exactly one of record/alert, and expr")
                    if "for" in rule:
                        c.check(OPERATOR_DURATION.match(str(rule["for"])) is not None, f"rule for: {rule['for']}")
            c.check(all(pr["metadata"]["labels"].get(k) == v for k, v in values["prometheusRule"]["labels"].items()), "PrometheusRule labels from values missing")
            suffix = pr["metadata"]["name"].rsplit("-", 1)[-1]
            got["nhi-" + suffix] = pr.get("spec")
        # Numbers compare by value: Helm prints values.yaml numbers as Go
        # float64 (2592000 -> 2.592e+06, which PromQL and Go templates read
        # alike), jsonnet as doubles (0.1 -> 0.10000000000000001).
        num = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])")

        def norm(x):
            if isinstance(x, dict):
                return {k: norm(v) for k, v in x.items()}
            if isinstance(x, list):
                return [norm(v) for v in x]
            if isinstance(x, str):
                return num.sub(lambda m: repr(float(m.group())), x)
            return x
        c.check(norm(got) == norm(want), "PrometheusRule specs differ from the mixin generated with the chart's prometheusRule values")
    else:
        c.check(not prs, "PrometheusRule rendered while disabled")

    # Dashboards: one ConfigMap per dashboards/*.json, same JSON.
    dash_cms = [d for d in by_kind.get("ConfigMap", []) if "-dashboard-" in d["metadata"]["name"]]
    if values["dashboards"]["enabled"]:
        want = {}
        for n in sorted(os.listdir(os.path.join(repo_root, "dashboards"))):
            if n.endswith(".json"):
                with open(os.path.join(repo_root, "dashboards", n), encoding="utf-8") as f:
                    want[n] = json.load(f)
        got = {}
        for cm in dash_cms:
            for k, v in cm["data"].items():
                got[k] = json.loads(v)
            c.check(all(cm["metadata"]["labels"].get(k) == v for k, v in values["dashboards"]["labels"].items()),
                    f"{cm['metadata']['name']}: sidecar labels missing")
            size = sum(len(v.encode()) for v in cm["data"].values())
            c.check(size < 256 * 1024, f"{cm['metadata']['name']}: {size} bytes, over the client-side apply annotation limit")
        c.check(got == want, f"dashboard ConfigMaps hold {sorted(got)}, not dashboards/*.json")
    else:
        c.check(not dash_cms, "dashboards rendered while disabled")
    return config_text


def run_exporter_check(c, exporter, config_text):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nhi-exporter.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(config_text)
        p = subprocess.run([exporter, f"--config.file={path}", "--config.check"],
                           capture_output=True, text=True, timeout=60)
        c.check(p.returncode == 0 and p.stdout.strip() == "OK",
                f"nhi-exporter --config.check on the rendered config: rc={p.returncode} {p.stdout.strip()} {p.stderr.strip()}")


def check_schema(c, schema, values, what):
    import jsonschema
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        c.check(False, f"values.schema.json is not a valid draft-7 schema: {e.message}")
        return
    v = jsonschema.Draft7Validator(schema)
    for e in sorted(v.iter_errors(values), key=lambda e: list(e.path)):
        c.check(False, f"{what} against values.schema.json: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")


# Values the schema must refuse (each over values.yaml): more than one
# SQLite replica, and a PostgreSQL store without its Secrets or with
# config.state keys the chart would not use.
SCHEMA_REJECTS = [
    ("replicaCount 2 with the default (sqlite) store", {"replicaCount": 2}),
    ("replicaCount 2 with store.backend sqlite", {"replicaCount": 2, "store": {"backend": "sqlite"}}),
    ("store.backend postgres without Secret names", {"store": {"backend": "postgres"}}),
    ("store.backend postgres without the HMAC key Secret",
     {"store": {"backend": "postgres", "postgres": {"urlSecret": {"name": "pg"}}}}),
    ("store.backend postgres with config.state.url_file",
     {"store": {"backend": "postgres", "postgres": {"urlSecret": {"name": "pg"}, "hashKeySecret": {"name": "k"}}},
      "config": {"state": {"url_file": "/etc/pg"}}}),
    ("config.state.backend postgres with store.backend sqlite",
     {"config": {"state": {"backend": "postgres"}}}),
    ("config.state.url_file with store.backend sqlite",
     {"config": {"state": {"url_file": "/etc/pg"}}}),
    ("store.backend mysql", {"store": {"backend": "mysql"}}),
]
# ... and accept.
SCHEMA_ACCEPTS = [
    ("replicaCount 0 (stopped) on sqlite", {"replicaCount": 0}),
    ("replicaCount 3 on postgres",
     {"replicaCount": 3, "store": {"backend": "postgres", "postgres": {"urlSecret": {"name": "pg"}, "hashKeySecret": {"name": "k"}}}}),
    ("postgres with config.state removed",
     {"store": {"backend": "postgres", "postgres": {"urlSecret": {"name": "pg"}, "hashKeySecret": {"name": "k"}}},
      "config": {"state": None}}),
]


def check_schema_rejects(schema, defaults):
    """The schema's cross-field rules (JSON-schema if/then/else), on purpose-made values."""
    import jsonschema
    c = Checker("values.schema.json")
    v = jsonschema.Draft7Validator(schema)
    for what, override in SCHEMA_REJECTS:
        c.check(not v.is_valid(coalesce(defaults, override)), f"accepts {what}")
    for what, override in SCHEMA_ACCEPTS:
        errs = [e.message for e in v.iter_errors(coalesce(defaults, override))]
        c.check(not errs, f"rejects {what}: {errs}")
    if not c.problems:
        print(f"values.schema.json: rejects {len(SCHEMA_REJECTS)} and accepts {len(SCHEMA_ACCEPTS)} purpose-made value sets as expected")
    return c.problems


def self_test():
    """The interpreter's behaviour on cases whose Go/Helm output is known."""
    def r(src, values=None):
        nodes, defines = parse_template(src, "self-test")
        return Renderer(defines, None).render(nodes, {"Values": to_helm_numbers(values or {})})

    cases = [
        ("a  {{- 1 -}}  b", {}, "a1b"),
        ("a\n  {{- /* c */}}\nb", {}, "a\nb"),
        ("a {{/* c */}} b", {}, "a  b"),
        ("{{ .Values.n }}", {"n": 1000000}, "1e+06"),
        ("{{ .Values.n }}", {"n": 10073}, "10073"),
        ("{{ .Values.n }}", {"n": 1234567}, "1.234567e+06"),
        ("{{ .Values.n }}", {"n": 0.5}, "0.5"),
        ("{{ .Values.b }}", {"b": False}, "false"),
        ("{{ toYaml .Values.m }}", {"m": {"b": 1, "a": [1, "x"]}}, "a:\n- 1\n- x\nb: 1"),
        ("{{ toYaml .Values.m | nindent 2 }}", {"m": {"a": 1}}, "\n  a: 1"),
        ('{{ "x\\ny" | indent 2 }}', {}, "  x\n  y"),
        ("{{ .Values.s | default \"d\" }}", {"s": ""}, "d"),
        ("{{ .Values.missing | default \"d\" }}", {}, "d"),
        ("{{ .Values.s | quote }}", {"s": "a\"b"}, '"a\\"b"'),
        ("{{ \"abcdef-\" | trunc 6 | trimSuffix \"-\" }}", {}, "abcdef"),
        ("{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}", {"b": 1}, "B"),
        ("{{ with .Values.m }}{{ .k }}{{ end }}", {"m": {"k": "v"}}, "v"),
        ("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", {"m": {"b": "2", "a": "1"}}, "a=1;b=2;"),
        ("{{ $x := \"p\" }}{{ if true }}{{ $x = \"q\" }}{{ end }}{{ $x }}", {}, "q"),
        ("{{ printf \"%s-%s\" \"a\" \"b\" | replace \"-\" \"_\" }}", {}, "a_b"),
        ("{{ contains \"ab\" \"xaby\" }}", {}, "true"),
        ("{{ and .Values.a (not .Values.b) }}", {"a": "x", "b": ""}, "true"),
        ("{{ or .Values.a .Values.b }}", {"a": "", "b": "y"}, "y"),
        ("{{ \"a/b/c.json\" | base }}", {}, "c.json"),
        ('{{ eq .Values.s "pg" }}', {"s": "pg"}, "true"),
        ('{{ eq .Values.s "a" "pg" }}', {"s": "pg"}, "true"),
        ('{{ ne .Values.s "pg" }}', {"s": "sqlite"}, "true"),
        ('{{ if eq .Values.s "pg" }}A{{ else }}B{{ end }}', {"s": "sqlite"}, "B"),
        ("{{ gt (int .Values.n) 1 }}", {"n": 2}, "true"),
        ("{{ gt (int .Values.n) 1 }}", {"n": 1}, "false"),
        ("{{ int .Values.n }}", {"n": 2}, "2"),
        ('{{ toYaml (omit .Values.m "a") }}', {"m": {"a": 1, "b": 2}}, "b: 2"),
    ]
    failures = []
    for src, vals, want in cases:
        try:
            got = r(src, vals)
        except TemplateError as e:
            got = f"error: {e}"
        if got != want:
            failures.append(f"self-test {src!r}: got {got!r}, want {want!r}")
    for src, vals in [("{{ /* c */ }}", {}), ("{{ .Values.missing }}", {}), ("{{ .Values.a.b }}", {}), ("{{ lookup \"v1\" }}", {}),
                      ("{{ .Values.m }}", {"m": {"a": 1}}), ("{{ if 1 }}", {}),
                      # Helm numbers are float64: comparing one with an int literal fails in Go.
                      ("{{ gt .Values.n 1 }}", {"n": 2}), ("{{ eq .Values.n 1 }}", {"n": 1}),
                      ('{{ eq .Values.missing "x" }}', {}), ("{{ gt true false }}", {}),
                      ('{{ lt 1 2 }}', {})]:
        try:
            r(src, vals)
            failures.append(f"self-test {src!r}: no error")
        except TemplateError:
            pass
    return failures


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chart", default=os.path.join(repo_root, "deploy", "helm", "nhi-exporter"))
    ap.add_argument("--values", action="append", default=[],
                    help="values file over values.yaml (repeatable); default: none, then each ci/*-values.yaml")
    ap.add_argument("--release", action="append", default=[], help="release names (default: nhi-exporter and prod)")
    ap.add_argument("--namespace", default="monitoring")
    ap.add_argument("--out", help="write the rendered manifests under this directory")
    ap.add_argument("--exporter", help="nhi-exporter binary: run --config.check on the rendered config")
    args = ap.parse_args()

    problems = self_test()
    if problems:
        for p in problems:
            print(f"FAIL {p}")
        return 1
    print("template interpreter self-test: ok")

    chart_dir = args.chart
    chart = load_yaml(os.path.join(chart_dir, "Chart.yaml"))
    c0 = Checker("Chart.yaml")
    c0.check(chart.get("apiVersion") == "v2", "apiVersion is not v2")
    for k in ("name", "version", "appVersion"):
        c0.check(isinstance(chart.get(k), str) and chart[k], f"no {k}")
    with open(os.path.join(chart_dir, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    defaults = load_yaml(os.path.join(chart_dir, "values.yaml"))
    check_schema(c0, schema, defaults, "values.yaml")
    problems += c0.problems

    problems += check_schema_rejects(schema, defaults)

    versions = k8s_versions(chart)
    ci_dir = os.path.join(chart_dir, "ci")
    ci_files = sorted(os.path.join(ci_dir, n) for n in os.listdir(ci_dir) if n.endswith("-values.yaml"))
    value_sets = [[]] + [[v] for v in ci_files]
    if args.values:
        value_sets = [[v] for v in args.values]
    releases = args.release or ["nhi-exporter", "prod"]
    for files in value_sets:
        values = defaults
        for v in files:
            values = coalesce(values, load_yaml(v) or {})
        label = "+".join(os.path.relpath(v, chart_dir) for v in files) or "values.yaml"
        cs = Checker(label)
        check_schema(cs, schema, values, label)
        problems += cs.problems
        if cs.problems:
            continue
        for release in releases:
            c = Checker(f"{label} (release {release})")
            try:
                rendered, notes, chart_files = render_chart(chart_dir, values, release, args.namespace)
            except TemplateError as e:
                c.check(False, f"render: {e}")
                problems += c.problems
                continue
            docs = []
            for path, text in rendered.items():
                try:
                    docs += [d for d in yaml.safe_load_all(text) if d is not None]
                except yaml.YAMLError as e:
                    c.check(False, f"{path}: rendered YAML does not parse: {e}")
            c.check(notes is not None and notes.strip() != "", "NOTES.txt renders empty")
            if args.out:
                out = os.path.join(args.out, re.sub(r"[^A-Za-z0-9._-]+", "_", label), release)
                os.makedirs(out, exist_ok=True)
                for path, text in rendered.items():
                    with open(os.path.join(out, os.path.basename(path)), "w", encoding="utf-8") as f:
                        f.write(text)
                with open(os.path.join(out, "NOTES.txt"), "w", encoding="utf-8") as f:
                    f.write(notes or "")
            config_text = None
            if not c.problems:
                try:
                    config_text = check_objects(c, docs, values, repo_root, chart_dir, versions, args.namespace)
                except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
                    c.check(False, f"rendered objects are not shaped as expected: {type(e).__name__}: {e}")
            if config_text is not None and args.exporter:
                run_exporter_check(c, args.exporter, config_text)
            kinds = sorted(f"{d['kind']}" for d in docs)
            status = "ok" if not c.problems else f"{len(c.problems)} problem(s)"
            print(f"{c.label}: {len(docs)} objects ({', '.join(kinds)}); "
                  f"Kubernetes {' and '.join(versions)} schemas; {status}")
            problems += c.problems

    for p in problems:
        print(f"FAIL {p}")
    if problems:
        print(f"render_chart: {len(problems)} problem(s)")
        return 1
    print("render_chart: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks of deploy/ that need neither Docker nor Helm nor systemd running.

    python3 tests/deploy/check_files.py [--exporter BIN] [--compose-schema FILE]
                                        [--promtool BIN]

Run by scripts/check-deploy.sh (which also runs hadolint, the chart test and
systemd-analyze). Prints every problem; exits 1 if there is one.

WHAT IS CHECKED
  copies   deploy/helm/nhi-exporter/files/prometheus/*.rules.yml and
           files/dashboards/*.json are byte-identical to deploy/prometheus/
           and dashboards/, file for file (nothing missing, nothing extra);
           the compose Grafana data source equals deploy/grafana's except
           for its URL (http://prometheus:9090); the compose prometheus.yml
           loads the same rule files and keeps the job name nhi-exporter.
  docker   deploy/docker/Dockerfile: what it COPYs exists and is not excluded
           by .dockerignore; everything cargo reads to load Cargo.toml (lock
           file, build script, declared benches/tests, path dependencies) is
           copied; .dockerignore excludes target, .git and the
           virtualenvs; EXPOSE 10073, USER 65532, VOLUME /var/lib/nhi-exporter,
           the config path in CMD, ARG VERSION/REVISION, the OCI labels.
           With --exporter: the HEALTHCHECK command itself (bash /dev/tcp) is
           run against the real exporter on a free loopback port (port
           substituted): it must succeed while the exporter runs and fail once
           it is gone; SIGTERM must stop the exporter with exit 0 within 10 s.
  compose  deploy/compose/compose.yaml parses (PyYAML) and validates against
           the Compose Specification JSON schema (--compose-schema); bind-mount
           sources, the build context and the Dockerfile exist; named volumes
           are declared; depends_on names services; the demo report globs of
           deploy/compose/nhi-exporter.yaml, mapped from /demo to config/demo,
           match files. Profile `postgres`: the default services (nhi-exporter,
           prometheus, grafana) have no profile; `postgres` runs postgres:16
           with a named data volume, a pg_isready healthcheck and no
           published port; every exporter of the profile mounts
           deploy/compose/nhi-exporter-postgres.yaml (state.backend postgres),
           its url_file and hash_key_file read-only, waits for postgres to be
           healthy and publishes on 127.0.0.1; the URL file names the postgres
           service, its user, password and database; the key file is 64 hex
           digits; that config's demo globs match files. With --promtool:
           `promtool check config` on the compose prometheus.yml laid out
           beside the rule files as in the container.
  configs  With --exporter: `nhi-exporter --config.check` passes on
           deploy/compose/nhi-exporter.yaml, deploy/compose/nhi-exporter-postgres.yaml
           and deploy/systemd/nhi-exporter.yaml.

WHAT IS NOT CHECKED
  The image is not built and no container, compose stack, PostgreSQL server
  or systemd unit is started (no container engine or systemd here). The compose schema is the
  copy shipped in docker-compose 1.29.2 (2021), the newest the reachable
  registries carry: it does not know newer Compose keys, and image tags are
  not checked against a registry.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
problems: list[str] = []
notices: list[str] = []


def fail(area, msg):
    problems.append(f"{area}: {msg}")


def rel(p):
    return os.path.relpath(p, ROOT)


def read(p, mode="r"):
    with open(os.path.join(ROOT, p), mode) as f:
        return f.read()


# --- copies -----------------------------------------------------------------

def check_copies():
    pairs = [("deploy/prometheus", "deploy/helm/nhi-exporter/files/prometheus", "*.rules.yml"),
             ("dashboards", "deploy/helm/nhi-exporter/files/dashboards", "*.json")]
    n = 0
    for src, dst, pat in pairs:
        a = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, src, pat))}
        b = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, dst, pat))}
        if not a:
            fail("copies", f"no {pat} in {src}")
        for name in sorted(a - b):
            fail("copies", f"{dst}/{name} is missing (cp {src}/{name} {dst}/)")
        for name in sorted(b - a):
            fail("copies", f"{dst}/{name} has no original in {src}/ (remove it)")
        for name in sorted(a & b):
            n += 1
            if read(f"{src}/{name}", "rb") != read(f"{dst}/{name}", "rb"):
                fail("copies", f"{dst}/{name} differs from {src}/{name} (cp {src}/{name} {dst}/)")

    orig = yaml.safe_load(read("deploy/grafana/provisioning/datasources/nhi.yaml"))
    comp = yaml.safe_load(read("deploy/compose/grafana/datasources/nhi.yaml"))
    if [d.get("url") for d in comp.get("datasources", [])] != ["http://prometheus:9090"]:
        fail("copies", "deploy/compose/grafana/datasources/nhi.yaml: url is not http://prometheus:9090")
    for d in orig.get("datasources", []) + comp.get("datasources", []):
        d.pop("url", None)
    if orig != comp:
        fail("copies", "deploy/compose/grafana/datasources/nhi.yaml differs from deploy/grafana/provisioning/datasources/nhi.yaml beyond the url")

    porig = yaml.safe_load(read("deploy/prometheus/prometheus.yml"))
    pcomp = yaml.safe_load(read("deploy/compose/prometheus.yml"))
    if porig.get("rule_files") != pcomp.get("rule_files"):
        fail("copies", "deploy/compose/prometheus.yml loads other rule files than deploy/prometheus/prometheus.yml")
    if [j.get("job_name") for j in pcomp.get("scrape_configs", [])] != ["nhi-exporter"]:
        fail("copies", "deploy/compose/prometheus.yml: the scrape job must be nhi-exporter")
    print(f"copies: {n} chart copies identical to their originals; compose Grafana/Prometheus files in line")


# --- Dockerfile ----------------------------------------------------------------

def dockerignore_patterns():
    pats = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(path, pats):
    """Approximation of Docker's matcher: a pattern excludes a path or
    anything under it; ** matches any number of directories."""
    parts = path.split("/")
    for pat in pats:
        if pat.startswith("!"):
            fail("docker", ".dockerignore exceptions (!) are not understood by this check")
            continue
        rx = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        for i in range(1, len(parts) + 1):
            if re.fullmatch(rx, "/".join(parts[:i])):
                return True
    return False


def dockerfile_instructions(text):
    """(instruction, arguments) with line continuations joined."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        ins, _, args = cur.partition(" ")
        out.append((ins.upper(), args.strip()))
        cur = ""
    return out


def cargo_manifest_needs():
    """Files cargo reads to load Cargo.toml, even for `cargo build --bin`:
    the lock file, build script, lib and every explicitly declared target
    (a declared bench whose file is missing stops the build), path
    dependencies of any kind, workspace members."""
    import tomllib
    cargo = tomllib.loads(read("Cargo.toml"))
    needs = {"Cargo.toml", "Cargo.lock"}
    pkg = cargo.get("package", {})
    build = pkg.get("build", "build.rs" if os.path.exists(os.path.join(ROOT, "build.rs")) else None)
    if build:
        needs.add(build)
    if "lib" in cargo:
        needs.add(cargo["lib"].get("path", "src/lib.rs"))
    defaults = {"bin": "src/bin", "bench": "benches", "test": "tests", "example": "examples"}
    for kind, d in defaults.items():
        for t in cargo.get(kind, []):
            needs.add(t.get("path") or f"{d}/{t['name']}.rs")
    for section in ("dependencies", "dev-dependencies", "build-dependencies"):
        for dep in cargo.get(section, {}).values():
            if isinstance(dep, dict) and "path" in dep:
                needs.add(os.path.normpath(dep["path"]))
    for m in cargo.get("workspace", {}).get("members", []):
        needs.add(m)
    return needs


def check_dockerfile(exporter):
    text = read("deploy/docker/Dockerfile")
    ins = dockerfile_instructions(text)
    pats = dockerignore_patterns()
    for must in ("target", ".git", ".venv", ".venv-deploy"):
        if must not in pats:
            fail("docker", f".dockerignore does not exclude {must}")
    copies = [a for i, a in ins if i == "COPY" and not a.startswith("--from")]
    for a in copies:
        srcs = a.split()[:-1]
        for s in srcs:
            if not os.path.exists(os.path.join(ROOT, s)):
                fail("docker", f"COPY source {s} does not exist")
            elif ignored(s.rstrip("/"), pats):
                fail("docker", f"COPY source {s} is excluded by .dockerignore")
    # What the build reads must be copied: a manifest target (bench) whose
    # file is missing stops cargo.
    copied = {s.rstrip("/").split("/")[0] for a in copies for s in a.split()[:-1]}
    for need in sorted(cargo_manifest_needs()):
        if need.split("/")[0] not in copied:
            fail("docker", f"cargo needs {need} to load the manifest, and the build stage does not COPY it")
    joined = "\n".join(f"{i} {a}" for i, a in ins)
    for want, msg in [
        (r"^EXPOSE 10073$", "EXPOSE 10073"),
        (r"^USER 65532(:65532)?$", "USER 65532"),
        (r'^VOLUME \["/var/lib/nhi-exporter"\]$', "VOLUME /var/lib/nhi-exporter"),
        (r'^ENTRYPOINT \["/usr/local/bin/nhi-exporter"\]$', "ENTRYPOINT the binary"),
        (r'^CMD \["--config.file=/etc/nhi-exporter/nhi-exporter.yaml"\]$', "CMD --config.file=/etc/nhi-exporter/nhi-exporter.yaml"),
        (r"^ARG VERSION", "ARG VERSION"),
        (r"^ARG REVISION", "ARG REVISION"),
        (r'NHI_EXPORTER_REVISION="\$\{REVISION\}"', "REVISION passed as NHI_EXPORTER_REVISION to cargo"),
        (r"cargo build --release --locked", "cargo build --release --locked"),
        (r"org\.opencontainers\.image\.revision=", "OCI revision label"),
        (r"org\.opencontainers\.image\.version=", "OCI version label"),
        (r"^HEALTHCHECK ", "HEALTHCHECK"),
    ]:
        if not re.search(want, joined, re.M):
            fail("docker", f"Dockerfile lacks {msg}")
    hc = [a for i, a in ins if i == "HEALTHCHECK"]
    if len(hc) == 1 and exporter:
        m = re.search(r"CMD (\[.*\])\s*$", hc[0])
        if not m:
            fail("docker", "HEALTHCHECK is not in exec form")
            return
        cmd = json.loads(m.group(1))
        check_healthcheck(cmd, exporter)
    elif not exporter:
        notices.append("the Dockerfile HEALTHCHECK command was not run (no exporter binary)")
    print("docker: Dockerfile structure and .dockerignore checked")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_healthcheck(cmd, exporter):
    if "10073" not in " ".join(cmd):
        fail("docker", "HEALTHCHECK does not probe port 10073")
        return
    port = free_port()
    probe = [c.replace("/10073", f"/{port}") for c in cmd]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "nhi-exporter.yaml")
        with open(cfg, "w") as f:
            f.write("state:\n  path: %s/state.db\nsources:\n  - name: demo\n    type: gitleaks\n"
                    "    paths: [\"%s/config/demo/gitleaks/*.json\"]\n" % (tmp, ROOT))
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen([exporter, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            else:
                fail("docker", "the exporter did not become healthy within 15 s for the HEALTHCHECK test")
                return
            r = subprocess.run(probe, capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                fail("docker", f"HEALTHCHECK command fails against a healthy exporter: rc={r.returncode} {r.stderr.strip()}")
            t0 = time.time()
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=12)
                took = time.time() - t0
                if rc != 0 or took > 10:
                    fail("docker", f"SIGTERM: exit {rc} after {took:.1f}s (want 0 within 10 s)")
            except subprocess.TimeoutExpired:
                fail("docker", "the exporter did not stop within 12 s of SIGTERM")
            r = subprocess.run(probe, capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                fail("docker", "HEALTHCHECK command succeeds with no exporter running")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    print("docker: HEALTHCHECK command passes against the running exporter and fails once it stopped; SIGTERM exit 0 within 10 s")


# --- compose -------------------------------------------------------------------

def check_compose(schema_path, exporter, promtool):
    cdir = os.path.join(ROOT, "deploy", "compose")
    path = os.path.join(cdir, "compose.yaml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    if schema_path:
        import jsonschema
        with open(schema_path) as f:
            schema = json.load(f)
        v = jsonschema.Draft201909Validator(schema)  # the schema says draft 2019-09
        for e in v.iter_errors(doc):
            fail("compose", f"compose.yaml against the Compose schema: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
    else:
        notices.append("compose.yaml was not validated against the Compose schema (no --compose-schema)")
    services = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        for m in svc.get("volumes", []):
            src = m.split(":")[0]
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.normpath(os.path.join(cdir, src))):
                    fail("compose", f"{name}: bind-mount source {src} does not exist")
            elif src not in volumes:
                fail("compose", f"{name}: named volume {src} is not declared")
        deps = svc.get("depends_on", [])
        for d in (deps if isinstance(deps, list) else deps.keys()):
            if d not in services:
                fail("compose", f"{name}: depends_on unknown service {d}")
        b = svc.get("build")
        if b:
            ctx = os.path.normpath(os.path.join(cdir, b["context"]))
            if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
                fail("compose", f"{name}: Dockerfile {b.get('dockerfile')} not found in context {rel(ctx)}")
        img = svc.get("image", "")
        if not b and (":" not in img or img.endswith(":latest")):
            fail("compose", f"{name}: image {img!r} has no pinned tag")

    exp = services.get("nhi-exporter", {})
    mounts = {m.split(":")[1]: m.split(":")[0] for m in exp.get("volumes", [])}  # target -> source
    if mounts.get("/var/lib/nhi-exporter") not in volumes:
        fail("compose", "nhi-exporter: /var/lib/nhi-exporter is not a named volume")
    cfg_src = mounts.get("/etc/nhi-exporter/nhi-exporter.yaml")
    demo_src = mounts.get("/demo")
    if cfg_src != "./nhi-exporter.yaml" or demo_src is None:
        fail("compose", "nhi-exporter: expects ./nhi-exporter.yaml at /etc/nhi-exporter/nhi-exporter.yaml and the demo reports at /demo")
    else:
        cfg = yaml.safe_load(read("deploy/compose/nhi-exporter.yaml"))
        if cfg["state"]["path"] != "/var/lib/nhi-exporter/state.db":
            fail("compose", "deploy/compose/nhi-exporter.yaml: state.path is not /var/lib/nhi-exporter/state.db")
        check_demo_globs(cfg, os.path.normpath(os.path.join(cdir, demo_src)))
        if exporter:
            run_config_check(exporter, os.path.join(cdir, "nhi-exporter.yaml"))
    check_compose_postgres(cdir, services, volumes, exporter)
    if promtool:
        with tempfile.TemporaryDirectory() as tmp:
            prom = services.get("prometheus", {})
            for m in prom.get("volumes", []):
                src, dst = m.split(":")[:2]
                if src.startswith(".") and dst.startswith("/etc/prometheus/"):
                    shutil.copy(os.path.join(cdir, src), os.path.join(tmp, os.path.basename(dst)))
            r = subprocess.run([promtool, "check", "config", os.path.join(tmp, "prometheus.yml")],
                               capture_output=True, text=True)
            if r.returncode != 0:
                fail("compose", f"promtool check config on the compose prometheus.yml: {r.stdout}{r.stderr}")
    else:
        notices.append("the compose prometheus.yml was not checked with promtool (not installed)")
    print(f"compose: {len(services)} services checked"
          + (" against the Compose schema" if schema_path else "")
          + (", prometheus.yml with promtool" if promtool else ""))


def check_demo_globs(cfg, demo_dir):
    for s in cfg.get("sources", []):
        for g in s.get("paths", []):
            if not g.startswith("/demo/"):
                fail("compose", f"source {s['name']}: path {g} is not under /demo")
                continue
            hits = glob.glob(os.path.join(demo_dir, g[len("/demo/"):]))
            if not hits:
                fail("compose", f"source {s['name']}: {g} matches no file in {rel(demo_dir)}")


def check_compose_postgres(cdir, services, volumes, exporter):
    """The optional `postgres` profile: a PostgreSQL service and exporter
    replicas on it, leaving the default services as they are."""
    default = sorted(n for n, s in services.items() if not s.get("profiles"))
    if default != ["grafana", "nhi-exporter", "prometheus"]:
        fail("compose", f"services without a profile are {default}, not nhi-exporter, prometheus, grafana")
    pg = services.get("postgres")
    if pg is None:
        fail("compose", "no postgres service (profile postgres)")
        return
    if pg.get("profiles") != ["postgres"]:
        fail("compose", "postgres: not in (only) the profile postgres")
    if pg.get("image") != "postgres:16":
        fail("compose", f"postgres: image {pg.get('image')!r} is not postgres:16")
    if pg.get("ports"):
        fail("compose", "postgres: publishes a port (it must stay on the compose network)")
    mounts = {m.split(":")[1]: m.split(":")[0] for m in pg.get("volumes", [])}
    if mounts.get("/var/lib/postgresql/data") not in volumes:
        fail("compose", "postgres: /var/lib/postgresql/data is not a named volume")
    test = pg.get("healthcheck", {}).get("test", [])
    if "pg_isready" not in (test if isinstance(test, str) else " ".join(test)):
        fail("compose", "postgres: the healthcheck does not run pg_isready")
    env = pg.get("environment", {})
    if not isinstance(env, dict):
        fail("compose", "postgres: environment must be a map (to compare it with the URL file)")
        env = {}

    replicas = [n for n, s in services.items() if s.get("profiles") == ["postgres"] and n != "postgres"]
    if len(replicas) < 2:
        fail("compose", f"profile postgres: {len(replicas)} exporter service(s), want 2 replicas")
    cfg_path = os.path.join(cdir, "nhi-exporter-postgres.yaml")
    for name in replicas:
        svc = services[name]
        vols = svc.get("volumes", [])
        targets = {m.split(":")[1]: m for m in vols}
        if targets.get("/etc/nhi-exporter/nhi-exporter.yaml", "").split(":")[0] != "./nhi-exporter-postgres.yaml":
            fail("compose", f"{name}: ./nhi-exporter-postgres.yaml is not mounted at /etc/nhi-exporter/nhi-exporter.yaml")
            continue
        cfg = yaml.safe_load(read("deploy/compose/nhi-exporter-postgres.yaml"))
        state = cfg.get("state", {})
        if state.get("backend") != "postgres":
            fail("compose", "deploy/compose/nhi-exporter-postgres.yaml: state.backend is not postgres")
            continue
        for key in ("url_file", "hash_key_file"):
            m = targets.get(state.get(key))
            if m is None or not m.endswith(":ro") or not m.startswith("./"):
                fail("compose", f"{name}: state.{key} {state.get(key)} is not a read-only bind mount")
        deps = svc.get("depends_on", {})
        if not isinstance(deps, dict) or deps.get("postgres", {}).get("condition") != "service_healthy":
            fail("compose", f"{name}: does not wait for postgres to be healthy")
        for p in svc.get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                fail("compose", f"{name}: port {p} is not published on 127.0.0.1 only")
        demo = targets.get("/demo")
        if demo is None:
            fail("compose", f"{name}: the demo reports are not mounted at /demo")
        else:
            check_demo_globs(cfg, os.path.normpath(os.path.join(cdir, demo.split(":")[0])))
        url_m, key_m = targets.get(state.get("url_file")), targets.get(state.get("hash_key_file"))
        if url_m and key_m:
            url = read(os.path.relpath(os.path.join(cdir, url_m.split(":")[0]), ROOT)).strip()
            want = (f"postgres://{env.get('POSTGRES_USER')}:{env.get('POSTGRES_PASSWORD')}"
                    f"@postgres:5432/{env.get('POSTGRES_DB')}?")
            if not url.startswith(want):
                fail("compose", f"{name}: the URL file does not name the postgres service's user, password and database")
            key = read(os.path.relpath(os.path.join(cdir, key_m.split(":")[0]), ROOT)).strip()
            if not re.fullmatch(r"[0-9a-f]{64}", key):
                fail("compose", f"{name}: the HMAC key file does not hold 64 hex digits")
    if exporter:
        run_config_check(exporter, cfg_path)
    print(f"compose: profile postgres: postgres and {len(replicas)} exporter replicas checked")


def run_config_check(exporter, cfg):
    r = subprocess.run([exporter, f"--config.file={cfg}", "--config.check"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or r.stdout.strip() != "OK":
        fail("configs", f"nhi-exporter --config.check {rel(cfg)}: rc={r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
    else:
        print(f"configs: {rel(cfg)}: OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exporter")
    ap.add_argument("--compose-schema")
    ap.add_argument("--promtool")
    a = ap.parse_args()
    check_copies()
    check_dockerfile(a.exporter)
    check_compose(a.compose_schema, a.exporter, a.promtool)
    if a.exporter:
        run_config_check(a.exporter, os.path.join(ROOT, "deploy", "systemd", "nhi-exporter.yaml"))
    else:
        notices.append("the compose and systemd configs were not checked with --config.check (no exporter binary)")
    for n in notices:
        print(f"NOTICE: {n}")
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        print(f"check_files: {len(problems)} problem(s)")
        return 1
    print("check_files: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

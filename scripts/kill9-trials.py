#!/usr/bin/env python3
"""kill -9 at random points, N trials (benchmark-style, not a timed test).

Three kinds of trial, each killing the real binary with SIGKILL at a random
moment and then checking the store directly (sqlite3):

- migration: a fresh store, killed 0-150 ms after start (while the schema
  is created and migrated); afterwards the store must open: `--once` on it
  exits 0 and `PRAGMA integrity_check` is ok.
- ingest: a store shared across trials, report files changed before each
  trial (new findings, some removed), the daemon killed 0-1500 ms into its
  first poll (a streamed ingest of ~40k findings; KILL_WINDOW seconds,
  default 4, so that some kills land after the commit); afterwards integrity is
  ok, every persisted counter is >= its value after the previous trial
  (counters never go back), and the open findings are exactly those of a
  committed poll: the state before this trial's reports, or after them
  (nothing open is lost, nothing half-applied).
- old-schema migration: a store of an earlier release (schema v2, built from
  the migrations' own SQL in src/store/schema.rs, with 200,000 findings,
  counters and v2 histograms), killed 0-600 ms into its migration to the
  current schema (an ALTER and an UPDATE over every finding, a data step
  turning histograms into durations); afterwards `--once` exits 0, the store
  passes `PRAGMA integrity_check`, and its migrated counters, durations and
  findings equal those of the same store migrated without a kill.
- inventory: an aws source against the real moto server with 400 IAM users
  and access keys, killed 0-1500 ms into its poll; the same checks, and the
  stored credentials are those of the previous or the new inventory.

Usage: scripts/kill9-trials.py [TRIALS] (default 100, split across the
four kinds; KINDS=migration,old,ingest,inventory picks some). Needs target/release/nhi-exporter (cargo build --release)
and the .venv of scripts/test.sh (moto, boto3).
"""
import json, os, random, re, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NHI_BIN", os.path.join(ROOT, "target/release/nhi-exporter"))
VENV = os.path.join(ROOT, ".venv/bin")
rng = random.Random(int(os.environ.get("SEED", "9")))
KILL_WINDOW = float(os.environ.get("KILL_WINDOW", "4"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def finding(i, file_no):
    secret = f"kill9-secret-{file_no}-{i}-{'x' * 12}"
    return {"RuleID": "generic-api-key", "Description": "g", "StartLine": i + 1, "EndLine": i + 1,
            "StartColumn": 1, "EndColumn": 9, "Match": "k = <redacted>", "Secret": secret,
            "File": f"src/f{file_no}.py", "SymlinkFile": "", "Commit": "c0ffee",
            "Link": "", "Entropy": 4.0, "Author": "a", "Email": "a@example.com",
            "Date": "2026-01-01T00:00:00Z", "Message": "m", "Tags": [],
            "Fingerprint": f"c0ffee:src/f{file_no}.py:generic-api-key:{i + 1}"}


def write_reports(d, generation, files=40, per=1000):
    """Generation g: file k holds findings [g*10, g*10 + per): each
    generation closes 10 and opens 10 per file."""
    os.makedirs(d, exist_ok=True)
    expected = set()
    for k in range(files):
        fs = [finding(i, k) for i in range(generation * 10, generation * 10 + per)]
        expected.update(f["Fingerprint"] for f in fs)
        tmp = os.path.join(d, f".r{k}.tmp")
        with open(tmp, "w") as f:
            json.dump(fs, f)
        os.replace(tmp, os.path.join(d, f"r{k}.json"))
    return expected


def store_state(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        ok = c.execute("PRAGMA integrity_check").fetchone()[0]
        counters = dict(((n, l), v) for n, l, v in c.execute("SELECT name, labels, value FROM counters"))
        try:
            open_ids = {r[0] for r in c.execute("SELECT scanner_id FROM findings WHERE open = 1")}
        except sqlite3.OperationalError:
            open_ids = set()
        try:
            creds = {r[0] for r in c.execute("SELECT ext_id FROM credentials WHERE state != 'deleted'")}
        except sqlite3.OperationalError:
            creds = set()
        return ok, counters, open_ids, creds
    finally:
        c.close()


def old_store(db, findings=200_000):
    """A store as an earlier release left it: schema v2 (the first two
    migrations' SQL, read from src/store/schema.rs), 200k findings of a
    source no longer configured, v2 counters (metric names) and histograms
    (bucket counts). No hash key id: the binary writes its own."""
    src = open(os.path.join(ROOT, "src/store/schema.rs")).read()
    sqls = re.findall(r'r#"(.*?)"#', src, re.S)
    c = sqlite3.connect(db)
    for sql in sqls[:2]:
        c.executescript(sql)
    c.execute("INSERT INTO targets(id, source, target, fingerprint, scanned_at) VALUES (1, 'old', 'old.json', 'fp', 1767225600)")
    c.executemany("INSERT INTO exposures(id, key, secret_type, first_detected_at, open_findings, validity) VALUES (?, ?, 'x', 1767225600, 1, ?)",
                  ((i, i.to_bytes(17, "big"), "live" if i % 3 == 0 else "unknown") for i in range(1, findings + 1)))
    c.executemany("INSERT INTO findings(source, target_id, scanner_key, scanner_id, exposure_id, secret_type, detected_at, open, validity) "
                  "VALUES ('old', 1, ?, ?, ?, 'x', 1767225600, 1, ?)",
                  ((i.to_bytes(16, "big"), f"old-{i}", i, "live" if i % 3 == 0 else "unknown") for i in range(1, findings + 1)))
    c.executescript("""
        INSERT INTO counters VALUES ('nhi_findings_detected_total', 'secret_type=x\x1fsource=old', 200000);
        INSERT INTO counters VALUES ('nhi_findings_closed_total', 'resolution=revoked\x1fsource=old', 3);
        INSERT INTO counters VALUES ('nhi_exposures_revoked_total', 'confirmed_by=aws', 2);
        INSERT INTO histograms VALUES ('nhi_time_to_close_seconds', 'source=old', '[1,0,2,0,0,0,0,0,0,0,0]', 1500.5, 4);
        INSERT INTO histograms VALUES ('nhi_time_to_revoke_seconds', 'confirmed_by=aws', '[0,0,0,0,0,0,0,0,0,0,1]', 7000000, 2);
    """)
    c.execute("PRAGMA user_version = 2")
    c.commit()
    c.close()


def migrated_state(db):
    c = sqlite3.connect(db, timeout=30)
    try:
        return (c.execute("PRAGMA integrity_check").fetchone()[0],
                c.execute("PRAGMA user_version").fetchone()[0],
                sorted(c.execute("SELECT name, labels, value FROM counters")),
                sorted(c.execute("SELECT event, labels, seconds, n FROM durations")),
                sorted(c.execute("SELECT event, labels, seconds FROM duration_sum_adjust")),
                c.execute("SELECT COUNT(*), COUNT(validity_at), SUM(open) FROM findings WHERE source = 'old'").fetchone(),
                sorted(c.execute("SELECT kind, t, n FROM time_counts WHERE n != 0")))
    finally:
        c.close()


def run_and_kill(cfg, delay, log):
    p = subprocess.Popen([BIN, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{free_port()}"],
                         stdout=subprocess.DEVNULL, stderr=log)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


def once(cfg):
    return subprocess.run([BIN, f"--config.file={cfg}", "--once"], capture_output=True, text=True)


def check_counters(prev, now, failures, label):
    for k, v in prev.items():
        if now.get(k, 0) < v:
            failures.append(f"{label}: counter {k} went back {v} -> {now.get(k)}")


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    kinds = os.environ.get("KINDS", "migration,old,ingest,inventory").split(",")
    share = {"migration": 1, "old": 1, "ingest": 2, "inventory": 1}
    total = sum(share[k] for k in kinds)
    n_mig, n_old, n_ing, n_inv = (trials * share[k] // total if k in kinds else 0
                                  for k in ("migration", "old", "ingest", "inventory"))
    failures, stats = [], {"migration": 0, "old": 0, "old_done_before_kill": 0, "ingest": 0, "inventory": 0,
                           "ingest_committed": 0, "inventory_committed": 0}
    work = tempfile.mkdtemp(prefix="kill9-")
    log = open(os.path.join(work, "exporter.log"), "w")

    # Migration trials: a fresh store each time.
    for t in range(n_mig):
        d = os.path.join(work, f"mig{t}")
        os.makedirs(d)
        write_reports(os.path.join(d, "reports"), 0, files=2, per=10)
        cfg = os.path.join(d, "nhi.yaml")
        with open(cfg, "w") as f:
            f.write("state: {path: state/s.db}\nsources:\n  - {name: r, type: gitleaks, interval: 1h, paths: [reports/*.json]}\n")
        run_and_kill(cfg, rng.uniform(0, 0.15), log)
        r = once(cfg)
        if r.returncode != 0:
            failures.append(f"migration trial {t}: --once after kill exits {r.returncode}: {r.stderr[-300:]}")
        ok, _, _, _ = store_state(os.path.join(d, "state/s.db"))
        if ok != "ok":
            failures.append(f"migration trial {t}: integrity {ok}")
        stats["migration"] += 1

    # Old-schema migration trials: a v2 store, killed while migrating.
    if n_old:
        ref = os.path.join(work, "old-ref")
        os.makedirs(os.path.join(ref, "state"))
        old_cfg = "state: {path: state/s.db}\nsources:\n  - {name: r, type: gitleaks, interval: 1h, paths: [reports/*.json]}\n"
        old_store(os.path.join(ref, "state/s.db"))
        with open(os.path.join(ref, "nhi.yaml"), "w") as f:
            f.write(old_cfg)
        r = once(os.path.join(ref, "nhi.yaml"))
        assert r.returncode == 0, r.stderr
        want = migrated_state(os.path.join(ref, "state/s.db"))
        assert want[0] == "ok" and want[5] == (200_000, 66_666, 200_000), want
    for t in range(n_old):
        d = os.path.join(work, f"old{t}")
        os.makedirs(os.path.join(d, "state"))
        old_store(os.path.join(d, "state/s.db"))
        cfg = os.path.join(d, "nhi.yaml")
        with open(cfg, "w") as f:
            f.write(old_cfg)
        run_and_kill(cfg, rng.uniform(0, 0.6), log)
        c = sqlite3.connect(os.path.join(d, "state/s.db"), timeout=30)
        if c.execute("PRAGMA user_version").fetchone()[0] == want[1]:  # fully migrated
            stats["old_done_before_kill"] += 1
        c.close()
        r = once(cfg)
        if r.returncode != 0:
            failures.append(f"old-schema trial {t}: --once after kill exits {r.returncode}: {r.stderr[-300:]}")
        got = migrated_state(os.path.join(d, "state/s.db"))
        if got != want:
            failures.append(f"old-schema trial {t}: migrated state differs: {got[:2]} {got[5]} vs {want[:2]} {want[5]}")
        stats["old"] += 1
        shutil.rmtree(d)

    if n_ing:
        # Ingest trials: one store, reports changing each trial.
        d = os.path.join(work, "ingest")
        cfg = os.path.join(d, "nhi.yaml")
        os.makedirs(d)
        with open(cfg, "w") as f:
            f.write("state: {path: state/s.db}\nsources:\n  - {name: r, type: gitleaks, interval: 1h, timeout: 5m, paths: [reports/*.json]}\n")
        committed = write_reports(os.path.join(d, "reports"), 0)
        r = once(cfg)
        assert r.returncode == 0, r.stderr
        _, prev_counters, open_ids, _ = store_state(os.path.join(d, "state/s.db"))
        assert open_ids == committed, "baseline"
        for t in range(n_ing):
            new = write_reports(os.path.join(d, "reports"), t + 1)
            run_and_kill(cfg, rng.uniform(0, KILL_WINDOW), log)
            ok, counters, open_ids, _ = store_state(os.path.join(d, "state/s.db"))
            if ok != "ok":
                failures.append(f"ingest trial {t}: integrity {ok}")
            check_counters(prev_counters, counters, failures, f"ingest trial {t}")
            if open_ids == new:
                stats["ingest_committed"] += 1
            elif open_ids != committed:
                failures.append(f"ingest trial {t}: open findings are neither the old ({len(committed)}) nor the new set ({len(new)}): {len(open_ids)}")
            # Bring the store to the new state for the next trial.
            r = once(cfg)
            if r.returncode != 0:
                failures.append(f"ingest trial {t}: --once after kill exits {r.returncode}")
            _, prev_counters, open_ids, _ = store_state(os.path.join(d, "state/s.db"))
            if open_ids != new:
                failures.append(f"ingest trial {t}: after a clean poll {len(open_ids)} open, expected {len(new)}")
            committed = new
            stats["ingest"] += 1

    # Inventory trials: aws source against moto.
    if n_inv:
        import boto3
        port = free_port()
        moto = subprocess.Popen([os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            endpoint = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            env = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "kill9-fake-secret",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                   "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
            os.environ.update(env)
            iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
            users = []
            for i in range(400):
                iam.create_user(UserName=f"svc-{i}")
                users.append(f"svc-{i}")
                iam.create_access_key(UserName=f"svc-{i}")
            d = os.path.join(work, "inventory")
            os.makedirs(d)
            cfg = os.path.join(d, "nhi.yaml")
            with open(cfg, "w") as f:
                f.write(f"state: {{path: state/s.db}}\nsources:\n  - {{name: aws, type: aws, interval: 1h, timeout: 5m, regions: [us-east-1], services: [iam], endpoint_url: '{endpoint}'}}\n")
            r = once(cfg)
            assert r.returncode == 0, r.stderr
            _, prev_counters, _, committed_creds = store_state(os.path.join(d, "state/s.db"))
            for t in range(n_inv):
                # Rotate 20 users' keys: 20 deleted, 20 new.
                for u in rng.sample(users, 20):
                    for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"]:
                        iam.delete_access_key(UserName=u, AccessKeyId=k["AccessKeyId"])
                    iam.create_access_key(UserName=u)
                run_and_kill(cfg, rng.uniform(0, 1.5), log)
                ok, counters, _, creds = store_state(os.path.join(d, "state/s.db"))
                if ok != "ok":
                    failures.append(f"inventory trial {t}: integrity {ok}")
                check_counters(prev_counters, counters, failures, f"inventory trial {t}")
                if creds != committed_creds:
                    stats["inventory_committed"] += 1
                r = once(cfg)
                if r.returncode != 0:
                    failures.append(f"inventory trial {t}: --once after kill exits {r.returncode}: {r.stderr[-300:]}")
                _, prev_counters, _, committed_creds = store_state(os.path.join(d, "state/s.db"))
                stats["inventory"] += 1
        finally:
            moto.kill()
    print(f"kill -9 trials: {stats['migration']} migration, {stats['old']} old-schema migration "
          f"({stats['old_done_before_kill']} finished before their kill), {stats['ingest']} ingest "
          f"({stats['ingest_committed']} killed after their commit), {stats['inventory']} inventory "
          f"({stats['inventory_committed']} killed after their commit); failures: {len(failures)}")
    for f in failures:
        print("  FAIL", f)
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("  kept for inspection:", work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

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
- inventory: an aws source against the real moto server with 400 IAM users
  and access keys, killed 0-1500 ms into its poll; the same checks, and the
  stored credentials are those of the previous or the new inventory.

Usage: scripts/kill9-trials.py [TRIALS] (default 100, split across the
three kinds). Needs target/release/nhi-exporter (cargo build --release)
and the .venv of scripts/test.sh (moto, boto3).
"""
import json, os, random, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

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
    n_mig, n_ing = trials // 4, trials // 2
    n_inv = trials - n_mig - n_ing
    failures, stats = [], {"migration": 0, "ingest": 0, "inventory": 0, "ingest_committed": 0, "inventory_committed": 0}
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
    print(f"kill -9 trials: {stats['migration']} migration, {stats['ingest']} ingest "
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

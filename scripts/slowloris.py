#!/usr/bin/env python3
"""Slowloris load against a running nhi-exporter (issue 17, item 4).

Usage: slowloris.py PID PORT [N]

Opens N (default 2000) connections that each send half a request header and
then wait; reports the connections the server holds (established on its
port), the descriptors the process uses (/proc/PID/fd), and whether a new
client gets /metrics, at +3 s and +15 s.
"""
import resource
import socket
import subprocess
import sys
import time
import urllib.request

pid, port = int(sys.argv[1]), int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))


def fds():
    try:
        return len(subprocess.os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def held():
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True,
    ).stdout
    return len([l for l in out.splitlines() if l.strip()])


def metrics():
    t = time.time()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as r:
            return f"{r.status} in {time.time() - t:.1f}s"
    except Exception as e:  # noqa: BLE001
        return f"failed after {time.time() - t:.1f}s ({type(e).__name__})"


print(f"before: fds={fds()} held={held()}")
socks = []
failed = 0
t0 = time.time()
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    except OSError:
        # The listen backlog is full: the kernel drops the SYN.
        failed += 1
print(f"opened {len(socks)} slow connections ({failed} not accepted by the kernel) in {time.time() - t0:.1f}s")
t0 = time.time()
for at in (3, 15):
    time.sleep(max(0, at - (time.time() - t0)))
    print(f"+{at}s: fds={fds()} server-held={held()} /metrics: {metrics()}")
for s in socks:
    s.close()

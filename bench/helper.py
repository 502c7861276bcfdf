#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  dburl URL DBNAME          print URL with its database replaced; refuse non-loopback hosts
  dbpassword URL            print the URL's password (empty when none)
  wait-ready                poll GET /readyz of a running hub until 200; print seconds waited
  coldstart -- CMD...       start CMD several times, time exec -> first 200 of /readyz
  load                      POST a fixed number of batches to /api/v1/events/batch
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, unquote, urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
EVENT = {"event_type": "bench.posted", "summary": "bench event", "detail": {"n": 1}}


def die(msg):
    print(f"helper.py: {msg}", file=sys.stderr)
    sys.exit(1)


def host_port(listen):
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- dburl

def cmd_dburl(a):
    u = urlsplit(a.url)
    if u.scheme not in ("postgres", "postgresql"):
        die(f"not a postgres:// URL: {a.url!r}")
    query = parse_qs(u.query)
    hosts = [u.hostname] if u.hostname else []
    hosts += query.get("host", []) + query.get("hostaddr", [])
    for h in hosts:
        for part in h.split(","):
            if part and part not in LOOPBACK and not part.startswith("/"):
                die(f"database host {part!r} is not loopback; the benchmark only runs on 127.0.0.1")
    netloc = u.netloc
    if a.no_password and u.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = userinfo.split(":", 1)[0] + "@" + hostinfo
    # built by hand: urlunsplit drops the "//" of an empty host (postgres:///db?host=/run/...)
    print(f"{u.scheme}://{netloc}/{a.dbname}" + (f"?{u.query}" if u.query else ""))


def cmd_dbpassword(a):
    u = urlsplit(a.url)
    pw = unquote(u.password) if u.password else ""
    pw = pw or parse_qs(u.query).get("password", [""])[0]
    sys.stdout.write(pw)


# ---------------------------------------------------------------- readiness

def readyz_status(host, port, path="/readyz", timeout=1.0):
    """Status code of one GET, or None when nothing answers yet."""
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
        parts = data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except OSError:
        return None
    finally:
        s.close()


def alive(pid=None, proc=None):
    if proc is not None:
        return proc.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def poll_ready(host, port, interval, deadline, pid=None, proc=None):
    """Monotonic time of the first 200, or None (process died / timed out)."""
    while True:
        if readyz_status(host, port) == 200:
            return time.perf_counter()
        if not alive(pid, proc) or time.perf_counter() > deadline:
            return None
        time.sleep(interval)


def cmd_wait_ready(a):
    host, port = host_port(a.listen)
    t0 = time.perf_counter()
    t = poll_ready(host, port, 0.02, t0 + a.timeout, pid=a.pid)
    if t is None:
        die(f"hub (pid {a.pid}) not ready on {a.listen} within {a.timeout}s "
            f"({'still running' if alive(a.pid) else 'process exited'})")
    print(f"{t - t0:.3f}")


def cmd_coldstart(a):
    host, port = host_port(a.listen)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        die("coldstart: no command")
    times = []
    log = open(a.log, "ab")
    for i in range(a.runs):
        if readyz_status(host, port) is not None:
            die(f"something already listens on {a.listen}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
        try:
            if a.pidfile:
                with open(a.pidfile, "w") as f:
                    f.write(f"{proc.pid}\n")
            t = poll_ready(host, port, a.interval, t0 + a.timeout, proc=proc)
            if t is None:
                die(f"coldstart run {i + 1}: not ready within {a.timeout}s "
                    f"(exit code {proc.poll()}); see {a.log}")
            times.append((t - t0) * 1000.0)
            print(f"  cold start {i + 1}/{a.runs}: ready after {times[-1]:.1f} ms", file=sys.stderr)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if a.pidfile:
                try:
                    os.unlink(a.pidfile)
                except OSError:
                    pass
        # let the listening socket go before the next run
        end = time.perf_counter() + 5
        while readyz_status(host, port) is not None and time.perf_counter() < end:
            time.sleep(0.05)
        time.sleep(0.2)
    print(json.dumps({
        "runs_ms": [round(t, 2) for t in times],
        "min_ms": round(min(times), 2),
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
    }))


# ---------------------------------------------------------------- batch load

def cmd_load(a):
    host, port = host_port(a.listen)
    with open(a.token_file) as f:
        token = f.read().strip()
    body = json.dumps({"events": [EVENT] * a.batch_size}, separators=(",", ":")).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    lock = threading.Lock()
    state = {"todo": a.batches, "ok": 0, "failed": 0, "statuses": {}, "first_error": None}
    stop = threading.Event()
    max_failed = max(10, a.batches // 100)

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
        while not stop.is_set():
            with lock:
                if state["todo"] == 0:
                    break
                state["todo"] -= 1
            try:
                conn.request("POST", "/api/v1/events/batch", body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
                status, text = 0, str(e).encode()
            with lock:
                key = str(status)
                state["statuses"][key] = state["statuses"].get(key, 0) + 1
                if status == 201:
                    state["ok"] += 1
                    done = state["ok"]
                    if a.progress and done % max(1, a.batches // 10) == 0:
                        print(f"  loaded {done * a.batch_size} events", file=sys.stderr)
                else:
                    state["failed"] += 1
                    if state["first_error"] is None:
                        state["first_error"] = f"{status}: {text[:300].decode(errors='replace')}"
                    if state["failed"] >= max_failed:
                        stop.set()
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        stop.set()
        die("load interrupted")
    secs = time.perf_counter() - t0
    events = state["ok"] * a.batch_size
    print(json.dumps({
        "batches_ok": state["ok"],
        "batches_failed": state["failed"],
        "statuses": state["statuses"],
        "first_error": state["first_error"],
        "events": events,
        "seconds": round(secs, 3),
        "events_per_s": round(events / secs, 1) if secs > 0 else 0,
    }))
    if stop.is_set():
        sys.exit(2)


def metrics(host, port):
    """The hub's /metrics as {name: value} (unlabelled series only), or None."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode(errors="replace")
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def cmd_fanout_wait(a):
    """Polls /metrics every 10 ms until fanout_cursor_seq reaches --target; prints the seconds
    since --since (a Unix time) and the publish rate over that span."""
    host, port = host_port(a.listen)
    deadline = time.time() + a.timeout
    last = None
    while time.time() < deadline:
        m = metrics(host, port)
        if m is not None:
            last = m.get("fanout_cursor_seq")
            if last is not None and last >= a.target:
                secs = time.time() - a.since
                print(json.dumps({
                    "seconds": round(secs, 3),
                    "events_per_s": round(a.events / secs, 1) if secs > 0 else 0,
                    "published_total": m.get("fanout_published_total"),
                    "failures_total": m.get("fanout_failures_total"),
                }))
                return
        time.sleep(0.01)
    die(f"fan-out cursor {last} did not reach {a.target} within {a.timeout}s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)

    s = sub.add_parser("dburl")
    s.add_argument("url")
    s.add_argument("dbname")
    s.add_argument("--no-password", action="store_true", help="drop the password from the URL")
    s.set_defaults(fn=cmd_dburl)

    s = sub.add_parser("dbpassword")
    s.add_argument("url")
    s.set_defaults(fn=cmd_dbpassword)

    s = sub.add_parser("wait-ready")
    s.add_argument("--listen", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--timeout", type=float, default=120)
    s.set_defaults(fn=cmd_wait_ready)

    s = sub.add_parser("coldstart")
    s.add_argument("--listen", required=True)
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--interval", type=float, default=0.001, help="poll interval, seconds")
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--log", required=True)
    s.add_argument("--pidfile")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_coldstart)

    s = sub.add_parser("load")
    s.add_argument("--listen", required=True)
    s.add_argument("--token-file", required=True)
    s.add_argument("--batches", type=int, required=True)
    s.add_argument("--batch-size", type=int, default=1000)
    s.add_argument("--concurrency", type=int, default=4)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--progress", action="store_true")
    s.set_defaults(fn=cmd_load)

    s = sub.add_parser("fanout-wait")
    s.add_argument("--listen", required=True)
    s.add_argument("--target", type=int, required=True, help="journal seq the cursor must reach")
    s.add_argument("--events", type=int, required=True, help="events the span covers, for the rate")
    s.add_argument("--since", type=float, required=True, help="Unix time the span starts at")
    s.add_argument("--timeout", type=float, default=300)
    s.set_defaults(fn=cmd_fanout_wait)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()

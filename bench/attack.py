#!/usr/bin/env python3
"""Attack and soak benchmark of `serve` (stdlib only): what hostile clients cost it.

    python3 bench/attack.py SERVE_BINARY MODEL_ROOT FEATURE_ROWS.csv [--minutes M]

MODEL_ROOT is a SageMaker root holding model/ (SAGEMAKER_BASE_DIR); FEATURE_ROWS.csv holds
headerless feature rows (no label) for that model. Every server runs on 127.0.0.1 only.

  memory   one fresh batch-mode server per body (about 99 MiB of CSV, JSON, JSON with zeros,
           JSON Lines, blank lines): status, and peak RSS (VmHWM) against the body size
  stalled  2,000 stalled clients (half inside their headers, half after 10 body bytes), then
           200 single-record requests from a normal client: success rate, p50, p99; and how long
           until every stalled connection was closed
  soak     capacity measured with a closed loop, then M minutes of open-loop load at twice that
           plus a normal client sending one single-record request every 100 ms: statuses,
           the normal client's success rate and p99, and RSS every 30 s
"""

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, root, **env):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        full = dict(os.environ, SAGEMAKER_BASE_DIR=root, SAGEMAKER_BIND_TO_PORT=str(self.port),
                    **{k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([binary, "serve"], env=full, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.request("GET", "/ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("serve never became ready")

    def status(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # MiB
        return 0.0

    def request(self, method, path, body=None, content_type="text/csv", timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers={"Content-Type": content_type})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rows_to(rows, target_bytes):
    """Repeats rows until their CSV reaches target_bytes."""
    out, size = [], 0
    while size < target_bytes:
        for r in rows:
            out.append(r)
            size += len(r) + 1
            if size >= target_bytes:
                break
    return out


def memory(binary, root, rows):
    print("== memory: one batch-mode server per body (SAGEMAKER_BATCH=true, 100 MiB limit)")
    target = 99 * MIB
    many = rows_to(rows, int(target * 0.95))
    zeros = ",".join(["0"] * len(rows[0].split(",")))
    bodies = [
        ("CSV", "text/csv", ("\n".join(many) + "\n").encode()),
        ("JSON instances", "application/json",
         ('{"instances": [' + ",".join("[%s]" % r for r in rows_to(rows, int(target * 0.93))) + "]}").encode()),
        ("JSON instances, zeros", "application/json",
         ('{"instances": [' + ",".join(["[%s]" % zeros] * (target // (len(zeros) + 3))) + "]}").encode()),
        ("JSON, one huge record", "application/json",
         ('{"instances": [[' + ",".join(["0"] * (target // 2 - 32)) + "]]}").encode()),
        ("CSV, zeros", "text/csv",
         (("\n".join([zeros] * (target // (len(zeros) + 1)))) + "\n").encode()),
        ("JSON Lines, one huge line", "application/jsonlines",
         ("[" + ",".join(["0"] * (target // 2 - 32)) + "]\n").encode()),
        ("JSON Lines", "application/jsonlines",
         ("\n".join("[%s]" % r for r in rows_to(rows, int(target * 0.93))) + "\n").encode()),
        ("blank lines", "text/csv", (rows[0] + "\n").encode() + b"\n" * (100 * MIB - len(rows[0]) - 2)),
    ]
    print("%-24s %7s %9s %10s %10s %7s" % ("body", "status", "body MiB", "idle MiB", "peak MiB", "peak/body"))
    for name, content_type, body in bodies:
        s = Server(binary, root, SAGEMAKER_BATCH="true")
        try:
            idle = s.status("VmHWM")
            status, _ = s.request("POST", "/invocations", body, content_type)
            peak = s.status("VmHWM")
            alive = s.request("GET", "/ping")[0] == 200
            print("%-24s %7d %9.1f %10.1f %10.1f %6.2fx%s" % (
                name, status, len(body) / MIB, idle, peak, peak * MIB / len(body),
                "" if alive else "  (server not answering /ping!)"))
        finally:
            s.stop()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def stalled(binary, root, single):
    print("== stalled: 2,000 stalled clients, then a normal client (SERVE_READ_TIMEOUT_SECS=10)")
    s = Server(binary, root)
    socks = []
    try:
        for i in range(2000):
            c = socket.create_connection(("127.0.0.1", s.port))
            if i % 2:
                c.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                          b"Content-Length: 1000000\r\n\r\n1,2,3,4,5,")
            else:
                c.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Ty")
            socks.append(c)
        opened = time.time()
        latencies, ok = [], 0
        for _ in range(200):
            t0 = time.perf_counter()
            status, _ = s.request("POST", "/invocations", single, timeout=10)
            latencies.append((time.perf_counter() - t0) * 1000)
            ok += status == 200
        print("normal client with 2,000 stalled connections: %d/200 answered 200, p50 %.2f ms, p99 %.2f ms"
              % (ok, percentile(latencies, 0.5), percentile(latencies, 0.99)))
        for c in socks:
            c.settimeout(60)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
        print("every stalled connection closed %.1f s after they were opened (read timeout 10 s), RSS %.1f MiB"
              % (time.time() - opened, s.status("VmRSS")))
    finally:
        for c in socks:
            c.close()
        s.stop()


def soak(binary, root, rows, single, minutes):
    print("== soak: %g minutes at twice capacity, plus a normal client" % minutes)
    s = Server(binary, root)
    body = ("\n".join(rows_to(rows, 256 * 1024)) + "\n").encode()  # about 1,700 rows
    stop = threading.Event()
    lock = threading.Lock()
    counts = {}

    def closed_loop():
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        while not stop.is_set():
            c.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
            r = c.getresponse()
            r.read()
            with lock:
                counts[r.status] = counts.get(r.status, 0) + 1

    threads = [threading.Thread(target=closed_loop) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(10)
    stop.set()
    for t in threads:
        t.join()
    capacity = sum(counts.values()) / 10
    rate = 2 * capacity
    print("capacity (closed loop, 4 connections, %d-byte CSV bodies): %.0f requests/s; offering %.0f/s"
          % (len(body), capacity, rate))

    counts.clear()
    stop.clear()
    normal = {"ok": 0, "all": 0, "latencies": []}
    end = time.time() + minutes * 60
    interval = 1.0 / rate
    workers = 48
    next_slot = [time.time()]

    def open_loop():
        c = None
        while time.time() < end:
            with lock:
                slot = next_slot[0]
                next_slot[0] += interval
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
                c.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
                r = c.getresponse()
                r.read()
                status = r.status
            except OSError as e:
                status = type(e).__name__
                c = None
            with lock:
                counts[status] = counts.get(status, 0) + 1

    def normal_client():
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                status, _ = s.request("POST", "/invocations", single, timeout=10)
            except OSError:
                status = 0
            normal["all"] += 1
            normal["ok"] += status == 200
            normal["latencies"].append((time.perf_counter() - t0) * 1000)
            time.sleep(0.1)

    threads = [threading.Thread(target=open_loop) for _ in range(workers)]
    threads.append(threading.Thread(target=normal_client))
    for t in threads:
        t.start()
    start = time.time()
    print("%8s %10s %12s" % ("elapsed", "RSS MiB", "requests"))
    while time.time() < end:
        time.sleep(min(30, max(0, end - time.time())))
        with lock:
            done = sum(counts.values())
        print("%7.0fs %10.1f %12d" % (time.time() - start, s.status("VmRSS"), done))
    for t in threads:
        t.join()
    print("statuses:", dict(sorted((str(k), v) for k, v in counts.items())))
    errors = {k: v for k, v in counts.items() if k != 200 and k != 503}
    print("5xx other than 503, or connection errors: %s" % (errors or "none"))
    lat = normal["latencies"]
    print("normal client: %d/%d answered 200, p50 %.2f ms, p99 %.2f ms"
          % (normal["ok"], normal["all"], percentile(lat, 0.5), percentile(lat, 0.99)))
    s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("serve")
    p.add_argument("root")
    p.add_argument("rows")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--only", choices=["memory", "stalled", "soak"])
    a = p.parse_args()
    with open(a.rows) as f:
        rows = [line.strip() for line in f if line.strip()]
    single = (rows[0] + "\n").encode()
    if a.only in (None, "memory"):
        memory(a.serve, a.root, rows)
    if a.only in (None, "stalled"):
        stalled(a.serve, a.root, single)
    if a.only in (None, "soak"):
        soak(a.serve, a.root, rows, single, a.minutes)


if __name__ == "__main__":
    sys.exit(main())

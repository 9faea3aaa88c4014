#!/usr/bin/env python3
"""Cold start of `serve`: time from process start to the first 200 on /ping, median of 5 runs.
usage: cold_start.py SERVE_BINARY SAGEMAKER_BASE_DIR PORT"""
import os, socket, statistics, subprocess, sys, time

binary, base, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def ping():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

times = []
for _ in range(5):
    env = dict(os.environ, SAGEMAKER_BASE_DIR=base, SAGEMAKER_BIND_TO_PORT=str(port))
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stderr=subprocess.DEVNULL)
    while not ping():
        if time.perf_counter() - t0 > 30:
            sys.exit("no 200 within 30 s")
    times.append((time.perf_counter() - t0) * 1000)
    p.terminate()
    p.wait()
print(f"cold start: median {statistics.median(times):.1f} ms (runs: {', '.join(f'{t:.1f}' for t in times)}; bar: <= 100 ms)")

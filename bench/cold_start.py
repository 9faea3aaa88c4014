#!/usr/bin/env python3
"""Start to the first 200 on /ping, median of RUNS (default 5):
  cold_start.py SERVE_BINARY SAGEMAKER_BASE_DIR PORT [RUNS]   process start (bar: <= 100 ms)
  cold_start.py --docker IMAGE MODEL_DIR PORT [RUNS]          `docker run -d` issued, model mounted
                                                              read-only, read-only root (goal: <= 1 s)"""
import os, socket, statistics, subprocess, sys, time

docker = sys.argv[1] == "--docker"
args = sys.argv[2:] if docker else sys.argv[1:]
target, base, port = args[0], args[1], int(args[2])
runs = int(args[3]) if len(args) > 3 else 5


def ping():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start():
    """Starts the server; returns the function that stops it."""
    if docker:
        cid = subprocess.run(
            ["docker", "run", "-d", "--read-only", "--tmpfs", "/tmp", "-p", f"127.0.0.1:{port}:8080",
             "-v", f"{base}:/opt/ml/model:ro", target, "serve"],
            check=True, capture_output=True, text=True).stdout.strip()
        return lambda: subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    env = dict(os.environ, SAGEMAKER_BASE_DIR=base, SAGEMAKER_BIND_TO_PORT=str(port))
    p = subprocess.Popen([target], env=env, stderr=subprocess.DEVNULL)
    return lambda: (p.terminate(), p.wait())


times = []
for _ in range(runs):
    t0 = time.perf_counter()
    stop = start()
    while not ping():
        if time.perf_counter() - t0 > 30:
            stop()
            sys.exit("no 200 within 30 s")
        time.sleep(0.001)
    times.append((time.perf_counter() - t0) * 1000)
    stop()
what, goal = ("container start", "<= 1000 ms") if docker else ("cold start", "<= 100 ms")
print(f"{what} to first 200 on /ping: median {statistics.median(times):.1f} ms "
      f"(runs: {', '.join(f'{t:.1f}' for t in times)}; goal: {goal})")

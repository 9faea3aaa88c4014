#!/usr/bin/env python3
"""What SageMaker batch transform does with a file, for benchmarks: split it by line into
payloads of at most MAX_MB MiB, POST them to /invocations with MaxConcurrentTransforms requests
at once (from /execution-parameters), check one output line per input line, report rows/s.
usage: batch_client.py FILE.csv PORT MAX_MB [CONCURRENCY]   (default: MaxConcurrentTransforms)"""
import concurrent.futures, http.client, json, sys, time

path, port, max_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = max_mb * 1024 * 1024

def payloads():
    chunk, size = [], 0
    with open(path, "rb") as f:
        for line in f:
            if size + len(line) > limit and chunk:
                yield b"".join(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
    if chunk:
        yield b"".join(chunk)

def post(body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"})
    r = c.getresponse()
    out = r.read()
    if r.status != 200:
        raise SystemExit(f"status {r.status}: {out[:200]!r}")
    if out.count(b"\n") != body.count(b"\n"):
        raise SystemExit("output lines do not match input lines")
    return body.count(b"\n")

c = http.client.HTTPConnection("127.0.0.1", port)
c.request("GET", "/execution-parameters")
mct = json.loads(c.getresponse().read())["MaxConcurrentTransforms"]
if len(sys.argv) > 4:
    mct = int(sys.argv[4])
bodies = list(payloads())
t0, cpu0 = time.perf_counter(), time.process_time()
with concurrent.futures.ThreadPoolExecutor(mct) as pool:
    rows = sum(pool.map(post, bodies))
secs, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
largest = max(len(b) for b in bodies) / 2**20
print(f"batch: {rows} rows in {len(bodies)} payloads (largest {largest:.2f} MiB), {mct} concurrent: {secs:.2f} s, {rows / secs:,.0f} rows/s (bar: >= 300,000); this client's own CPU {client_cpu:.2f} s")

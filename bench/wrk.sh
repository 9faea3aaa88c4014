# Sourced by the HTTP benchmarks after $work and $duration are set:
#   post_body FILE CONTENT_TYPE  writes $work/post.lua: every request POSTs FILE with that type
#   wait_ready PORT     waits up to 30 s for /ping to answer 200
#   run_wrk NAME PORT   64 connections for requests/s, then 1 connection for p50/p99; prints one
#                       line and leaves the requests/s in "$work/NAME.rps"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
post_body() {
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "$2"
local f = io.open("$1")
wrk.body = f:read("*a")
f:close()
LUA
}
wait_ready() { for _ in $(seq 300); do curl -sf "localhost:$1/ping" >/dev/null && return 0; sleep 0.1; done; echo "server on $1 not ready"; exit 1; }
run_wrk() {
  local name=$1 port=$2
  wrk -t2 -c64 -d"${duration}s" -s "$work/post.lua" "http://127.0.0.1:$port/invocations" > "$work/$name.c64"
  wrk -t1 -c1 -d"${duration}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/invocations" > "$work/$name.c1"
  local rps errors p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.c64")
  errors=$(grep -E "Non-2xx|Socket errors" "$work/$name.c64" | tr '\n' ' ' || true)
  p50=$(awk '$1=="50%" {print $2}' "$work/$name.c1")
  p99=$(awk '$1=="99%" {print $2}' "$work/$name.c1")
  printf '%-26s 64 conn: %10s req/s %s | 1 conn: p50 %8s  p99 %8s\n' "$name" "$rps" "${errors:-no errors}" "$p50" "$p99"
  echo "$rps" > "$work/$name.rps"
}

#!/usr/bin/env bash
# Load comparison: portcullis against nginx and HAProxy with equivalent rules (a
# 10,000-CIDR blocklist, 200 path-prefix deny rules, everything else forwarded), in
# front of the same upstream, driven by wrk in interleaved rounds, with the upstream
# alone as the ceiling. Same CPU budget for every proxy: 1 worker (pinned to CPU 1,
# wrk and the upstream on CPU 0) and 2 workers (everything shares both CPUs).
# Then memory: RSS idle with a 100,000-CIDR blocklist, and with 10,000 idle
# keep-alive connections.
#
#   benches/load.sh                 # full run (a few minutes)
#   ROUNDS=1 DURATION=5 benches/load.sh   # quicker
#
# Loopback only. Installs nginx, haproxy and wrk from Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
WORK=target/load-bench
UPSTREAM_PORT=18080
declare -A PORT=([nginx]=18081 [haproxy]=18082 [portcullis]=18083)

need=()
for tool in nginx haproxy wrk; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
BIN=$PWD/target/release/portcullis

rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(realpath "$WORK")
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 benches/load/make_rules.py "$WORK" 10000 200
python3 benches/load/make_rules.py "$WORK/big" 100000 200

start_upstream() {
  cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 "ok\n"; } }
}
CONF
  taskset -c 0 nginx -c "$WORK/upstream.conf" -g 'daemon off;' >"$WORK/upstream.out" 2>&1 &
  PIDS+=($!)
}

# $1 = proxy, $2 = workers, $3 = rules folder
write_config() {
  local proxy=$1 workers=$2 rules=$3 port=${PORT[$1]}
  case $proxy in
    nginx) cat > "$WORK/nginx.conf" <<CONF
worker_processes $workers;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  geo \$blocked { default 0; include $rules/blocklist-nginx.conf; }
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$port;
    if (\$blocked) { return 403; }
    include $rules/paths-nginx.conf;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
    ;;
    haproxy) cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread $workers
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend main
  bind 127.0.0.1:$port
  acl blocked src -f $rules/blocklist.txt
  acl blocked_path path_beg -f $rules/paths-haproxy.txt
  http-request deny deny_status 403 if blocked || blocked_path
  option forwardfor
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:$UPSTREAM_PORT maxconn 256
CONF
    ;;
    portcullis) cat > "$WORK/portcullis.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
workers = $workers
max_connections = 20000
[log]
access_log = false
[policy]
default = "allow"
[[rule]]
name = "blocklist"
ip_file = "$rules/blocklist.txt"
action = "deny"
CONF
      cat "$rules/paths-portcullis.toml" >> "$WORK/portcullis.toml"
    ;;
  esac
}

# $1 = proxy, $2 = cpu list; sets PROXY_PID
start_proxy() {
  local proxy=$1 cpus=$2
  case $proxy in
    nginx) taskset -c "$cpus" nginx -c "$WORK/nginx.conf" -g 'daemon off;' >"$WORK/nginx.out" 2>&1 & ;;
    haproxy) taskset -c "$cpus" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 & ;;
    portcullis) RUST_LOG=warn taskset -c "$cpus" "$BIN" -c "$WORK/portcullis.toml" >"$WORK/portcullis.out" 2>&1 & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:${PORT[$proxy]}/" && return 0
    sleep 0.05
  done
  echo "$proxy did not start; see $WORK/$proxy.out" >&2
  exit 1
}

# Every proxy must allow and deny the same sample requests.
check_agreement() {
  local proxy=$1 port=${PORT[$1]} got
  for probe in "200 /" "200 /api/v1/items/42" "403 /blocked-7/x" "403 /blocked-199/" "200 /blocked-200/x"; do
    set -- $probe
    got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$2")
    [ "$got" = "$1" ] || { echo "$proxy answered $got for $2, expected $1" >&2; exit 1; }
  done
  got=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "http://127.0.0.1:$port/")
  [ "$got" = 403 ] || { echo "$proxy answered $got for a blocklisted client" >&2; exit 1; }
}

# $1 = label, $2 = port, $3 = wrk cpus, $4 = path
run_wrk() {
  taskset -c "$3" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$2$4" > "$WORK/wrk.out"
  python3 benches/load/parse_wrk.py "$1" < "$WORK/wrk.out" >> "$WORK/results.tsv"
}

rss_kib() { # sum of VmRSS over a pid and its children
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
  done
  echo "$total"
}

start_upstream
sleep 0.3
: > "$WORK/results.tsv"
for workers in 1 2; do
  if [ "$workers" = 1 ]; then proxy_cpus=1; client_cpus=0; else proxy_cpus=0,1; client_cpus=0,1; fi
  for round in $(seq "$ROUNDS"); do
    for target in upstream nginx haproxy portcullis; do
      for path in /api/v1/items/42 /blocked-7/x; do
        [ "$target" = upstream ] && [ "$path" != /api/v1/items/42 ] && continue
        if [ "$target" = upstream ]; then
          run_wrk "workers=$workers|upstream|forwarded" "$UPSTREAM_PORT" "$client_cpus" "$path"
          continue
        fi
        write_config "$target" "$workers" "$WORK"
        start_proxy "$target" "$proxy_cpus"
        check_agreement "$target"
        kind=forwarded; [ "$path" = /blocked-7/x ] && kind=denied
        run_wrk "workers=$workers|$target|$kind" "${PORT[$target]}" "$client_cpus" "$path"
        kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
      done
    done
  done
done

echo
python3 benches/load/report.py "$WORK/results.tsv"

echo
echo "memory (RSS, KiB): idle with a 100,000-CIDR blocklist; with $IDLE_CONNECTIONS idle keep-alive connections"
for target in nginx portcullis; do
  write_config "$target" 1 "$WORK/big"
  start_proxy "$target" 1
  pid=$PROXY_PID
  sleep 0.5
  idle=$(rss_kib "$pid")
  python3 benches/load/hold_connections.py 127.0.0.1 "${PORT[$target]}" "$IDLE_CONNECTIONS" "$WORK/held.ready" >"$WORK/holder.out" 2>&1 &
  holder=$!
  while [ ! -e "$WORK/held.ready" ]; do sleep 0.2; done
  sleep 1
  held=$(rss_kib "$pid")
  rm -f "$WORK/held.ready"
  kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true
  printf '  %-11s idle %8s   with %s connections %8s\n' "$target" "$idle" "$IDLE_CONNECTIONS" "$held"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo
echo "$(nproc) CPUs, $(date -u +%Y-%m-%d), $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), rounds=$ROUNDS duration=${DURATION}s connections=$CONNECTIONS"

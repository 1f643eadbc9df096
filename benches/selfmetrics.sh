#!/usr/bin/env bash
# The cost of the collector's own metrics: forwarding CPU per span of two wasmcol binaries on
# the same load, in one run (written for the move of the self-metrics onto the OpenTelemetry
# SDK: BEFORE is a build without it, AFTER one with it):
#   benches/selfmetrics.sh BEFORE_WASMCOL AFTER_WASMCOL [BIN_DIR]
# BIN_DIR (default target/release) holds loadgen and sink. The pipeline is
# otlp → memory_limiter → batch → otlp (sending queue; PROCESSORS overrides the list) at
# metrics level normal, with the Prometheus endpoint scraped every second during the load,
# so every per-request counter and histogram is live. Each binary runs ROUNDS times (default 2), alternating, the same load
# each time (loadgen, 200 spans per request, CONCURRENCY in flight, DURATION s); the
# collector's CPU time is read from /proc. Prints CPU-seconds per million spans per run, the
# mean per binary and AFTER / BEFORE. Loopback only.
set -euo pipefail
BEFORE=$1
AFTER=$2
BIN=${3:-target/release}
CONCURRENCY=${CONCURRENCY:-4}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
# shellcheck source=benches/common.sh
source "$(dirname "$0")/common.sh"

start_sink 1

cat >"$work/config.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 4000
  batch: {}
exporters:
  otlp/out:
    endpoint: ${SINK_GRPC[1]}
    tls: {insecure: true}
service:
  telemetry:
    metrics:
      level: normal
  pipelines:
    traces:
      receivers: [otlp]
      processors: [${PROCESSORS:-memory_limiter, batch}]
      exporters: [otlp/out]
YAML

run() { # label binary
    local label=$1
    cp "$work/config.yaml" "$work/$label.yaml"
    start_collector "$2" "$work/$label.yaml"
    local pid=$COLLECTOR_PID
    # A scraper, as Prometheus would be, for as long as the collector runs.
    ( while kill -0 "$pid" 2>/dev/null; do curl -s "http://$COLLECTOR_METRICS/metrics" >/dev/null || true; sleep 1; done ) &
    pids+=($!)
    local before_spans before_cpu after_cpu after_spans
    before_spans=$(sink_count 1)
    before_cpu=$(cpu "$pid")
    "$BIN/loadgen" --endpoint "http://$COLLECTOR_GRPC" --concurrency "$CONCURRENCY" --spans 200 \
        --warmup "$WARMUP" --duration "$DURATION" >"$work/$label.load"
    # Let the queue drain into the sink before reading the CPU time.
    drain 1
    after_cpu=$(cpu "$pid")
    after_spans=$(sink_count 1)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$label" "$((after_spans - before_spans))" "$before_cpu" "$after_cpu" "$(cat "$work/$label.load")" <<'PY'
import sys
label, spans, c0, c1, load = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"{label}: delivered={spans} cpu_s={c1 - c0:.2f} cpu_s_per_M_spans={(c1 - c0) / max(spans, 1) * 1e6:.2f} | loadgen {load}")
PY
}

lines=()
for r in $(seq "$ROUNDS"); do
    lines+=("$(run "before#$r" "$BEFORE")")
    echo "${lines[-1]}"
    lines+=("$(run "after#$r" "$AFTER")")
    echo "${lines[-1]}"
done
python3 - "${lines[@]}" <<'PY'
import sys, re, statistics
per = {"before": [], "after": []}
for l in sys.argv[1:]:
    per[l.split("#")[0]].append(float(re.search(r"cpu_s_per_M_spans=([0-9.]+)", l).group(1)))
b, a = statistics.mean(per["before"]), statistics.mean(per["after"])
print(f"mean CPU-s per million spans: before {b:.2f}, after {a:.2f}; after / before: {a / b:.3f}x")
PY

#!/usr/bin/env bash
# load_balancing forwarding cost against plain otlp forwarding, in one run:
#   benches/lb.sh [BIN_DIR]      (default target/release; needs wasmcol, loadgen, sink)
# Three counting sinks; the collector forwards either to one of them with `otlp` or over all
# three with `load_balancing` (traceID, static resolver). The same load (loadgen, 200 spans
# per request, CONCURRENCY in flight, DURATION s) goes through each; the collector's CPU time
# is read from /proc before and after. Prints spans/s and CPU-seconds per million spans for
# both and their ratio. Loopback only.
set -euo pipefail
BIN=${1:-target/release}
CONCURRENCY=${CONCURRENCY:-4}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
# shellcheck source=benches/common.sh
source "$(dirname "$0")/common.sh"

for i in 1 2 3; do start_sink "$i"; done
sinks=("${SINK_GRPC[1]}" "${SINK_GRPC[2]}" "${SINK_GRPC[3]}")
count() { sink_count 1 2 3; } # total spans over all sinks

run() { # name exporter-yaml
    local name=$1 exporter=$2
    cat >"$work/$name.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
$exporter
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [$name/out]
YAML
    start_collector "$BIN/wasmcol" "$work/$name.yaml"
    local pid=$COLLECTOR_PID
    local before_spans before_cpu after_cpu after_spans
    before_spans=$(count)
    before_cpu=$(cpu "$pid")
    "$BIN/loadgen" --endpoint "http://$COLLECTOR_GRPC" --concurrency "$CONCURRENCY" --spans 200 \
        --warmup "$WARMUP" --duration "$DURATION" >"$work/$name.load"
    # Let the queue drain into the sinks before reading the CPU time.
    drain 1 2 3
    after_cpu=$(cpu "$pid")
    after_spans=$(count)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local spans=$((after_spans - before_spans))
    python3 - "$name" "$spans" "$before_cpu" "$after_cpu" "$(cat "$work/$name.load")" <<'PY'
import sys
name, spans, c0, c1, load = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
cpu = c1 - c0
print(f"{name}: delivered={spans} cpu_s={cpu:.2f} cpu_s_per_M_spans={cpu / max(spans, 1) * 1e6:.2f} | loadgen {load}")
PY
}

plain=$(run otlp "  otlp/out:
    endpoint: ${sinks[0]}
    tls: {insecure: true}")
lb=$(run load_balancing "  load_balancing/out:
    protocol:
      otlp:
        tls: {insecure: true}
    resolver:
      static:
        hostnames: [${sinks[0]}, ${sinks[1]}, ${sinks[2]}]")
echo "$plain"
echo "$lb"
python3 - "$plain" "$lb" <<'PY'
import sys, re
per = [float(re.search(r"cpu_s_per_M_spans=([0-9.]+)", l).group(1)) for l in sys.argv[1:]]
print(f"load_balancing / otlp CPU per span: {per[1] / per[0]:.2f}x")
PY

#!/usr/bin/env bash
# Backend-outage campaign: a long outage compressed into the disk budget. With the backend
# down, load runs until the persistent queue's storage cap is reached (the collector then
# answers 503); the backend comes back and the queue drains while no new load arrives.
#
# Checks: every acknowledged span reaches the sink after recovery; the collector refuses
# (retryably) rather than losing once the budget is full. Figures: ingest rate while the
# backend was down, drain rate after it returned, and their ratio (the drain must outrun
# ingest or an outage never ends).
#
# Binaries default to target/release; override with WASMCOL, LOADGEN, SINK. Budget and load
# with CAP_MIB (default 512) and LOAD_SECS (default 60).
#
#   cargo build --release -p wasmcol -p wasmcol-benches
#   benches/campaigns/outage.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WASMCOL=${WASMCOL:-$ROOT/target/release/wasmcol}
LOADGEN=${LOADGEN:-$ROOT/target/release/loadgen}
SINK=${SINK:-$ROOT/target/release/sink}
CAP_MIB=${CAP_MIB:-512}
LOAD_SECS=${LOAD_SECS:-60}
RECV=${RECV:-127.0.0.1:25317}
SINK_GRPC=${SINK_GRPC:-127.0.0.1:25318}
SINK_HTTP=${SINK_HTTP:-127.0.0.1:25319}
METRICS=${METRICS:-127.0.0.1:25388}

WORK=$(mktemp -d /tmp/outage.XXXXXX)
COL_PID= SINK_PID=
cleanup() {
  [ -n "$COL_PID" ] && kill "$COL_PID" 2>/dev/null && wait "$COL_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null || true
}
trap cleanup EXIT

cat > "$WORK/config.yaml" <<YAML
extensions:
  file_storage:
    directory: $WORK/storage
    create_directory: true
    max_size_mib: $CAP_MIB
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $RECV
exporters:
  otlp:
    endpoint: $SINK_GRPC
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
      queue_size: 1000000
      num_consumers: 10
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      address: $METRICS
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
YAML

"$WASMCOL" --config "$WORK/config.yaml" >"$WORK/collector.log" 2>&1 &
COL_PID=$!
for _ in $(seq 100); do
  grep -q "Everything is ready" "$WORK/collector.log" 2>/dev/null && break
  sleep 0.1
done

echo "phase 1: backend down, ${LOAD_SECS}s of load into a ${CAP_MIB} MiB budget"
out=$("$LOADGEN" --endpoint "http://$RECV" --concurrency 8 --spans 200 --warmup 0 --duration "$LOAD_SECS")
ok=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
err=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out")
acked=$((ok * 200))
disk=$(du -sm "$WORK/storage" | cut -f1)
ingest=$(echo "$acked / $LOAD_SECS" | bc)
echo "figure: outage: acknowledged_spans=$acked refused_requests=$err storage_mib=$disk ingest_spans_per_s=$ingest"

echo "phase 2: backend up, drain"
"$SINK" --grpc "$SINK_GRPC" --http "$SINK_HTTP" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
t0=$(date +%s.%N)
got=0
for _ in $(seq 3600); do
  got=$(curl -s "http://$SINK_HTTP/count" || echo 0)
  [ "${got:-0}" -ge "$acked" ] && break
  sleep 0.25
done
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
drain=$(echo "$got / $secs" | bc)
echo "figure: drain: delivered_spans=$got seconds=$secs drain_spans_per_s=$drain drain_vs_ingest=$(echo "scale=2; $drain / $ingest" | bc)"
echo "figure: budget_filled=$([ "$err" -gt 0 ] && echo yes || echo no) (with refusals the ingest rate counts time spent refused; size CAP_MIB above LOAD_SECS x ingest to measure the rate alone)"
[ "$got" -ge "$acked" ] && echo "RESULT: pass" ||
  { echo "RESULT: FAIL (log: $WORK/collector.log)"; exit 1; }

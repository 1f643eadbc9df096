#!/usr/bin/env bash
# Disk-full fault campaign: a persistent sending queue on a small tmpfs fills up under load
# while the backend is down; then space is freed and the backend comes back.
#
# Checks: requests are refused (UNAVAILABLE) while the disk is full; once space is freed the
# same process accepts requests again (no restart); every acknowledged span reaches the sink;
# a restart on the same directory finds nothing corrupt (no quarantined record, no database
# moved aside).
#
# Needs root (mounts a tmpfs). Binaries default to target/release; override with WASMCOL,
# LOADGEN, SINK (e.g. WASMCOL=target/debug/wasmcol). Prints one `figure:` line per result.
#
#   cargo build --release -p wasmcol -p wasmcol-benches
#   sudo benches/campaigns/disk_full.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WASMCOL=${WASMCOL:-$ROOT/target/release/wasmcol}
LOADGEN=${LOADGEN:-$ROOT/target/release/loadgen}
SINK=${SINK:-$ROOT/target/release/sink}
FS_MIB=${FS_MIB:-64}          # tmpfs size
FILLER_MIB=${FILLER_MIB:-40}  # taken by another "tenant" at first, freed in phase 2
LOAD_SECS=${LOAD_SECS:-20}
RECV=${RECV:-127.0.0.1:24317}
SINK_GRPC=${SINK_GRPC:-127.0.0.1:24318}
SINK_HTTP=${SINK_HTTP:-127.0.0.1:24319}
METRICS=${METRICS:-127.0.0.1:24388}

WORK=$(mktemp -d /tmp/disk_full.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
COL_PID= SINK_PID=
cleanup() {
  [ -n "$COL_PID" ] && kill "$COL_PID" 2>/dev/null && wait "$COL_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null || true
  umount "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

mount -t tmpfs -o size=${FS_MIB}m tmpfs "$MNT"
dd if=/dev/zero of="$MNT/filler" bs=1M count="$FILLER_MIB" status=none

cat > "$WORK/config.yaml" <<YAML
extensions:
  file_storage:
    directory: $MNT/storage
    create_directory: true
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
      queue_size: 100000
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

start_collector() {
  "$WASMCOL" --config "$WORK/config.yaml" >>"$WORK/collector.log" 2>&1 &
  COL_PID=$!
  for _ in $(seq 100); do
    grep -q "Everything is ready" "$WORK/collector.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "collector did not start"; tail -20 "$WORK/collector.log"; exit 1
}
metric() { # sum of a metric's series
  curl -s "http://$METRICS/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$NF} END {print s+0}'
}
load() { # seconds -> "requests errors"
  "$LOADGEN" --endpoint "http://$RECV" --concurrency 4 --spans 200 --warmup 0 --duration "$1" |
    sed -E 's/.*requests=([0-9]+) errors=([0-9]+).*/\1 \2/'
}

start_collector
echo "phase 1: backend down, ${FS_MIB} MiB tmpfs with ${FILLER_MIB} MiB taken, ${LOAD_SECS}s of load"
read -r ok1 err1 < <(load "$LOAD_SECS")
used1=$(df --output=pcent "$MNT" | tail -1 | tr -d ' ')
echo "figure: full: acknowledged_requests=$ok1 refused_requests=$err1 disk_used=$used1"
grep -c "group commit failed" "$WORK/collector.log" | sed 's/^/figure: failed_group_commits=/'

echo "phase 2: space freed (filler removed), same process, backend still down"
rm -f "$MNT/filler"
t0=$(date +%s.%N)
read -r ok2 err2 < <(load 5)
echo "figure: after_free: acknowledged_requests=$ok2 refused_requests=$err2"
grep -c "database reopened" "$WORK/collector.log" | sed 's/^/figure: reopens=/'
kill -0 "$COL_PID"   # still the same process

echo "phase 3: backend up, drain"
"$SINK" --grpc "$SINK_GRPC" --http "$SINK_HTTP" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
acked=$(( (ok1 + ok2) * 200 ))
got=0
for _ in $(seq 600); do
  got=$(curl -s "http://$SINK_HTTP/count" || echo 0)
  [ "${got:-0}" -ge "$acked" ] && [ "$(metric wasmcol_file_storage_queued_bytes)" = 0 ] && break
  sleep 0.5
done
t1=$(date +%s.%N)
echo "figure: acknowledged_spans=$acked delivered_spans=$got (delivered >= acknowledged: $([ "$got" -ge "$acked" ] && echo yes || echo NO)) drain_after_free_s=$(echo "$t1 - $t0" | bc)"

echo "phase 4: restart on the same directory"
kill "$COL_PID"; wait "$COL_PID" || true; COL_PID=
start_collector
sleep 1
q=$(metric wasmcol_exporter_queue_quarantined_records)
c=$(metric wasmcol_file_storage_recovered_corrupt)
j=$(metric wasmcol_file_storage_journal_quarantined_records)
aside=$(find "$MNT/storage" -maxdepth 1 -name "fjall.corrupt-*" | wc -l)
echo "figure: after_restart: quarantined_records=$q journal_records_cut=$j databases_set_aside=$((c > aside ? c : aside))"
[ "$got" -ge "$acked" ] && [ "$q" = 0 ] && [ "$j" = 0 ] && [ "$aside" = 0 ] && [ "$ok2" -gt 0 ] && [ "$err1" -gt 0 ] &&
  echo "RESULT: pass" || { echo "RESULT: FAIL (log: $WORK/collector.log)"; trap - EXIT; cleanup; exit 1; }

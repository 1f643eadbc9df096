#!/usr/bin/env bash
# tail_sampling throughput, CPU per span and memory at num_traces 50000:
#   benches/tail_sampling.sh [BIN_DIR]      (default target/release; needs wasmcol, loadgen, sink)
# One counting sink behind a collector running seed 002's gateway policies (errors, latency,
# 10% probabilistic, a drop policy) with NUM_TRACES (50000) and DECISION_WAIT (10s). loadgen
# sends traces of SPANS_PER_TRACE (10) spans, SPANS (200) spans per request, with trace IDs
# no earlier request had, from CONCURRENCY (4) workers for DURATION (20) s. The collector's
# CPU time is read from /proc before the load and after every trace was decided; peak RSS
# is VmHWM from /proc/PID/status. Prints spans/s (acknowledged by the collector), CPU-seconds
# per million spans accepted, RSS before the load, at the end and peak, traces evicted
# before their decision (otelcol_processor_tail_sampling_sampling_trace_dropped_too_early)
# and spans delivered. When traces arrive faster than DECISION_WAIT releases them (more
# than NUM_TRACES / DECISION_WAIT traces/s) evictions are expected: the buffer, and RSS,
# stay bounded by NUM_TRACES. Loopback only.
set -euo pipefail
BIN=${1:-target/release}
CONCURRENCY=${CONCURRENCY:-4}
DURATION=${DURATION:-20}
SPANS=${SPANS:-200}
SPANS_PER_TRACE=${SPANS_PER_TRACE:-10}
NUM_TRACES=${NUM_TRACES:-50000}
DECISION_WAIT=${DECISION_WAIT:-10s}
# shellcheck source=benches/common.sh
source "$(dirname "$0")/common.sh"
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

start_sink 1
sink=${SINK_GRPC[1]}
delivered() { sink_count 1; }

cat >"$work/ts.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  tail_sampling:
    decision_wait: $DECISION_WAIT
    num_traces: $NUM_TRACES
    expected_new_traces_per_sec: 1000
    decision_cache:
      sampled_cache_size: 100000
      non_sampled_cache_size: 100000
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: 500}
      - name: ten-percent
        type: probabilistic
        probabilistic: {sampling_percentage: 10}
      - name: no-health-checks
        type: drop
        drop:
          drop_sub_policy:
            - name: health-route
              type: string_attribute
              string_attribute: {key: http.route, values: [/health, /ready]}
exporters:
  otlp:
    endpoint: $sink
    tls: {insecure: true}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
YAML
start_collector "$BIN/wasmcol" "$work/ts.yaml"
pid=$COLLECTOR_PID
endpoint=$COLLECTOR_GRPC
metrics=$COLLECTOR_METRICS
metric() { # sum of the samples of one metric
    curl -s "http://$metrics/metrics" | awk -v m="$1" '
        $1 == m || index($1, m "{") == 1 || $1 == m "_total" || index($1, m "_total{") == 1 {s += $NF}
        END {printf "%d\n", s}'
}

rss_before=$(status_kib "$pid" VmRSS)
cpu_before=$(cpu "$pid")
accepted_before=$(metric otelcol_receiver_accepted_spans)
"$BIN/loadgen" --endpoint "http://$endpoint" --concurrency "$CONCURRENCY" --spans "$SPANS" \
    --spans-per-trace "$SPANS_PER_TRACE" --warmup 0 --duration "$DURATION" >"$work/load"
rss_end=$(status_kib "$pid" VmRSS)
# Every trace still held is decided DECISION_WAIT after its first span: wait that long, then
# until the sink stops counting, before reading the CPU time.
sleep "$(python3 -c "import re,sys; v,u=re.fullmatch(r'([0-9.]+)(ms|s|m)', sys.argv[1]).groups(); print(float(v)*{'ms':1e-3,'s':1,'m':60}[u] + 1)" "$DECISION_WAIT")"
last=-1
for _ in $(seq 100); do now=$(delivered); [ "$now" = "$last" ] && break; last=$now; sleep 0.5; done
cpu_after=$(cpu "$pid")
hwm=$(status_kib "$pid" VmHWM)
accepted=$(($(metric otelcol_receiver_accepted_spans) - accepted_before))
refused=$(metric otelcol_receiver_refused_spans)
early=$(metric otelcol_processor_tail_sampling_sampling_trace_dropped_too_early)
new_traces=$(metric otelcol_processor_tail_sampling_new_trace_id_received)
python3 - "$accepted" "$cpu_before" "$cpu_after" "$(cat "$work/load")" "$rss_before" "$rss_end" "$hwm" \
    "$early" "$new_traces" "$(delivered)" "$refused" <<PY
import sys, re
accepted, c0, c1, load = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rss0, rss1, hwm = (int(v) / 1024 for v in sys.argv[5:8])
early, new, delivered, refused = (int(v) for v in sys.argv[8:12])
sps = re.search(r"spans_per_sec=([0-9]+)", load).group(1)
cpu = c1 - c0
print(f"tail_sampling num_traces=$NUM_TRACES decision_wait=$DECISION_WAIT "
      f"spans/request=$SPANS spans/trace=$SPANS_PER_TRACE concurrency=$CONCURRENCY duration=${DURATION}s")
print(f"  spans/s={sps} accepted={accepted} refused={refused} cpu_s={cpu:.2f} "
      f"cpu_us_per_span={cpu / max(accepted, 1) * 1e6:.2f}")
print(f"  rss_mib before={rss0:.0f} end_of_load={rss1:.0f} peak(VmHWM)={hwm:.0f}")
print(f"  new_traces={new} dropped_too_early={early} spans_delivered={delivered}")
print(f"  loadgen: {load}")
PY

# Sourced by the benchmark scripts (lb.sh, selfmetrics.sh, tail_sampling.sh): a scratch
# directory and the processes to kill on exit, a process's CPU time, counting sinks, and a
# collector started and awaited. Loopback only.

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
# User + system CPU seconds of process $1.
cpu() { awk -v t="$tck" '{print ($14+$15)/t}' "/proc/$1/stat"; }

# Starts sink number $1 from $BIN and waits for its addresses: SINK_GRPC[$1], SINK_HTTP[$1].
declare -a SINK_GRPC SINK_HTTP
start_sink() {
    local n=$1
    "$BIN/sink" --grpc 127.0.0.1:0 --http 127.0.0.1:0 >"$work/sink$n.out" &
    pids+=($!)
    for _ in $(seq 100); do grep -q grpc= "$work/sink$n.out" && break; sleep 0.1; done
    SINK_GRPC[n]=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/sink$n.out")
    SINK_HTTP[n]=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$work/sink$n.out")
}

# Spans counted so far by sinks $@.
sink_count() {
    local n=0 i
    for i in "$@"; do n=$((n + $(curl -s "http://${SINK_HTTP[i]}/count"))); done
    echo "$n"
}

# Waits until `sink_count $@` stops changing (the queues have drained), within 20 s.
drain() {
    local last=-1 now
    for _ in $(seq 100); do now=$(sink_count "$@"); [ "$now" = "$last" ] && break; last=$now; sleep 0.2; done
}

# Starts collector binary $1 on config $2 (log in $2.log) with its metrics on a free port,
# waits until it is ready: COLLECTOR_PID, COLLECTOR_GRPC (its OTLP/gRPC endpoint) and
# COLLECTOR_METRICS (its Prometheus endpoint).
start_collector() {
    "$1" --config "$2" --set service.telemetry.metrics.address=127.0.0.1:0 2>"$2.log" &
    COLLECTOR_PID=$!
    pids+=("$COLLECTOR_PID")
    COLLECTOR_GRPC="" COLLECTOR_METRICS=""
    for _ in $(seq 300); do
        COLLECTOR_GRPC=$(sed -n 's/.*Starting GRPC server.*endpoint=\([^ ]*\).*/\1/p' "$2.log" | head -1)
        COLLECTOR_METRICS=$(sed -n 's/.*Serving Prometheus metrics.*endpoint=\([^ ]*\).*/\1/p' "$2.log" | head -1)
        grep -q "Everything is ready" "$2.log" && [ -n "$COLLECTOR_GRPC" ] && [ -n "$COLLECTOR_METRICS" ] && break
        sleep 0.1
    done
}

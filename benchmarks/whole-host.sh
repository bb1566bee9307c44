#!/usr/bin/env bash
# Whole-host follow under load (issue 15): N containers (the lab's busybox image), each pinging the upstream namespace
# and fetching a page from it once a second, plus one iperf3 bulk stream, under `vethtrace follow` with no target.
#
#   benchmarks/whole-host.sh [N] [SECONDS]     # as root, with the Docker lab up (tests/lab/lab-up.sh); default 50 and 60
#   VETHTRACE=path/to/vethtrace  (default: the Release build in src/VethTrace.Cli/bin)  VT_BENCH_IPERF_SECS (10)
#
# Traffic goes only to the lab's upstream namespace (UPSTREAM_IP from /run/vethtrace-lab/env): an HTTP server
# (python3 -m http.server) and an iperf3 server started there by this script on ports of its own, and stopped at the end.
# Containers are named host15-bench-I and removed at the end. Phases, one after another:
#   1. iperf3 alone (10 s), from inside container 0's namespace (nsenter) to upstream: veth -> docker0 -> egress, NATed;
#   2. the same under `tcpdump -i any -s 256 -B 32768 -w /dev/null` (the same snaplen and ring as follow's any handle);
#   3. `vethtrace follow --egress EGRESS --format json` for SECONDS: iperf3 again 10 s in; at a third of the run a new
#      container starts (docker run -d, timed), and follow's events say when its veth was attached and when its first
#      journey was matched. Follow's peak RSS (VmHWM) and CPU (utime+stime over the run) come from /proc.
# Printed: throughput per phase, follow's peak RSS and CPU share, docker run -> attached and -> first matched journey,
# kernel drops, journeys complete / all, and the load average (the machine is shared).
set -euo pipefail
N="${1:-50}"
SECS="${2:-60}"
IPERF_SECS="${VT_BENCH_IPERF_SECS:-10}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VETHTRACE="${VETHTRACE:-$ROOT/src/VethTrace.Cli/bin/Release/net10.0/vethtrace}"
ENV_FILE="${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
[[ $EUID -eq 0 ]] || { echo "whole-host: run as root" >&2; exit 2; }
[[ -f $ENV_FILE ]] || { echo "whole-host: the lab is not up ($ENV_FILE missing)" >&2; exit 2; }
# shellcheck disable=SC1090
source "$ENV_FILE"
P=host15-bench
HTTP_PORT=18015
IPERF_PORT=15215
WORK="$(mktemp -d /tmp/host15-bench.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true

echo "whole-host: N=$N containers, follow ${SECS}s, iperf3 ${IPERF_SECS}s per phase; load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
mkdir -p "$WORK/www" && echo "host15 whole-host bench" > "$WORK/www/index.html"
ip netns exec "$UPSTREAM_NS" python3 -m http.server "$HTTP_PORT" --bind "$UPSTREAM_IP" --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec "$UPSTREAM_NS" iperf3 -s -B "$UPSTREAM_IP" -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

LOOP="while true; do ping -c 1 -W 1 $UPSTREAM_IP >/dev/null 2>&1; wget -q -O /dev/null http://$UPSTREAM_IP:$HTTP_PORT/ 2>/dev/null; sleep 1; done"
started=$(date +%s.%N)
for (( i = 0; i < N; i++ )); do
    docker run -d --name "$P-$i" "$IMAGE" sh -c "$LOOP" >/dev/null
done
echo "started $N containers in $(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.1f') s"
PID0=$(docker inspect -f '{{.State.Pid}}' "$P-0")

iperf() { # phase label -> Gbit/s received
    timeout $(( IPERF_SECS + 20 )) nsenter --net="/proc/$PID0/ns/net" iperf3 -c "$UPSTREAM_IP" -p "$IPERF_PORT" -t "$IPERF_SECS" -J > "$WORK/iperf-$1.json" 2>/dev/null || true
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.2f' % (d['end']['sum_received']['bits_per_second']/1e9))" "$WORK/iperf-$1.json" 2>/dev/null || echo "failed"
}

sleep 3
alone=$(iperf alone)
echo "iperf3 alone: $alone Gbit/s"

tcpdump -i any -s 256 -B 32768 -w /dev/null >/dev/null 2>"$WORK/tcpdump.err" &
TCPDUMP=$!
PIDS+=($TCPDUMP)
sleep 2
with_tcpdump=$(iperf tcpdump)
kill -INT $TCPDUMP; wait $TCPDUMP 2>/dev/null || true
echo "iperf3 under tcpdump -i any: $with_tcpdump Gbit/s ($(grep -E 'dropped by kernel' "$WORK/tcpdump.err" | tr '\n' ' '))"

follow_start=$(date +%s.%N)
"$VETHTRACE" follow --egress "$EGRESS_IF" --format json --duration "${SECS}s" > "$WORK/follow.json" 2>"$WORK/follow.err" &
FOLLOW=$!
PIDS+=($FOLLOW)
for _ in $(seq 1 200); do grep -q '"type":"start"' "$WORK/follow.json" 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s)
hwm=0; cpu=0
sample() {
    [[ -r /proc/$FOLLOW/status ]] || return 0
    local h; h=$(awk '/VmHWM/ {print $2}' "/proc/$FOLLOW/status" 2>/dev/null || echo 0)
    (( h > hwm )) && hwm=$h
    local t; t=$(awk '{print $14 + $15}' "/proc/$FOLLOW/stat" 2>/dev/null || echo 0)
    (( t > cpu )) && cpu=$t
    return 0
}
sleep 10; sample
with_follow=$(iperf follow)
echo "iperf3 under whole-host follow: $with_follow Gbit/s"
sample
# A new container, a third of the way in (at least after the iperf3 phase).
while (( $(date +%s) - t0 < SECS / 3 )); do sleep 1; sample; done
run_start=$(date +%s.%N)
docker run -d --name "$P-new" "$IMAGE" sh -c "$LOOP" >/dev/null
run_end=$(date +%s.%N)
while kill -0 $FOLLOW 2>/dev/null; do sample; sleep 0.5; done
follow_end=$(date +%s.%N)
wait $FOLLOW || true
run_secs=$(echo "$follow_end - $follow_start" | bc)

python3 - "$WORK/follow.json" "$P-new" "$run_start" "$run_end" <<'PY'
import json, sys, datetime
path, new, run_start, run_end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
records = [json.loads(l) for l in open(path) if l.strip()]
def at(r): return datetime.datetime.fromisoformat(r["at"].replace("Z", "+00:00")).timestamp()
attached = next((r for r in records if r.get("type") == "event" and r.get("event") == "attached" and r.get("container") == new), None)
first = next((r for r in records if r.get("type") == "event" and r.get("event") == "first_journey" and r.get("container") == new), None)
summary = next(r for r in records if r.get("type") == "summary" and "live" not in r)
anyc = next(r for r in records if r.get("type") == "capture" and r.get("interface") == "any")
containers = [r for r in records if r.get("type") == "container"]
print(f"docker run took {run_end - run_start:.2f} s")
print("docker run returned -> veth attached: " + (f"{at(attached) - run_end:+.2f} s" if attached else "never"))
print("docker run returned -> first matched journey: " + (f"{at(first) - run_end:+.2f} s" if first else "never"))
print(f"journeys {summary['journeys']}, complete {summary['complete']} ({100.0 * summary['complete'] / max(1, summary['journeys']):.3f} %), lost {summary['lost']}")
print(f"any handle: {anyc['packets']} packets, kernel dropped {anyc['kernel_dropped']}; containers reported {len(containers)}")
PY
echo "follow: peak RSS (VmHWM) $(( hwm / 1024 )) MiB, CPU $(echo "scale=3; $cpu / $(getconf CLK_TCK) / $run_secs" | bc) s/s over $(printf '%.0f' "$run_secs") s (start-up included; sampled every 0.5 s)"
grep -v '^$' "$WORK/follow.err" | head -5 || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

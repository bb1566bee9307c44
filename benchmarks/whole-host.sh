#!/usr/bin/env bash
# Whole-host follow under load (issue 15): N containers (the lab's busybox image), each pinging the upstream namespace
# and fetching a page from it once a second, under `vethtrace follow` with no target; and one iperf3 bulk stream
# alone, under tcpdump and under follow, alternating.
#
#   benchmarks/whole-host.sh [N] [SECONDS]     # as root, with the Docker lab up (tests/lab/lab-up.sh); default 50 and 60
#   VETHTRACE=path/to/vethtrace  (default: the Release build in src/VethTrace.Cli/bin; use the AOT build users install:
#   dotnet publish src/VethTrace.Cli -c Release -o DIR)   VT_BENCH_IPERF_SECS (10)   VT_BENCH_ROUNDS (3)
#   VT_BENCH_PREFIX (host15-bench: the containers' names)   VT_BENCH_KEEP=1 (keep the work directory)
#   VT_BENCH_COMPARE=path/to/other/vethtrace (a fourth throughput phase, follow-b, with that build: an A/B in one run)
#   VT_BENCH_PERF=1 (perf record -g of follow during the last round's follow phase, into the kept work directory)
#
# Traffic goes only to the lab's upstream namespace (UPSTREAM_IP from /run/vethtrace-lab/env): an HTTP server
# (python3 -m http.server) and an iperf3 server started there by this script on ports of its own, and stopped at the end.
# Containers are named PREFIX-I and removed at the end (also on Ctrl-C). Phases, one after another:
#   1. Throughput, ROUNDS rounds: iperf3 (IPERF_SECS, from inside container 0's namespace to upstream: veth -> docker0
#      -> egress, MASQUERADEd) alone, under `tcpdump -i any -s 256 -B 32768 -w /dev/null` (follow's snaplen and ring),
#      and under `vethtrace follow --egress EGRESS --format json` (no target), in an order that turns by one each round
#      so that no capture always runs first; follow's iperf3 starts once it has named the containers (its start-up,
#      an inspect and a namespace read per container, is said on a line of its own, with its CPU and dockerd's).
#      Per phase: throughput, the capture process's CPU during the iperf3 run
#      (utime+stime from /proc), its packets and kernel drops, the load average, the machine's CPU split over the run
#      (/proc/stat: user, system, softirq, idle) and dockerd's and containerd's CPU over it.
#   2. Follow for SECONDS at the ping/HTTP load alone: at a third of the run a new container starts (docker run -d,
#      timed), and follow's events say when its veth was attached, when the capture first saw a packet on it and when
#      its first journey was matched; and how far out of time order the any ring delivered packets (out_of_order_max_us:
#      what the orderer's 100 ms slack must cover) and how many came later than that (late_packets). Follow's peak RSS (VmHWM) is sampled twice a second, and its memory split
#      (/proc/PID/smaps: the ring's socket mapping, the rest) two thirds in.
set -euo pipefail
N="${1:-50}"
SECS="${2:-60}"
IPERF_SECS="${VT_BENCH_IPERF_SECS:-10}"
ROUNDS="${VT_BENCH_ROUNDS:-3}"
P="${VT_BENCH_PREFIX:-host15-bench}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VETHTRACE="${VETHTRACE:-$ROOT/src/VethTrace.Cli/bin/Release/net10.0/vethtrace}"
ENV_FILE="${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
[[ $EUID -eq 0 ]] || { echo "whole-host: run as root" >&2; exit 2; }
[[ -f $ENV_FILE ]] || { echo "whole-host: the lab is not up ($ENV_FILE missing)" >&2; exit 2; }
# shellcheck disable=SC1090
source "$ENV_FILE"
HTTP_PORT=18015
IPERF_PORT=15215
WORK="$(mktemp -d /tmp/host15-bench.XXXXXX)"
PIDS=()
CLK=$(getconf CLK_TCK)

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true
    [[ ${VT_BENCH_KEEP:-0} == 1 ]] && echo "work files kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true
load() { cut -d' ' -f1-3 /proc/loadavg; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
engine_ticks() { local t=0 p; for p in $(pgrep -xo dockerd) $(pgrep -xo containerd); do t=$(( t + $(cpu_ticks "$p") )); done; echo $t; }
cpu_split() { # /proc/stat's first line before ($1) and after ($2) -> user, system, softirq, idle shares
    python3 -c "import sys
a, b = (list(map(int, x.split()[1:9])) for x in sys.argv[1:3]); d = [y - x for x, y in zip(a, b)]; t = max(1, sum(d))
print('machine: user %.0f%%, system %.0f%%, softirq %.0f%%, idle %.0f%%' % (100 * (d[0] + d[1]) / t, 100 * d[2] / t, 100 * d[6] / t, 100 * (d[3] + d[4]) / t))" "$1" "$2"
}
COMPARE="${VT_BENCH_COMPARE:-}"

echo "whole-host: N=$N containers, follow ${SECS}s, iperf3 ${IPERF_SECS}s x $ROUNDS rounds; $VETHTRACE; load before: $(load); $(nproc) cores; $(date -u +%FT%TZ)"
mkdir -p "$WORK/www" && echo "host15 whole-host bench" > "$WORK/www/index.html"
ip netns exec "$UPSTREAM_NS" python3 -m http.server "$HTTP_PORT" --bind "$UPSTREAM_IP" --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec "$UPSTREAM_NS" iperf3 -s -B "$UPSTREAM_IP" -p "$IPERF_PORT" >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

LOOP="while true; do ping -c 1 -W 1 $UPSTREAM_IP >/dev/null 2>&1; wget -q -O /dev/null http://$UPSTREAM_IP:$HTTP_PORT/ 2>/dev/null; sleep 1; done"
started=$(date +%s.%N)
# Four at a time: dockerd serialises much of the work, but one at a time took 223 s for 200 on the loaded machine.
seq 0 $(( N - 1 )) | xargs -P 4 -I{} docker run -d --name "$P-{}" "$IMAGE" sh -c "$LOOP" >/dev/null
echo "started $N containers in $(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.1f') s; load $(load)"
PID0=$(docker inspect -f '{{.State.Pid}}' "$P-0")

iperf() { # label -> Gbit/s received
    timeout $(( IPERF_SECS + 20 )) nsenter --net="/proc/$PID0/ns/net" iperf3 -c "$UPSTREAM_IP" -p "$IPERF_PORT" -t "$IPERF_SECS" -J > "$WORK/iperf-$1.json" 2>/dev/null || true
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.2f' % (d['end']['sum_received']['bits_per_second']/1e9))" "$WORK/iperf-$1.json" 2>/dev/null || echo "failed"
}

# One throughput phase: $1 = alone | tcpdump | follow | follow-b, $2 = round. Prints one or two lines.
phase() {
    local what=$1 round=$2 label="$1-$2" pid="" gbit c0 c1 packets="-" drops="-" hwm="-" perf="" e0 e1 s0 s1
    case $what in
        tcpdump)
            tcpdump -i any -s 256 -B 32768 -w /dev/null >/dev/null 2>"$WORK/$label.err" &
            pid=$!
            sleep 2 ;;
        follow|follow-b)
            local bin="$VETHTRACE"; [[ $what == follow-b ]] && bin="$COMPARE"
            "$bin" follow --egress "$EGRESS_IF" --format json > "$WORK/$label.json" 2>"$WORK/$label.err" &
            pid=$!
            local t0 n0 n1=-1 quiet=0 es; t0=$(date +%s.%N); es=$(engine_ticks)
            for _ in $(seq 1 300); do grep -q '"type":"start"' "$WORK/$label.json" 2>/dev/null && break; sleep 0.1; done
            # Steady state: iperf3 starts once follow has named the containers (no attach or name for 2 s, at most 60 s).
            # Naming 200 containers (an inspect and a namespace read each) takes seconds of follow's and dockerd's CPU at
            # the start; it is said on its own line, not charged to the capture.
            for _ in $(seq 1 120); do
                n0=$(grep -c '"event":"\(named\|attached\)"' "$WORK/$label.json" 2>/dev/null || true)
                if [[ $n0 == "$n1" ]]; then quiet=$(( quiet + 1 )); else quiet=0; n1=$n0; fi
                (( quiet >= 4 )) && break
                sleep 0.5
            done
            printf '  round %d %-8s start-up: %.1f s to name the containers (%s attach/name events); its CPU %.2f s, dockerd+containerd %.2f s\n' "$round" "$what" \
                "$(echo "$(date +%s.%N) - $t0 - 2" | bc -l)" "$n0" "$(echo "$(cpu_ticks "$pid") / $CLK" | bc -l)" "$(echo "($(engine_ticks) - $es) / $CLK" | bc -l)"
            sleep 1
            if [[ ${VT_BENCH_PERF:-0} == 1 && $round == "$ROUNDS" ]]; then
                perf record -F 999 -g -p "$pid" -o "$WORK/perf-$label.data" -- sleep "$IPERF_SECS" >/dev/null 2>&1 &
                perf=$!
            fi ;;
    esac
    [[ -n $pid ]] && PIDS+=("$pid")
    local l0; l0=$(load)
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    e0=$(engine_ticks); s0=$(head -1 /proc/stat)
    gbit=$(iperf "$label")
    e1=$(engine_ticks); s1=$(head -1 /proc/stat)
    [[ -n $perf ]] && wait "$perf" 2>/dev/null
    if [[ -n $pid ]]; then
        c1=$(cpu_ticks "$pid")
        hwm=$(awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo "-")
        # SIGTERM for follow: a background job of a script starts with SIGINT ignored, and .NET leaves it so.
        if [[ $what == tcpdump ]]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
        for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        if [[ $what == tcpdump ]]; then
            packets=$(awk '/packets captured/ {print $1}' "$WORK/$label.err")
            drops=$(awk '/dropped by kernel/ {print $1}' "$WORK/$label.err")
        else
            read -r packets drops < <(python3 -c "import json,sys
r=[json.loads(l) for l in open(sys.argv[1]) if l.startswith('{\"type\":\"capture\",\"interface\":\"any\"')]
print(r[-1]['packets'], r[-1]['kernel_dropped']) if r else print('- -')" "$WORK/$label.json")
        fi
        printf '  round %d %-8s %6s Gbit/s  capture CPU %.3f s over the %d s run  packets %s  kernel drops %s  peak RSS %s MiB  load %s\n' \
            "$round" "$what" "$gbit" "$(echo "($c1 - $c0) / $CLK" | bc -l)" "$IPERF_SECS" "$packets" "$drops" "$hwm" "$l0"
    else
        printf '  round %d %-8s %6s Gbit/s  load %s\n' "$round" "$what" "$gbit" "$l0"
    fi
    printf '           %s; dockerd+containerd %.2f s%s\n' "$(cpu_split "$s0" "$s1")" "$(echo "($e1 - $e0) / $CLK" | bc -l)" \
        "${perf:+; perf record: $WORK/perf-$label.data}"
    if [[ -n $perf ]]; then VT_BENCH_KEEP=1; fi
    echo "$what $gbit ${c0:-0} ${c1:-0} $packets" >> "$WORK/phases"
}

sleep 3
echo "throughput (iperf3 ${IPERF_SECS} s per phase):"
order=(alone tcpdump follow)
[[ -n $COMPARE ]] && order+=(follow-b) && echo "  follow-b: $COMPARE"
for (( r = 1; r <= ROUNDS; r++ )); do
    for (( k = 0; k < ${#order[@]}; k++ )); do phase "${order[(k + r - 1) % ${#order[@]}]}" "$r"; done
done
python3 - "$WORK/phases" "$CLK" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
clk = float(sys.argv[2])
for what in ("alone", "tcpdump", "follow", "follow-b"):
    if not any(r[0] == what for r in rows):
        continue
    g = [float(r[1]) for r in rows if r[0] == what and r[1] != "failed"]
    line = f"  {what:8} median {statistics.median(g):.2f} Gbit/s ({min(g):.2f}-{max(g):.2f})" if g else f"  {what:8} no figure"
    if what != "alone":
        us = [(float(r[3]) - float(r[2])) / clk / int(r[4]) * 1e6 for r in rows if r[0] == what and r[4].isdigit() and int(r[4]) > 0]
        if us:
            line += f"; capture CPU per packet median {statistics.median(us):.2f} us ({min(us):.2f}-{max(us):.2f})"
    print(line)
PY

echo "follow ${SECS} s at the ping/HTTP load:"
follow_start=$(date +%s.%N)
"$VETHTRACE" follow --egress "$EGRESS_IF" --format json --duration "${SECS}s" > "$WORK/follow.json" 2>"$WORK/follow.err" &
FOLLOW=$!
PIDS+=($FOLLOW)
for _ in $(seq 1 300); do grep -q '"type":"start"' "$WORK/follow.json" 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s)
hwm=0; cpu=0; split=""
sample() {
    [[ -r /proc/$FOLLOW/status ]] || return 0
    local h t; h=$(awk '/VmHWM/ {print $2}' "/proc/$FOLLOW/status" 2>/dev/null || echo 0)
    (( ${h:-0} > hwm )) && hwm=$h
    t=$(cpu_ticks "$FOLLOW"); (( ${t:-0} > cpu )) && cpu=$t
    return 0
}
# A new container, a third of the way in.
while (( $(date +%s) - t0 < SECS / 3 )); do sleep 0.5; sample; done
run_start=$(date +%s.%N)
docker run -d --name "$P-new" "$IMAGE" sh -c "$LOOP" >/dev/null
run_end=$(date +%s.%N)
while (( $(date +%s) - t0 < SECS * 2 / 3 )); do sleep 0.5; sample; done
split=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { sock = ($6 ~ /^socket:/) } /^Rss:/ { if (sock) s += $2; else o += $2 } /^Anonymous:/ { a += $2 } END { printf "RSS two thirds in: ring (socket mapping) %d MiB, anonymous %d MiB, the rest (code, files) %d MiB", s / 1024, a / 1024, (o - a) / 1024 }' "/proc/$FOLLOW/smaps" 2>/dev/null || true)
while kill -0 $FOLLOW 2>/dev/null; do sample; sleep 0.5; done
follow_end=$(date +%s.%N)
wait $FOLLOW || true
run_secs=$(echo "$follow_end - $follow_start" | bc)

python3 - "$WORK/follow.json" "$P-new" "$run_start" "$run_end" <<'PY'
import json, sys, datetime
path, new, run_start, run_end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
records = [json.loads(l) for l in open(path) if l.strip()]
def at(r): return datetime.datetime.fromisoformat(r["at"].replace("Z", "+00:00")).timestamp()
def event(kind): return next((r for r in records if r.get("type") == "event" and r.get("event") == kind and r.get("container") == new), None)
summary = next(r for r in records if r.get("type") == "summary" and "live" not in r)
anyc = next(r for r in records if r.get("type") == "capture" and r.get("interface") == "any")
containers = [r for r in records if r.get("type") == "container"]
print(f"  docker run took {run_end - run_start:.2f} s")
for kind, what in (("attached", "veth attached"), ("named", "veth named"), ("first_packet", "first packet captured on its veth"), ("first_journey", "first matched journey")):
    r = event(kind)
    if r is not None or kind != "named":
        print(f"  docker run returned -> {what}: " + (f"{at(r) - run_end:+.2f} s" if r else "never") + (f" ({r['detail']})" if r and r.get("detail") else ""))
print(f"  journeys {summary['journeys']}, complete {summary['complete']} ({100.0 * summary['complete'] / max(1, summary['journeys']):.3f} %), lost {summary['lost']}")
print(f"  any handle: {anyc['packets']} packets, kernel dropped {anyc['kernel_dropped']}; containers reported {len(containers)}")
if "out_of_order_max_us" in anyc:
    print(f"  time order in the ring: at most {anyc['out_of_order_max_us']} us out of order; {anyc['late_packets']} packets later than the 100 ms slack")
PY
echo "  follow: peak RSS (VmHWM) $(( hwm / 1024 )) MiB; CPU $(echo "scale=3; $cpu / $CLK / $run_secs" | bc) s/s over $(printf '%.0f' "$run_secs") s (start-up included); $split"
grep -v '^$' "$WORK/follow.err" | head -5 | sed 's/^/  stderr: /' || true
echo "load after: $(load); $(date -u +%FT%TZ)"

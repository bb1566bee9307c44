#!/usr/bin/env bash
# Live overhead: what following costs the workload it observes. From the lab container vt-c1 to the upstream namespace
# (eth0 in the container -> its veth -> docker0 -> MASQUERADE -> the stand-in egress vt-up0 -> 198.51.100.2), in turn:
#   alone                 nothing captures
#   tcpdump               four `tcpdump -s 256 -w /dev/null`, one per hop (eth0 inside the container's namespace, the
#                         veth, docker0, the egress): what an operator would otherwise run
#   follow                `vethtrace follow vt-c1 --egress vt-up0 --format json`, the same four hops
#   follow 1/N            the same with --sample 1/N, for each N in $SAMPLES
# and under each: ping (300 echo requests 10 ms apart: median and mean RTT), then iperf3 (one TCP stream for 6 s:
# throughput). The settings alternate inside each round (the order rotates from round to round); the figures are the
# medians over the rounds, each beside the baseline measured in the same run. For the tracers it also reports their CPU
# time (user + system, from /proc) and, for follow, from its final JSON: packets, kernel drops, journeys, and the share
# of journeys seen on all four hops.
#
#   benchmarks/live-overhead.sh                         # as root, the lab up (tests/lab/lab-up.sh)
#   ROUNDS=5 SAMPLES="10 100" benchmarks/live-overhead.sh
#   VETHTRACE=/path/to/vethtrace benchmarks/live-overhead.sh     # another build (default: the Native AOT publish,
#                                                                # made once into artifacts/live-overhead/)
#   BEFORE=/path/to/older/vethtrace benchmarks/live-overhead.sh  # adds a setting 'before': follow from that build
# Unattended; about 4 minutes with the defaults (3 rounds, SAMPLES="10 100"). Only lab addresses are used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
PINGS="${PINGS:-300}"
IPERF_SECONDS="${IPERF_SECONDS:-6}"
SAMPLES="${SAMPLES-10 100}"
PORT="${PORT:-5216}"          # iperf3's port: not the default 5201, which other lab scripts use
ENV_FILE="${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
[[ $(id -u) -eq 0 ]] || { echo "live-overhead: run as root (capturing, entering the container's namespace)" >&2; exit 1; }
[[ -f "$ENV_FILE" ]] || { echo "live-overhead: the lab is not up ($ENV_FILE missing): sudo tests/lab/lab-up.sh" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_FILE"
for tool in iperf3 tcpdump nsenter python3; do
    command -v "$tool" >/dev/null || { echo "live-overhead: $tool is missing" >&2; exit 1; }
done

VETHTRACE="${VETHTRACE:-$ROOT/artifacts/live-overhead/vethtrace}"
if [[ ! -x "$VETHTRACE" ]]; then
    echo "live-overhead: publishing the Native AOT build into $(dirname "$VETHTRACE") (once)" >&2
    dotnet publish "$ROOT/src/VethTrace.Cli" -c Release -o "$(dirname "$VETHTRACE")" -nologo -clp:ErrorsOnly >&2
fi

WORK="$(mktemp -d)"
SERVER_PID=""
TRACER_PIDS=()
cleanup() {
    local pid
    for pid in "${TRACER_PIDS[@]}" $SERVER_PID; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "${KEEP:-}" ]]; then echo "live-overhead: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# One iperf3 server for the whole run, inside the upstream namespace, on its own port.
ip netns exec "$UPSTREAM_NS" iperf3 -s -B "$UPSTREAM_IP" -p "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
sleep 0.5

# cpu_ticks PID...: user + system clock ticks of these processes so far.
cpu_ticks() {
    local pid total=0 stat
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || continue
        stat=${stat##*) }                      # after the command name, fields start at 3 (state)
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))      # utime, stime: fields 14 and 15
    done
    echo "$total"
}

# wait_for FILE PATTERN COUNT: until FILE holds COUNT lines matching PATTERN (at most 20 s).
wait_for() {
    local i
    for ((i = 0; i < 200; i++)); do
        [[ $(grep -c -- "$2" "$1" 2>/dev/null || true) -ge $3 ]] && return 0
        sleep 0.1
    done
    echo "live-overhead: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

# start SETTING RUNDIR: starts the tracers of SETTING (alone, tcpdump, follow, follow/N); their PIDs in TRACER_PIDS.
start() {
    local setting=$1 dir=$2 hop
    TRACER_PIDS=()
    case $setting in
    alone) ;;
    tcpdump)
        nsenter --net="$C1_NETNS" tcpdump -n -s 256 -w /dev/null -i "$C1_IF" 2>"$dir/tcpdump.0" &
        TRACER_PIDS+=($!)
        local i=1
        for hop in "$C1_VETH" "$BRIDGE" "$EGRESS_IF"; do
            tcpdump -n -s 256 -w /dev/null -i "$hop" 2>"$dir/tcpdump.$i" &
            TRACER_PIDS+=($!)
            i=$((i + 1))
        done
        for i in 0 1 2 3; do wait_for "$dir/tcpdump.$i" "listening on" 1; done
        ;;
    follow* | before)
        local sample=() binary=$VETHTRACE
        [[ $setting == follow/* ]] && sample=(--sample "1/${setting#follow/}")
        [[ $setting == before ]] && binary=$BEFORE
        "$binary" follow "$C1_NAME" --egress "$EGRESS_IF" --format json --filter "icmp or tcp port $PORT" "${sample[@]}" \
            >"$dir/follow.json" 2>"$dir/follow.err" &
        TRACER_PIDS+=($!)
        wait_for "$dir/follow.json" '"type":"start"' 1
        ;;
    esac
    sleep 0.3
    cpu_ticks "${TRACER_PIDS[@]}" >"$dir/cpu.before"
}

# stop RUNDIR: records the tracers' CPU time, stops them (SIGTERM: follow prints its final report, tcpdump its counts).
stop() {
    local dir=$1 pid
    [[ ${#TRACER_PIDS[@]} -gt 0 ]] || return 0
    echo $(($(cpu_ticks "${TRACER_PIDS[@]}") - $(<"$dir/cpu.before"))) >"$dir/cpu.ticks"
    for pid in "${TRACER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${TRACER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    TRACER_PIDS=()
}

SETTINGS=(alone tcpdump follow)
[[ -n "${BEFORE:-}" ]] && SETTINGS+=(before)
for n in $SAMPLES; do SETTINGS+=("follow/$n"); done
START=$(date +%s)
echo "live-overhead: $ROUNDS rounds of ${SETTINGS[*]}; $PINGS pings 10 ms apart, then iperf3 for $IPERF_SECONDS s; $(nproc) cores; $VETHTRACE" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    count=${#SETTINGS[@]}
    for ((k = 0; k < count; k++)); do
        setting=${SETTINGS[$(((k + round - 1) % count))]}
        dir="$WORK/$round/${setting//\//-}"
        mkdir -p "$dir"
        echo "$setting" >"$dir/setting"
        start "$setting" "$dir"
        nsenter -t "$C1_PID" -m -n /bin/ping -c "$PINGS" -i 0.01 "$UPSTREAM_IP" >"$dir/ping.txt" 2>&1 || true
        nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p "$PORT" -t "$IPERF_SECONDS" -J >"$dir/iperf3.json" 2>&1 || true
        sleep 0.3
        stop "$dir"
        printf '  round %d: %-11s done (%d s)\n' "$round" "$setting" $(($(date +%s) - START)) >&2
    done
done

python3 - "$WORK" "$ROUNDS" "$(getconf CLK_TCK)" "${SETTINGS[@]}" <<'PY'
import json, os, re, statistics, sys
work, rounds, tick, settings = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
med = statistics.median

def ping(path):
    rtts = [float(m) * 1000 for m in re.findall(r"time=([0-9.]+) ms", open(path).read())]
    return (med(rtts), statistics.mean(rtts), len(rtts)) if rtts else (float("nan"), float("nan"), 0)

def iperf(path):
    try:
        sent = json.load(open(path))["end"]["sum_sent"]
        return sent["bits_per_second"] / 1e9, sent.get("retransmits", 0)
    except (ValueError, KeyError):
        return float("nan"), 0

def follow(path):
    records = []
    for line in open(path):
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    captures = [r for r in records if r["type"] == "capture"]
    summary = next((r for r in records if r["type"] == "summary" and "live" not in r), None)
    if summary is None or not captures:
        return None
    hops = len(captures)
    whole = sum(p["journeys"] for p in records if p["type"] == "path" and len(p["interfaces"]) == hops)
    return dict(packets=sum(c["packets"] for c in captures), drops=sum(max(0, c["kernel_dropped"]) for c in captures),
                journeys=summary["journeys"], whole=whole, hops=hops)

def tcpdump_counts(dir):
    drops = captured = 0
    for i in range(4):
        text = open(os.path.join(dir, f"tcpdump.{i}")).read()
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        drops += int(m.group(1)) if m else 0
        m = re.search(r"(\d+) packets? captured", text)
        captured += int(m.group(1)) if m else 0
    return drops, captured

rows = {}
for s in settings:
    runs = []
    for r in range(1, rounds + 1):
        d = os.path.join(work, str(r), s.replace("/", "-"))
        run = dict(ping=ping(os.path.join(d, "ping.txt")), iperf=iperf(os.path.join(d, "iperf3.json")))
        cpu = os.path.join(d, "cpu.ticks")
        run["cpu"] = int(open(cpu).read()) / tick if os.path.exists(cpu) else 0.0
        if s.startswith("follow") or s == "before":
            run["follow"] = follow(os.path.join(d, "follow.json"))
        if s == "tcpdump":
            run["drops"], run["packets"] = tcpdump_counts(d)
        elif run.get("follow"):
            run["packets"] = run["follow"]["packets"]
        runs.append(run)
    rows[s] = runs

base_rtt = med(r["ping"][0] for r in rows["alone"])
base_gbit = med(r["iperf"][0] for r in rows["alone"])
print(f"{'':<12}{'ping median':>12}{'ping mean':>11}{'+RTT':>8}{'iperf3':>13}{'cost':>8}{'CPU':>8}{'CPU/pkt':>9}{'kernel':>8}{'journeys':>10}{'whole':>9}")
print(f"{'':<12}{'RTT (us)':>12}{'(us)':>11}{'(us)':>8}{'(Gbit/s)':>13}{'':>8}{'(s)':>8}{'(us)':>9}{'drops':>8}{'':>10}{'':>9}")
for s, runs in rows.items():
    rtt = med(r["ping"][0] for r in runs)
    mean = med(r["ping"][1] for r in runs)
    gbit = med(r["iperf"][0] for r in runs)
    cpu = med(r["cpu"] for r in runs)
    per = [r["cpu"] * 1e6 / r["packets"] for r in runs if r.get("packets")]
    cpu_per = f"{med(per):.1f}" if per else ""
    drops, journeys, whole = "", "", ""
    if s == "tcpdump":
        drops = str(sum(r["drops"] for r in runs))
    fs = [r["follow"] for r in runs if r.get("follow")]
    if s.startswith("follow") or s == "before":
        if len(fs) < len(runs):
            journeys = f"({len(runs) - len(fs)} runs without a report)"
        if fs:
            drops = str(sum(f["drops"] for f in fs))
            journeys = str(int(med(f["journeys"] for f in fs)))
            total_j = sum(f["journeys"] for f in fs)
            whole = f"{100.0 * sum(f['whole'] for f in fs) / max(total_j, 1):.2f}%"
    print(f"{s:<12}{rtt:>12.1f}{mean:>11.1f}{rtt - base_rtt:>+8.1f}{gbit:>13.2f}{100.0 * (gbit - base_gbit) / base_gbit:>+7.1f}%{cpu:>8.2f}{cpu_per:>9}{drops:>8}{journeys:>10}{whole:>9}")
print()
print("per round (ping median us / iperf3 Gbit/s):")
for s, runs in rows.items():
    print(f"  {s:<12}" + "   ".join(f"{r['ping'][0]:6.1f} / {r['iperf'][0]:5.2f}" for r in runs))
print("medians over the rounds; +RTT and cost against 'alone' in the same run; CPU: the tracers' user+system time while ping and iperf3 ran,")
print("CPU/pkt: that over the packets they captured on the four hops (less noisy than the workload's figures on a shared machine);")
print("journeys: median per run (ping + iperf3 through follow's --filter); whole: the share of all runs' journeys seen on all four hops")
PY

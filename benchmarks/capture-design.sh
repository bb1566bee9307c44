#!/usr/bin/env bash
# Capture design for the whole host (issue 15): N handles (one per host-side veth, plus the bridge) against one
# `any` handle with a BPF on the interface indexes, both with tcpdump (the same libpcap, the same 8 MiB ring each).
# No Docker: its own namespaces, a bridge, N veth pairs, traffic only between those namespaces.
#
#   benchmarks/capture-design.sh [N] [SECONDS]        # run as root; N >= 2 (default 10), SECONDS of load (default 10)
#   VT_BENCH_SNAPLEN=262144 VT_BENCH_ANY_RING_KIB=65536 VT_BENCH_RATE=300M benchmarks/capture-design.sh 50
#
# Topology: namespace vt-host-bench-br holds bridge br0 and the host ends vh0..vh(N-1); namespace vt-host-bench-cI
# holds eth0, 10.231.x.y/16. Load per phase: every cI pings its partner 5 times a second (c0<->c1, c2<->c3, ...) and
# iperf3 sends one TCP stream c0 -> c1 at a fixed 300 Mbit/s, so every design handles the same packets. Then one
# unbounded iperf3 stream measures what each design costs in throughput.
# Phases: none (no capture), a (N+1 handles: tcpdump -i vhI and -i br0), b (one tcpdump -i any -y LINUX_SLL2 with
# 'ifindex A or ifindex B ...' and br0 set promiscuous, because `any` does not make any device promiscuous).
# Figures: capture processes' CPU (utime+stime from /proc/PID/stat), iperf3's own CPU (its -J host/remote totals:
# the kernel's copy into a ring runs in the sender's softirq, charged to iperf3, not to tcpdump), the whole machine's
# busy share (/proc/stat, shared with everyone else), ring memory (the socket:[...] mappings in /proc/PID/smaps,
# Size and Rss), VmRSS, VmLck, packets and kernel drops from tcpdump's exit lines.
# Timestamp fidelity: a separate short phase per design writes nanosecond pcaps of 40 pings c0 -> c1 (vh0, br0,
# vh1) and compares each echo request's stamps across the three hops.
set -euo pipefail
N="${1:-10}"
SECS="${2:-10}"
RATE="${VT_BENCH_RATE:-300M}"
RING_KIB=8192                                    # per handle, as follow opens them (LiveCapture.DefaultBufferBytes)
ANY_RING_KIB="${VT_BENCH_ANY_RING_KIB:-$RING_KIB}" # the one `any` handle's ring
SNAPLEN="${VT_BENCH_SNAPLEN:-256}"                # follow keeps 256 bytes of each packet
IMMEDIATE=--immediate-mode                         # and opens its handles in immediate mode
[[ ${VT_BENCH_IMMEDIATE:-1} == 0 ]] && IMMEDIATE=
P=vt-host-bench
BR="$P-br"
WORK="$(mktemp -d /tmp/vt-host-bench.XXXXXX)"
PIDS=()
(( N >= 2 )) || { echo "capture-design: N must be at least 2" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "capture-design: run as root (namespaces, veths, packet sockets)" >&2; exit 2; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-"); do ip netns del "$ns"; done
    if [[ -n ${VT_BENCH_KEEP:-} ]]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cleanup_before() { for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-"); do ip netns del "$ns"; done; }
cleanup_before

addr() { echo "10.231.$(( $1 / 200 )).$(( $1 % 200 + 1 ))"; }
partner() { local i=$1; if (( i % 2 == 0 )); then (( i + 1 < N )) && echo $(( i + 1 )) || echo 0; else echo $(( i - 1 )); fi; }

ROUNDS_TEXT="${VT_BENCH_ROUNDS:-3}"
echo "capture-design: N=$N veths, ${SECS}s per phase, iperf3 at $RATE, snaplen $SNAPLEN ${IMMEDIATE:-(buffered)}, $ROUNDS_TEXT rounds, rings ${RING_KIB} KiB per handle (a), ${ANY_RING_KIB} KiB (b); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns add "$BR"
ip -n "$BR" link set lo up
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for (( i = 0; i < N; i++ )); do
    ip netns add "$P-c$i"
    ip -n "$BR" link add "vh$i" type veth peer name eth0 netns "$P-c$i"
    ip -n "$BR" link set "vh$i" master br0 up
    ip -n "$P-c$i" addr add "$(addr "$i")/16" dev eth0
    ip -n "$P-c$i" link set eth0 up
    ip -n "$P-c$i" link set lo up
done
# Wait for the bridge ports to forward (no STP: they go forwarding at once, but the links need carrier).
sleep 2
ip netns exec "$P-c0" busybox ping -c 1 -W 2 "$(addr 1)" >/dev/null

cpu_of() { # utime+stime in clock ticks of the given PIDs
    local total=0 pid
    for pid in "$@"; do total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) )); done
    echo "$total"
}
busy_of_machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
memory_of() { # ring Size kB, ring Rss kB, VmRSS kB, VmLck kB summed over PIDs
    local pid size=0 rss=0 vm=0 lck=0
    for pid in "$@"; do
        read -r s r < <(awk '/^[0-9a-f]+-[0-9a-f]+ / { sock = ($6 ~ /^socket:/) } sock && /^Size:/ { s += $2 } sock && /^Rss:/ { r += $2 } END { print s + 0, r + 0 }' "/proc/$pid/smaps")
        size=$(( size + s )); rss=$(( rss + r ))
        vm=$(( vm + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") ))
        lck=$(( lck + $(awk '/^VmLck:/ {print $2}' "/proc/$pid/status") ))
    done
    echo "$size $rss $vm $lck"
}
ifindex_of() { ip netns exec "$BR" cat "/sys/class/net/$1/ifindex"; }

start_capture() { # design, label, write-to (file prefix or /dev/null), extra filter
    local design=$1 label=$2 out=$3 extra=${4:-}
    CAPTURE_PIDS=()
    if [[ $design == a ]]; then
        local devices=(br0) i
        for (( i = 0; i < N; i++ )); do devices+=("vh$i"); done
        for dev in "${devices[@]}"; do
            local target=/dev/null
            [[ $out != /dev/null ]] && { [[ $dev == br0 || $dev == vh0 || $dev == vh1 ]] || continue; target="$out.$dev.pcap"; }
            ip netns exec "$BR" tcpdump -i "$dev" -B "$RING_KIB" -s "$SNAPLEN" $IMMEDIATE --time-stamp-precision=nano -n -w "$target" $extra \
                2>"$WORK/$label.$dev.err" &
            CAPTURE_PIDS+=($!); PIDS+=($!)
        done
    elif [[ $design == b ]]; then
        local filter="" i
        for dev in br0 $(for (( i = 0; i < N; i++ )); do echo "vh$i"; done); do
            filter+="${filter:+ or }ifindex $(ifindex_of "$dev")"
        done
        [[ -n $extra ]] && filter="($filter) and $extra"
        local target=/dev/null
        [[ $out != /dev/null ]] && target="$out.any.pcap"
        # `any` puts no device in promiscuous mode: without this the bridge shows only frames addressed to the
        # host, not the ones it forwards between two ports (the fidelity pass shows both ways).
        [[ -n ${NO_PROMISC:-} ]] || ip -n "$BR" link set br0 promisc on
        ip netns exec "$BR" tcpdump -i any -y LINUX_SLL2 -B "$ANY_RING_KIB" -s "$SNAPLEN" $IMMEDIATE --time-stamp-precision=nano -n -w "$target" "$filter" \
            2>"$WORK/$label.any.err" &
        CAPTURE_PIDS+=($!); PIDS+=($!)
    fi
    # tcpdump prints "listening on" once its handle is open.
    local deadline=$(( SECONDS + 30 )) f
    for f in "$WORK/$label".*.err; do
        [[ -e $f ]] || continue
        until grep -q "listening on" "$f" 2>/dev/null; do (( SECONDS < deadline )) || { echo "capture $f did not start: $(cat "$f")" >&2; exit 1; }; sleep 0.1; done
    done
}
stop_capture() {
    local pid
    for pid in "${CAPTURE_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${CAPTURE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip -n "$BR" link set br0 promisc off
}

run_load() { # label: pings on every pair plus one rate-limited iperf3 stream, SECS long
    local label=$1 i pings=()
    for (( i = 0; i < N; i++ )); do
        ip netns exec "$P-c$i" busybox ping -q -i 0.2 -w "$SECS" "$(addr "$(partner "$i")")" >/dev/null 2>&1 &
        pings+=($!); PIDS+=($!)
    done
    ip netns exec "$P-c1" iperf3 -s -1 -B "$(addr 1)" >/dev/null 2>&1 &
    local server=$!; PIDS+=($server)
    sleep 0.5
    ip netns exec "$P-c0" iperf3 -c "$(addr 1)" -b "$RATE" -t "$SECS" -J >"$WORK/$label.rate.json" 2>&1 || true
    wait "$server" 2>/dev/null || true
    for i in "${pings[@]}"; do wait "$i" 2>/dev/null || true; done
}
run_bulk() {
    local label=$1
    ip netns exec "$P-c1" iperf3 -s -1 -B "$(addr 1)" >/dev/null 2>&1 &
    local server=$!; PIDS+=($server)
    sleep 0.5
    ip netns exec "$P-c0" iperf3 -c "$(addr 1)" -t "$SECS" -J >"$WORK/$label.bulk.json" 2>&1 || true
    wait "$server" 2>/dev/null || true
}

HZ=$(getconf CLK_TCK)
ROUNDS="${VT_BENCH_ROUNDS:-3}"
printf '%s\n' "design,round,handles,load_capture_cpu_s_per_s,bulk_capture_cpu_s_per_s,iperf3_sender_cpu_pct,iperf3_receiver_cpu_pct,load_machine_busy_pct,ring_size_mib,ring_rss_mib,vmrss_mib,vmlck_kib,load_packets,load_dropped,bulk_gbit_s,bulk_packets,bulk_dropped,load1" >"$WORK/results.csv"
# The designs take turns, round after round, so that the machine's other load falls on all of them alike.
for (( round = 1; round <= ROUNDS; round++ )); do
for design in none a b; do
    label="$design-r$round"
    CAPTURE_PIDS=()
    [[ $design != none ]] && start_capture "$design" "$label" /dev/null
    read -r busy0 total0 < <(busy_of_machine)
    cpu0=$(cpu_of "${CAPTURE_PIDS[@]}")
    run_load "$label"
    cpu1=$(cpu_of "${CAPTURE_PIDS[@]}")
    read -r busy1 total1 < <(busy_of_machine)
    # tcpdump prints its counts on SIGUSR1: the load phase's packets and drops, apart from the bulk phase's.
    for pid in "${CAPTURE_PIDS[@]}"; do kill -USR1 "$pid" 2>/dev/null || true; done
    sleep 0.5
    memory="0 0 0 0"
    (( ${#CAPTURE_PIDS[@]} > 0 )) && memory=$(memory_of "${CAPTURE_PIDS[@]}")
    cpu2=$(cpu_of "${CAPTURE_PIDS[@]}")
    run_bulk "$label"
    cpu3=$(cpu_of "${CAPTURE_PIDS[@]}")
    load1=$(cut -d' ' -f1 /proc/loadavg)
    stop_capture
    python3 - "$design" "$round" "${#CAPTURE_PIDS[@]}" "$cpu0" "$cpu1" "$cpu2" "$cpu3" "$HZ" "$SECS" "$busy0" "$total0" "$busy1" "$total1" $memory "$load1" "$WORK" >>"$WORK/results.csv" <<'PY'
import glob, json, re, sys
design, rnd, handles, cpu0, cpu1, cpu2, cpu3, hz, secs, b0, t0, b1, t1, size, rss, vm, lck, load1, work = sys.argv[1:]
label = f"{design}-r{rnd}"
def j(path):
    try:
        return json.load(open(path))
    except Exception:
        return {}
rate, bulk = j(f"{work}/{label}.rate.json"), j(f"{work}/{label}.bulk.json")
cpu = rate.get("end", {}).get("cpu_utilization_percent", {})
gbit = bulk.get("end", {}).get("sum_received", {}).get("bits_per_second", 0) / 1e9
packets = dropped = bulk_packets = bulk_dropped = 0
for err in glob.glob(f"{work}/{label}.*.err"):
    text = open(err).read()
    captured = [int(x) for x in re.findall(r"(\d+) packets captured", text)]
    drops = [int(x) for x in re.findall(r"(\d+) packets dropped by kernel", text)]
    if captured:
        packets += captured[0]; bulk_packets += captured[-1] - captured[0]
    if drops:
        dropped += drops[0]; bulk_dropped += drops[-1] - drops[0]
busy = 100.0 * (float(b1) - float(b0)) / max(1.0, float(t1) - float(t0))
per_s = lambda a, b: f"{(int(b) - int(a)) / int(hz) / float(secs):.3f}"
print(",".join(str(x) for x in [design, rnd, handles, per_s(cpu0, cpu1), per_s(cpu2, cpu3),
    f"{cpu.get('host_total', 0):.1f}", f"{cpu.get('remote_total', 0):.1f}", f"{busy:.1f}",
    f"{int(size) / 1024:.1f}", f"{int(rss) / 1024:.1f}", f"{int(vm) / 1024:.1f}", lck, packets, dropped, f"{gbit:.2f}", bulk_packets, bulk_dropped, load1]))
PY
done
done
python3 - "$WORK/results.csv" "$SECS" >"$WORK/summary.txt" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("medians over rounds: design, bulk Gbit/s, bulk capture CPU s/s, bulk packets/s captured, bulk drops (sum), load drops (sum), ring MiB, VmRSS MiB")
for design in ("none", "a", "b"):
    mine = [r for r in rows if r["design"] == design]
    med = lambda key: statistics.median(float(r[key]) for r in mine)
    total = lambda key: sum(int(r[key]) for r in mine)
    print(f"  {design:4} {med('bulk_gbit_s'):6.2f} {med('bulk_capture_cpu_s_per_s'):6.3f} {med('bulk_packets') / float(sys.argv[2]):10.0f} "
          f"{total('bulk_dropped'):8d} {total('load_dropped'):6d} {med('ring_size_mib'):7.1f} {med('vmrss_mib'):7.1f}")
PY

# Timestamp fidelity: nanosecond pcaps of 40 echo requests c0 -> c1 (and their replies) on vh0, br0 and vh1;
# for b also once without br0 promiscuous (bn).
for design in a b bn; do
    if [[ $design == bn ]]; then NO_PROMISC=1 start_capture b "ts-$design" "$WORK/ts-$design" icmp
    else start_capture "$design" "ts-$design" "$WORK/ts-$design" icmp; fi
    ip netns exec "$P-c0" busybox ping -q -c 40 -i 0.05 "$(addr 1)" >/dev/null
    sleep 0.5
    stop_capture
done
VH0=$(ifindex_of vh0); VH1=$(ifindex_of vh1); BR0=$(ifindex_of br0)
python3 - "$WORK" "$VH0" "$BR0" "$VH1" >"$WORK/timestamps.txt" <<'PY'
import subprocess, sys, statistics
work, vh0, br0, vh1 = sys.argv[1:]
names = {vh0: "vh0", br0: "br0", vh1: "vh1"}
def rows(path, extra):
    out = subprocess.run(["tshark", "-r", path, "-Y", "icmp.type == 8", "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "icmp.seq", *extra], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        yield line.split("\t")
def report(design, stamps):
    # stamps: seq -> {hop: [epoch strings]}
    pairs = {("vh0", "br0"): [], ("br0", "vh1"): [], ("vh0", "vh1"): []}
    ties = {k: 0 for k in pairs}
    complete = 0
    for seq, hops in stamps.items():
        if not all(h in hops for h in ("vh0", "br0", "vh1")):
            continue
        complete += 1
        for (x, y) in pairs:
            tx, ty = hops[x][0], hops[y][0]
            if tx == ty:
                ties[(x, y)] += 1
            sx, fx = tx.split("."); sy, fy = ty.split(".")
            pairs[(x, y)].append((int(sy) - int(sx)) * 1_000_000_000 + int(fy.ljust(9, "0")) - int(fx.ljust(9, "0")))
    seen = {h: sum(1 for v in stamps.values() if h in v) for h in ("vh0", "br0", "vh1")}
    print(f"design {design}: requests seen per hop {seen}, on all three {complete}")
    for (x, y), d in pairs.items():
        if d:
            print(f"  {x}->{y}: identical stamps {ties[(x, y)]}/{len(d)}, delta ns min {min(d)} median {int(statistics.median(d))} max {max(d)}")
a = {}
for hop in ("vh0", "br0", "vh1"):
    for t, seq in rows(f"{work}/ts-a.{hop}.pcap", []):
        a.setdefault(seq, {}).setdefault(hop, []).append(t)
report("a (one handle per interface)", a)
b = {}
for t, seq, ifindex in rows(f"{work}/ts-b.any.pcap", ["-e", "sll.ifindex"]):
    if ifindex in names:
        b.setdefault(seq, {}).setdefault(names[ifindex], []).append(t)
report("b (one any handle)", b)
bn = {}
for t, seq, ifindex in rows(f"{work}/ts-bn.any.pcap", ["-e", "sll.ifindex"]):
    if ifindex in names:
        bn.setdefault(seq, {}).setdefault(names[ifindex], []).append(t)
report("b without promiscuous br0", bn)
PY

echo
echo "results (N=$N, load after: $(cut -d' ' -f1-3 /proc/loadavg)):"
column -s, -t "$WORK/results.csv"
echo
cat "$WORK/summary.txt"
echo
cat "$WORK/timestamps.txt"

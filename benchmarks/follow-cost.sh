#!/usr/bin/env bash
# Follow's CPU per captured packet, A/B against tcpdump on the same hops (docs/performance.md, "Follow's cost per
# packet"). From the lab container vt-c1 to the upstream namespace, one iperf3 stream for $SECS s under each setting in
# turn (the order rotates from round to round); each tracer's CPU is the sum of its threads' time on the CPU
# (/proc/PID/task/*/schedstat, ns) from just before iperf3 starts until $SETTLE s after it ends (follow correlates what
# it captured up to its orderer's slack later), divided by the packets it captured (follow: its capture records;
# tcpdump: "packets captured"). The machine is shared: CPU per packet is the figure, not the throughput.
#
#   benchmarks/follow-cost.sh c1 3 tcpdump before=/path/to/old/vethtrace after=/path/to/vethtrace
#       c1: follow vt-c1 --egress vt-up0 (four hops) against four tcpdump -s 256 -w /dev/null, one per hop
#   benchmarks/follow-cost.sh any 3 tcpdump after=/path/to/vethtrace
#       any: whole-host follow --egress vt-up0 against tcpdump -i any -s 256 -B 32768 -w /dev/null
#   SECS=8 SETTLE=3 PORT=5316 (defaults) (an iperf3 server on that port is started in the upstream namespace, and stopped)
# Prints a line per run: CPU, packets, us per packet, iperf3's Gbit/s, its CPU per GB sent, its time waiting for a CPU
# (runnable, not running: schedstat's run delay of the client's and server's threads) per GB, kernel drops and, for follow, journeys,
# complete and the share seen on every hop. As root, the lab up; only lab addresses are used.
set -u
. "${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
PORT="${PORT:-5316}"
D=$(mktemp -d)
ip netns exec "$UPSTREAM_NS" iperf3 -s -B "$UPSTREAM_IP" -p "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$D"' EXIT
sleep 0.5
MODE=$1; ROUNDS=$2; shift 2
SECS=${SECS:-8}
# CPU time of all threads of these processes, in units of 10 us (schedstat: ns on the CPU)
ticks() { local t=0 a b; for p in "$@"; do [[ $p == 0 ]] && continue; for f in /proc/$p/task/*/schedstat; do read -r a b < $f 2>/dev/null && t=$((t+a/10000)); done; done; echo $t; }
# time the threads of these processes spent runnable, waiting for a CPU (schedstat's second field), in us
waits() { local t=0 a b c; for p in "$@"; do for f in /proc/$p/task/*/schedstat; do read -r a b c 2>/dev/null < $f && t=$((t+b/1000)); done; done; echo $t; }
settings=("$@"); n=${#settings[@]}
for ((r=1;r<=ROUNDS;r++)); do
  for ((k=0;k<n;k++)); do
    s=${settings[$(( (k + r - 1) % n ))]}
    name=${s%%=*}; bin=${s#*=}
    pids=()
    rm -f $D/$name.*
    if [[ $name == alone ]]; then
      :
    elif [[ $name == tcpdump* ]]; then
      snap=${name#tcpdump}; snap=${snap:-256}
      if [[ $MODE == c1 ]]; then
        nsenter --net="$C1_NETNS" tcpdump -n -s $snap -w /dev/null -i "$C1_IF" 2>$D/$name.e0 & pids+=($!)
        i=1; for h in "$C1_VETH" "$BRIDGE" "$EGRESS_IF"; do tcpdump -n -s $snap -w /dev/null -i $h 2>$D/$name.e$i & pids+=($!); i=$((i+1)); done
      else
        tcpdump -n -s $snap -B 32768 -w /dev/null -i any 2>$D/$name.e0 & pids+=($!)
      fi
      sleep 1.5
    else
      if [[ $MODE == c1 ]]; then args=("$C1_NAME" --egress "$EGRESS_IF"); else args=(--egress "$EGRESS_IF"); fi
      $bin follow "${args[@]}" --format json --filter "icmp or tcp port $PORT" >$D/$name.json 2>$D/$name.err & pids+=($!)
      for i in $(seq 100); do grep -q '"type":"start"' $D/$name.json 2>/dev/null && break; sleep 0.1; done
      sleep 1
    fi
    t0=$(ticks "${pids[@]}" 0)
    w0=$(waits $SERVER)
    nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p "$PORT" -t $SECS -J > $D/$name.iperf.json &
    client=$!; cw=0
    # the client's time waiting for a CPU, sampled until it ends (its /proc entry goes with it)
    while kill -0 $client 2>/dev/null; do c=$(waits $(pgrep -P $client) $client); [[ -n $c && $c -gt $cw ]] && cw=$c; sleep 0.2; done
    wait $client
    w1=$(waits $SERVER)
    echo $((w1 - w0 + cw)) > $D/$name.wait
    sleep ${SETTLE:-3}; t1=$(ticks "${pids[@]}" 0)
    for p in "${pids[@]}"; do kill -TERM $p; done; for p in "${pids[@]}"; do wait $p; done
    python3 - "$D" "$name" "$r" $((t1-t0)) "$MODE" <<'PY'
import sys, json, glob, re
d, name, r, ticks, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
end = json.load(open(f"{d}/{name}.iperf.json"))["end"]
g = end["sum_sent"]["bits_per_second"] / 1e9
# iperf3's own CPU (client + server, user + system: the capture's kernel work runs in their context) per GB sent
cpu = end["cpu_utilization_percent"]
per_gb = (cpu["host_total"] + cpu["remote_total"]) / 100 * end["sum_sent"]["seconds"] / (end["sum_sent"]["bytes"] / 1e9)
# iperf3's time runnable but waiting for a CPU (client + server), ms per GB sent: what a tracer's threads on the CPU cost it
wait_gb = int(open(f"{d}/{name}.wait").read()) / 1000 / (end["sum_sent"]["bytes"] / 1e9)
if name == "alone":
    pk = drops = 0; extra = ""
elif name.startswith("tcpdump"):
    pk = drops = 0
    for f in glob.glob(f"{d}/{name}.e*"):
        t = open(f).read()
        pk += int(re.search(r"(\d+) packets captured", t).group(1)); drops += int(re.search(r"(\d+) packets dropped by kernel", t).group(1))
    extra = ""
else:
    recs = [json.loads(l) for l in open(f"{d}/{name}.json") if l.startswith("{")]
    caps = [x for x in recs if x["type"] == "capture"]
    if mode == "any":
        a = [x for x in caps if x["interface"] == "any"][0]; pk = a["packets"]; drops = a["kernel_dropped"]
    else:
        pk = sum(x["packets"] for x in caps); drops = sum(x["kernel_dropped"] for x in caps)
    s = [x for x in recs if x["type"] == "summary" and "live" not in x][-1]
    paths = [x for x in recs if x["type"] == "path"]
    hops = max(len(p["interfaces"]) for p in paths) if paths else 0
    whole = sum(p["journeys"] for p in paths if len(p["interfaces"]) == hops)
    extra = f"journeys {s['journeys']} complete {100*s['complete']/max(1,s['journeys']):.3f}% whole({hops}) {100*whole/max(1,s['journeys']):.3f}%"
print(f"r{r} {mode} {name:<8} cpu {ticks/1e5:5.3f}s packets {pk:>8} {ticks*10/max(pk,1):6.3f} us/pkt iperf3 {g:6.2f} Gbit/s {per_gb:5.3f} cpu-s/GB {wait_gb:6.1f} wait-ms/GB drops {drops} {extra}", flush=True)
PY
  done
done

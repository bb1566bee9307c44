#!/usr/bin/env bash
# Live load: `vethtrace follow` on vt-c1's whole path (eth0 in its namespace, its veth, docker0, the stand-in
# egress) while iperf3 pushes one bulk TCP stream from the container to the upstream namespace, through MASQUERADE.
# Prints iperf3's throughput, and from follow's own final JSON records: packets and kernel drops per hop, journeys
# seen on all four hops, losses. Needs the lab (sudo tests/lab/lab-up.sh) and a Release build of the CLI.
#
#   sudo benchmarks/live-load.sh [SECONDS] [-- extra follow options, e.g. --snaplen 262144]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_LOAD="${1:-8}"; shift || true
[[ "${1:-}" == "--" ]] && shift
ENV_FILE="${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
[[ -f "$ENV_FILE" ]] || { echo "live-load: the lab is not up ($ENV_FILE missing): sudo tests/lab/lab-up.sh" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_FILE"
VETHTRACE="$ROOT/src/VethTrace.Cli/bin/Release/net10.0/vethtrace"
[[ -x "$VETHTRACE" ]] || dotnet build -c Release "$ROOT/src/VethTrace.Cli" >/dev/null
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# The kernel's own count of datagrams routed between docker0 and the egress (both ways): the ground truth for
# what the last hops should have seen.
forwarded() { awk '/^Ip:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "ForwDatagrams") f = i; n = 1 } else print $f }' /proc/net/snmp; }
FORWARDED_BEFORE=$(forwarded)
ip netns exec "$UPSTREAM_NS" iperf3 -s -1 -B "$UPSTREAM_IP" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
sleep 0.5
"$VETHTRACE" follow "$C1_NAME" --egress "$EGRESS_IF" --format json --duration "$((SECONDS_LOAD + 8))s" \
    --filter "tcp port 5201" "$@" >"$WORK/follow.json" 2>"$WORK/follow.err" &
FOLLOW_PID=$!
for _ in $(seq 1 100); do grep -q '"type":"start"' "$WORK/follow.json" 2>/dev/null && break; sleep 0.1; done
nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -t "$SECONDS_LOAD" -J >"$WORK/client.json"
wait "$FOLLOW_PID"
SERVER_PID=""
FORWARDED=$(( $(forwarded) - FORWARDED_BEFORE ))

python3 - "$WORK/client.json" "$WORK/follow.json" "$*" "$FORWARDED" <<'PY'
import json, sys
client = json.load(open(sys.argv[1]))
records = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
sent = client["end"]["sum_sent"]
print(f"iperf3: {sent['bits_per_second'] / 1e9:.2f} Gbit/s for {sent['seconds']:.0f} s, {sent.get('retransmits', 0)} TCP retransmissions"
      + (f"   (follow {sys.argv[3]})" if sys.argv[3] else ""))
summary = next(r for r in records if r["type"] == "summary" and "live" not in r)
captures = [r for r in records if r["type"] == "capture"]
hops = len(captures)
for c in captures:
    print(f"  {c['interface']:<20} {c['packets']:>9} packets  {c['kernel_dropped']:>6} dropped by the kernel")
everywhere = sum(p["journeys"] for p in records if p["type"] == "path" and len(p["interfaces"]) == hops)
journeys = summary["journeys"]
lost = summary["lost"]
print(f"journeys: {journeys}; seen on all {hops} hops: {everywhere} ({100.0 * everywhere / max(journeys, 1):.2f} %); lost: {lost}; "
      f"kernel drops: {sum(c['kernel_dropped'] for c in captures)}")
egress = captures[-1]
print(f"kernel: {sys.argv[4]} datagrams forwarded (IpForwDatagrams); follow saw {egress['packets']} on {egress['interface']}")
PY

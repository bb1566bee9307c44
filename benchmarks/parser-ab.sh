#!/usr/bin/env bash
# Alternates builds of vethtrace over `vethtrace bench` (the bulk set) and `vethtrace bench captures/` (the mixed set) and
# prints, per run, each pass's ns per packet and the two ratios the parser's goals are stated in. On a shared machine the
# ratios inside one run are the figure (the three passes take turns over the same packets); the load average is printed
# with each line.
#
#   benchmarks/parser-ab.sh ROUNDS DURATION NAME=BINARY [NAME=BINARY...]
#   e.g. benchmarks/parser-ab.sh 3 2s main=/tmp/main-aot/vethtrace mine=/tmp/mine-aot/vethtrace
#
# Run from the repository root (the bulk capture is captures/bulk-iperf3.pcap: `bash captures/expand.sh` first).
set -euo pipefail
rounds=$1; duration=$2; shift 2
for round in $(seq 1 "$rounds"); do
    for spec in "$@"; do
        name=${spec%%=*}; bin=${spec#*=}
        for set in bulk mixed; do
            args=(bench -d "$duration" --format json)
            [ "$set" = mixed ] && args=(bench captures/ -d "$duration" --format json)
            line=$("$bin" "${args[@]}" | python3 -c '
import json, sys
ns = {}
for record in sys.stdin:
    record = json.loads(record)
    ns[record["parser"]] = record["ns_per_packet"]
v, p, f = ns["vethtrace"], ns["PacketDotNet"], ns["NaiveSpanRead"]
print(f"vethtrace {v:6.2f} PacketDotNet {p:7.2f} floor {f:6.2f} ns   PacketDotNet/vethtrace {p / v:5.2f}x   vethtrace/floor {v / f:4.2f}x")')
            echo "run $round $name $set: $line   load $(cut -d' ' -f1 /proc/loadavg)"
        done
    done
done

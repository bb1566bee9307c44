#!/usr/bin/env bash
# Is replay's output the same for two builds? Runs `replay` (table and --format json) with each binary on every
# capture in captures/ (one at a time, the split set together and reversed, all replay captures together), with
# short windows, filters and --ifname, on the bulk capture and on out-of-order files made here (a concatenation of
# the split files, and the first 60,000 bulk packets shuffled by up to 5 µs, 50 ms and 3 s), then diffs the two trees.
# A performance change to the correlator or the time orderer must leave this empty.
# Needs: mergecap (wireshark-common), python3, xz. Usage: benchmarks/replay-identical.sh BEFORE_BIN AFTER_BIN [BIG.pcap]
#   e.g. git worktree add /tmp/before HEAD~1 && dotnet build /tmp/before/src/VethTrace.Cli -c Release -o out/before
#        benchmarks/replay-identical.sh out/before/vethtrace out/bench/aot/vethtrace out/bench/replay-800000.pcap
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
before=$(realpath "$1") after=$(realpath "$2") big=${3:-}
out=$root/out/identical
mkdir -p "$out"
bash captures/expand.sh >/dev/null

mergecap -a -w "$out/concat-split.pcapng" captures/replay/split/*.pcap
shuffle() { # SRC DST JITTER_US COUNT: a classic pcap's first COUNT records, reordered by timestamp plus a random jitter
    python3 - "$@" <<'PY'
import random, struct, sys
src, dst, jitter, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
random.seed(7)
data = open(src, 'rb').read()
nano = struct.unpack('<I', data[:4])[0] == 0xa1b23c4d
pos, records = 24, []
while pos < len(data) and len(records) < count:
    sec, frac, incl, _ = struct.unpack('<IIII', data[pos:pos + 16])
    records.append((sec * 1e6 + (frac / 1000 if nano else frac) + random.uniform(0, jitter), data[pos:pos + 16 + incl]))
    pos += 16 + incl
records.sort(key=lambda r: r[0])
open(dst, 'wb').write(data[:24] + b''.join(r[1] for r in records))
PY
}
for jitter in 5 50000 3000000; do
    shuffle captures/bulk-iperf3.pcap "$out/shuffled-$jitter.pcap" $jitter 60000
done

outputs() { # BIN DIR
    local bin=$1 dir=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    run() { # NAME ARGS...
        local name=$1
        shift
        { "$bin" replay "$@" 2>&1; echo "exit $?"; } >"$dir/$name.table"
        { "$bin" replay "$@" --format json 2>&1; echo "exit $?"; } >"$dir/$name.json"
    }
    for f in captures/*.pcap captures/*.pcapng captures/replay/*.pcapng captures/replay/split/*.pcap "$out"/*.pcap "$out"/*.pcapng; do
        name=$(basename "$f")
        run "$name" "$f"
        [[ $f == captures/bulk-iperf3.pcap ]] && continue
        run "$name.w5ms" "$f" --window 5ms
        run "$name.w100us" "$f" --window 100us
    done
    run split captures/replay/split/*.pcap
    run split.w5ms captures/replay/split/*.pcap --window 5ms
    run split.reversed captures/replay/split/vt-up0.pcap captures/replay/split/docker0.pcap captures/replay/split/veth2c2dc65.pcap captures/replay/split/eth0.pcap
    run all-replay captures/replay/*.pcapng
    run all-replay.w20ms captures/replay/*.pcapng --window 20ms
    run masquerade.icmp captures/masquerade-multi.pcapng --filter 'icmp and host 172.17.0.2'
    run masquerade.tcp captures/masquerade-multi.pcapng --filter tcp
    run gro.host captures/replay/gro-iperf3.pcapng --filter 'host 172.17.0.2'
    run sll2.ifname captures/any-sll2.pcap --ifname 11=docker0 --ifname 12=vt-up0 --ifname 14=veth1eae2a7
    run bulk.w10ms captures/bulk-iperf3.pcap --window 10ms
    # Captures whose names do not decide every role (issue 14 §2: inference).
    for f in captures/replay/*.pcap; do
        run "$(basename "$f")" "$f"
    done
    run any-partial.ifname captures/replay/any-partial.pcap --ifname 5=docker0 --ifname 6=vt-up0
    run any-partial-ns.ifname captures/replay/any-partial-ns.pcap --ifname 5=docker0 --ifname 6=vt-up0
    run per-hop captures/replay/per-hop/c1-eth0.pcap captures/replay/per-hop/veth.pcap captures/replay/per-hop/docker0.pcap captures/replay/per-hop/wan.pcap
    run per-hop.reversed captures/replay/per-hop/wan.pcap captures/replay/per-hop/docker0.pcap captures/replay/per-hop/veth.pcap captures/replay/per-hop/c1-eth0.pcap
    for set in free-names free-names-tied; do
        [[ -d captures/replay/$set ]] && run "$set" captures/replay/$set/{c1,hostc1,hostc2,br,wan}.pcap
    done
    if [[ -n $big ]]; then
        run big "$big"
    fi
}
outputs "$before" "$out/before"
outputs "$after" "$out/after"
echo "$(ls "$out/before" | wc -l) outputs each"
diff -r "$out/before" "$out/after" && echo "replay-identical.sh: identical"

#!/usr/bin/env bash
# On-CPU shares of the three passes of `vethtrace bench`, from `perf record -e cpu-clock -g` (a software clock: it
# samples only while the thread runs, so time the thread spends descheduled on a loaded machine does not count, as it
# does in bench's own wall-clock ns/packet). The three passes take turns over the same packets equally often, so the
# ratios of their inclusive sample counts are the ratios of their CPU time per packet.
#
#   benchmarks/parser-oncpu.sh VETHTRACE [bench arguments...]     e.g. out/bench/current-aot/vethtrace captures/ -d 5s
#
# A JIT build (a framework-dependent `vethtrace`) is run with DOTNET_PerfMapEnabled=1 so perf can name its methods, and
# DOTNET_EnableWriteXorExecute=0: with W^X on, the JIT's code runs from a double-mapped memfd that perf does not match
# with the perf map, and every JIT sample went unnamed.
set -euo pipefail
bin=$1; shift
data=$(mktemp /tmp/vethtrace-oncpu.XXXXXX)
trap 'rm -f "$data" "$data.txt"' EXIT
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 perf record -q -g -e cpu-clock -F 2999 -o "$data" "$bin" bench "$@" >"$data.txt" 2>/dev/null
perf report -i "$data" --children --sort symbol --stdio 2>/dev/null >"$data.txt.report" || true
python3 - "$data.txt.report" <<'PY'
import re, sys
share = {}
for line in open(sys.argv[1]):
    m = re.match(r'\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(.*?)\s*(-\s+-\s*)?$', line)
    if not m:
        continue
    name = m.group(2)
    for key, pattern in (("vethtrace", r"ParserPasses(__|::)VethTrace(Pass)?\b"), ("PacketDotNet", r"ParserPasses(__|::)PacketDotNet\b"),
                         ("NaiveSpanRead", r"ParserPasses(__|::)NaiveSpanRead\b")):
        if re.search(pattern, name) and "Tally" not in name:
            share[key] = share.get(key, 0.0) + float(m.group(1))
v, p, f = share.get("vethtrace", 0), share.get("PacketDotNet", 0), share.get("NaiveSpanRead", 0)
print(f"on-CPU samples (inclusive, % of the process): vethtrace {v:.2f}, PacketDotNet {p:.2f}, NaiveSpanRead {f:.2f}")
if v and f:
    print(f"PacketDotNet / vethtrace = {p / v:.2f}x   vethtrace / NaiveSpanRead = {v / f:.2f}x")
PY
rm -f "$data.txt.report"

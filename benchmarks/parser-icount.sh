#!/usr/bin/env bash
# Instructions per packet of the VethTrace pass and of the floor (NaiveSpanRead) in `vethtrace bench`, counted by
# callgrind: a figure that does not move with the machine's load, for comparing two builds of the parser on a shared
# machine where nanoseconds scatter by 5-10 %. It is not a time: a build with fewer instructions per packet need not be
# faster (docs/performance.md, "Parser round 4", has a case of 8 % fewer and no faster), so time the builds too.
#
#   benchmarks/parser-icount.sh DIR [bench arguments...]     e.g. /tmp/x/aot captures/
#
# DIR holds a Native AOT build (`dotnet publish src/VethTrace.Cli -c Release -o DIR`): vethtrace and vethtrace.dbg. The
# executable is copied alone to a temporary folder, because valgrind 3.19 gives up on the .dbg file beside it; the symbols
# are read from the .dbg with nm. Valgrind loads a position-independent executable at 0x108000, so a function's address
# in callgrind's output is its address in the .dbg plus 0x108000. Self cost only: the out-of-line calls (the second tier
# and the general parser, for packets the first tier does not take) are not counted, so use it on a set of one shape
# (the bulk set) or read it as the loop's own instructions. Takes about a minute (the capture is loaded under valgrind).
set -euo pipefail
dir=$1; shift
work=$(mktemp -d /tmp/vethtrace-icount.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$dir/vethtrace" "$work/vethtrace"
valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$work/callgrind.out" "$work/vethtrace" bench "$@" -d 0.05s --format json \
    >/dev/null 2>"$work/valgrind.log" || { cat "$work/valgrind.log" >&2; exit 1; }
for pass in VethTrace NaiveSpanRead; do
    address=$(nm "$dir/vethtrace.dbg" | awk -v s="vethtrace_VethTrace_Cli_Bench_ParserPasses__$pass" '$3 == s { print $1 }')
    python3 - "$work/callgrind.out" "$(printf '0x%x' $((0x$address + 0x108000)))" "$pass" <<'PY'
import collections, re, sys
path, target, name = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
# callgrind's format with --dump-instr=yes: "positions: instr line"; each cost line is "ADDR LINE COST", where ADDR may be
# absolute (0x...), relative to the previous one (+N, -N) or the same (*); the line after "calls=" is a call's inclusive
# cost, not this function's own.
names, cost = {}, collections.Counter()
inside, after_call, last = False, False, 0
for line in open(path):
    if line.startswith(('fn=', 'cfn=')):
        m = re.match(r'c?fn=\((\d+)\)(?: (.*))?', line.rstrip('\n'))
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        if line.startswith('fn='):
            inside = names.get(m.group(1)) == '0x%016x' % target
        continue
    if line.startswith('calls='):
        after_call = True
        continue
    if not line[:1] or line[0] not in '0123456789+-*':
        continue
    parts = line.split()
    token = parts[0]
    last = int(token, 16) if token.startswith('0x') else last + int(token[1:], 0) if token[0] == '+' else last - int(token[1:], 0) if token[0] == '-' else last
    if after_call:
        after_call = False
        continue
    if inside and len(parts) > 2:
        cost[last] += int(parts[2])
if not cost:
    sys.exit(f'{name}: no samples at {target:#x}')
total = sum(cost.values())
# The loop's instructions run once per packet: the most executed count is the number of packets.
packets = max(cost.values())
print(f'{name:14s} {total:>12,} instructions over {packets:>9,} packets: {total / packets:6.1f} per packet')
PY
done

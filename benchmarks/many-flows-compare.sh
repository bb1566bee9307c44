#!/usr/bin/env bash
# Many flows (issue 14, section 5): `vethtrace replay` against `tcpdump -r FILE -w /dev/null` on the files of
# benchmarks/many-flows.py (one-packet UDP flows, each on a veth, docker0 and a MASQUERADEd egress: 3 packets a flow,
# 100,000 flows a second), with the Native AOT build (what `dotnet publish` makes) and the JIT build
# (`-p:PublishAot=false`). Per file, ROUNDS rounds; in each round tcpdump, AOT and JIT run one after another (so load
# from elsewhere hits all three alike), each under /usr/bin/time. Prints the medians of wall time, CPU time (user +
# system) and peak RSS, the ratio of the wall-time medians to tcpdump's, and the 1-minute load average at the runs.
#
# Usage: benchmarks/many-flows-compare.sh
#   VETHTRACE_MANY_FLOWS="1000000 10000000"  the flow counts (files made once, if missing, in the directory below)
#   VETHTRACE_MANY_FLOWS_DIR=/tmp/vethtrace-many-flows  where the files and builds go (324 MB and 3.2 GB of files)
#   VETHTRACE_ROUNDS=3
#   VETHTRACE_AOT=/path/vethtrace VETHTRACE_JIT=/path/vethtrace  use these builds instead of publishing the worktree
#   VETHTRACE_REPLAY_ARGS="--format json"  extra replay arguments (default: none, the table)
# Needs: python3 (the generator; about 35 s per million flows), tcpdump, /usr/bin/time (GNU time), the .NET SDK with
# clang and zlib1g-dev for Native AOT. Runs in about 3 minutes once files and builds exist (2 cores, quiet machine).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=${VETHTRACE_MANY_FLOWS_DIR:-/tmp/vethtrace-many-flows}
rounds=${VETHTRACE_ROUNDS:-3}
read -r -a sizes <<<"${VETHTRACE_MANY_FLOWS:-1000000 10000000}"
read -r -a extra <<<"${VETHTRACE_REPLAY_ARGS:-}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
for tool in python3 tcpdump /usr/bin/time; do
    command -v $tool >/dev/null || { echo "many-flows-compare.sh: $tool not found" >&2; exit 1; }
done
mkdir -p "$dir"

for n in "${sizes[@]}"; do
    file=$dir/many-flows-$n.pcapng
    if [[ ! -s $file ]]; then
        echo "== generating $file"
        python3 benchmarks/many-flows.py --flows "$n" --out "$file.part"
        mv "$file.part" "$file"
    fi
done

aot=${VETHTRACE_AOT:-}
jit=${VETHTRACE_JIT:-}
if [[ -z $aot ]]; then
    echo "== dotnet publish (Native AOT) -> $dir/aot"
    dotnet publish src/VethTrace.Cli -c Release -o "$dir/aot" -nologo -v quiet >"$dir/publish-aot.log" 2>&1 \
        || { tail -20 "$dir/publish-aot.log"; exit 1; }
    aot=$dir/aot/vethtrace
fi
if [[ -z $jit ]]; then
    echo "== dotnet publish -p:PublishAot=false (JIT) -> $dir/jit"
    dotnet publish src/VethTrace.Cli -c Release -p:PublishAot=false -o "$dir/jit" -nologo -v quiet >"$dir/publish-jit.log" 2>&1 \
        || { tail -20 "$dir/publish-jit.log"; exit 1; }
    jit=$dir/jit/vethtrace
fi

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
results=$dir/results.tsv
: >"$results"
run() { # SIZE TOOL ROUND CMD...: one measured run, appended to results.tsv
    local size=$1 tool=$2 round=$3
    shift 3
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%e %U %S %M" -o "$dir/time.out" "$@" >"$dir/out-$tool-$size.txt" 2>"$dir/err-$tool-$size.txt" \
        || { echo "many-flows-compare.sh: $tool failed on $size flows:" >&2; tail -5 "$dir/err-$tool-$size.txt" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$size" "$tool" "$round" "$(tr ' ' '\t' <"$dir/time.out")" "$load" >>"$results"
}
for n in "${sizes[@]}"; do
    file=$dir/many-flows-$n.pcapng
    cat "$file" >/dev/null # page cache hot for every tool alike
    for ((r = 1; r <= rounds; r++)); do
        echo "== $n flows, round $r/$rounds"
        run "$n" tcpdump "$r" tcpdump -r "$file" -w /dev/null
        run "$n" aot "$r" "$aot" replay "$file" "${extra[@]}"
        run "$n" jit "$r" "$jit" replay "$file" "${extra[@]}"
    done
    # The two builds must agree, and say how many journeys they found.
    cmp -s "$dir/out-aot-$n.txt" "$dir/out-jit-$n.txt" || { echo "many-flows-compare.sh: AOT and JIT outputs differ on $n flows" >&2; exit 1; }
    grep -m1 -E 'journeys' "$dir/out-aot-$n.txt" || true
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for size, tool, _, wall, user, system, rss, load in rows:
    by.setdefault((int(size), tool), []).append((float(wall), float(user) + float(system), int(rss) / 1024, float(load)))
names = {'tcpdump': 'tcpdump -r FILE -w /dev/null', 'aot': 'vethtrace replay (Native AOT)', 'jit': 'vethtrace replay (JIT)'}
print()
print(f"{'flows':>10}  {'tool':<30} {'runs':>4} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'wall / tcpdump':>15} {'load (1 min)':>13}")
for size in sorted({k[0] for k in by}):
    base = statistics.median(w for w, _, _, _ in by[(size, 'tcpdump')])
    for tool in ('tcpdump', 'aot', 'jit'):
        runs = by.get((size, tool), [])
        if not runs:
            continue
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = statistics.median(r[2] for r in runs)
        loads = sorted(r[3] for r in runs)
        print(f"{size:>10}  {names[tool]:<30} {len(runs):>4} {wall:>8.2f} {cpu:>8.2f} {rss:>12.0f} {wall / base:>14.1f}x {statistics.median(loads):>6.2f} ({loads[0]:.2f}-{loads[-1]:.2f})")
print("\nmedians over the runs; RSS is /usr/bin/time's maximum resident set size; the machine's load is beside each row")
PY

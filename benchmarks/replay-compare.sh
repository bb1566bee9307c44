#!/usr/bin/env bash
# Whole-process comparison of `vethtrace replay` with tcpdump and tshark on the same files, in one run (issue 5):
#   1. publishes vethtrace the way users get it, `dotnet publish -c Release`: Native AOT (no JIT, no start-up
#      compilation; the project sets PublishAot) into out/bench/aot, and builds the
#      ordinary framework-dependent one (JIT) beside it;
#   2. makes the files: LONG (default 800,000 packets) from time-shifted copies of captures/bulk-iperf3.pcap
#      (editcap -t, mergecap -a, editcap -r; classic pcap), and one ten times longer for the memory bound;
#   3. times each tool on LONG with hyperfine (warm-up run first, page cache hot), and measures peak RSS with
#      /usr/bin/time on LONG and on the ten-times file;
#   4. prints the ratios to tcpdump, of wall time and of CPU time (user + system), and times tcpdump and vethtrace
#      (AOT) once more, alternating run by run, for a ratio of medians that the machine's drift cannot bias.
# Needs: the .NET SDK, clang and zlib1g-dev (Native AOT), tcpdump, tshark, wireshark-common (editcap, mergecap),
# hyperfine: apt-get install tcpdump tshark wireshark-common hyperfine clang zlib1g-dev.
# Usage: benchmarks/replay-compare.sh [PACKETS]   (VETHTRACE_COMPARE_RUNS=N hyperfine runs, default 5)
#   VETHTRACE_COMPARE_BASELINE=/path/to/vethtrace adds another build (say an AOT publish of the commit before a change)
#   to every measurement, alternating with this one in the paired rounds, so load from elsewhere hits both alike:
#   git worktree add /tmp/base COMMIT && dotnet publish /tmp/base/src/VethTrace.Cli -c Release -r linux-x64 \
#     -p:PublishAot=true -o /tmp/base/out/aot && VETHTRACE_COMPARE_BASELINE=/tmp/base/out/aot/vethtrace benchmarks/replay-compare.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
packets=${1:-800000}
runs=${VETHTRACE_COMPARE_RUNS:-5}
baseline=${VETHTRACE_COMPARE_BASELINE:-}
out=$root/out/bench
mkdir -p "$out"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

for tool in tcpdump tshark editcap mergecap capinfos hyperfine; do
    command -v $tool >/dev/null || { echo "replay-compare.sh: $tool not found (see the header of this script)" >&2; exit 1; }
done
bash captures/expand.sh >/dev/null
bulk=captures/bulk-iperf3.pcap

echo "== build"
dotnet publish src/VethTrace.Cli -c Release -o "$out/aot" -nologo -v quiet >"$out/publish.log" 2>&1 \
    || { tail -20 "$out/publish.log"; echo "replay-compare.sh: Native AOT publish failed" >&2; exit 1; }
dotnet build src/VethTrace.Cli -c Release -o "$out/jit" -nologo -v quiet >"$out/build.log" 2>&1 \
    || { tail -20 "$out/build.log"; exit 1; }
aot=$out/aot/vethtrace
jit=$out/jit/vethtrace

# A file of N packets: copies of the bulk capture, each shifted past the end of the one before, cut to N.
make_file() {
    local n=$1 file=$2
    if [[ -s $file && $(capinfos -c -M "$file" | awk '/Number of packets/ {print $NF}') == "$n" ]]; then
        return
    fi
    local per duration copies parts=()
    per=$(capinfos -c -M "$bulk" | awk '/Number of packets/ {print $NF}')
    duration=$(capinfos -u -M "$bulk" | awk '/Capture duration/ {print int($(NF-1)) + 2}')
    copies=$(( (n + per - 1) / per ))
    for ((i = 0; i < copies; i++)); do
        editcap -F pcap -t $((i * duration)) "$bulk" "$out/part$i.pcap"
        parts+=("$out/part$i.pcap")
    done
    mergecap -F pcap -a -w "$out/joined.pcap" "${parts[@]}"
    editcap -F pcap -r "$out/joined.pcap" "$file" "1-$n"
    rm -f "${parts[@]}" "$out/joined.pcap"
}
long=$out/replay-$packets.pcap
longer=$out/replay-$((packets * 10)).pcap
echo "== files"
make_file "$packets" "$long"
make_file $((packets * 10)) "$longer"
for f in "$long" "$longer"; do
    echo "$f: $(capinfos -c -M "$f" | awk '/Number of packets/ {print $NF}') packets, $(stat -c %s "$f") bytes"
done

echo "== machine"
echo "$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== time (hyperfine, $runs runs, one warm-up)"
hyperfine --warmup 1 --runs "$runs" --export-json "$out/hyperfine.json" -N \
    -n tcpdump "tcpdump -r $long -w /dev/null" \
    -n "vethtrace (AOT)" "$aot replay $long" \
    -n "vethtrace (JIT)" "$jit replay $long" \
    -n "tshark -T fields" "tshark -r $long -T fields -e frame.time_epoch -e ip.src -e ip.dst -e ip.id" \
    ${baseline:+-n "vethtrace (baseline)" "$baseline replay $long"} \
    --output=null

echo "== paired: tcpdump and vethtrace (AOT)${baseline:+ and the baseline} alternating, $((runs * 4)) rounds (drift in the machine's load hits all alike)"
python3 - "$((runs * 4))" "$long" "$aot" "$baseline" <<'PY'
import os, resource, statistics, subprocess, sys, time
rounds, long, aot, baseline = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
commands = {"tcpdump": ["tcpdump", "-r", long, "-w", "/dev/null"], "vethtrace (AOT)": [aot, "replay", long]}
if baseline:
    commands["vethtrace (baseline)"] = [baseline, "replay", long]
wall = {name: [] for name in commands}
cpu = {name: [] for name in commands}
for _ in range(rounds):
    for name, command in commands.items():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall[name].append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
base = statistics.median(wall["tcpdump"])
base_cpu = statistics.median(cpu["tcpdump"])
for name in commands:
    w, c = statistics.median(wall[name]), statistics.median(cpu[name])
    print(f"{name:<20} median {w:6.3f} s (min {min(wall[name]):.3f})  {w / base:5.2f}x tcpdump   CPU {c:6.3f} s {c / base_cpu:5.2f}x")
PY

echo "== peak memory (/usr/bin/time, max RSS)"
rss() { /usr/bin/time -f "%e %M" "$@" >/dev/null 2>"$out/time.txt" || true; tail -1 "$out/time.txt"; }
printf '%-18s %14s %14s\n' tool "$(basename "$long")" "$(basename "$longer")"
for name in tcpdump aot jit ${baseline:+baseline}; do
    case $name in
        tcpdump) a=$(rss tcpdump -r "$long" -w /dev/null); b=$(rss tcpdump -r "$longer" -w /dev/null) ;;
        aot) a=$(rss "$aot" replay "$long"); b=$(rss "$aot" replay "$longer") ;;
        jit) a=$(rss "$jit" replay "$long"); b=$(rss "$jit" replay "$longer") ;;
        baseline) a=$(rss "$baseline" replay "$long"); b=$(rss "$baseline" replay "$longer") ;;
    esac
    printf '%-18s %8.0f MB %5.1fs %8.0f MB %5.1fs\n' "$name" "$(awk '{print $2/1024}' <<<"$a")" "$(awk '{print $1}' <<<"$a")" \
        "$(awk '{print $2/1024}' <<<"$b")" "$(awk '{print $1}' <<<"$b")"
done

echo "== ratios to tcpdump (mean wall time, same run; CPU = user + system, mean: replay reads on one core and matches on the other)"
python3 - "$out/hyperfine.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = next(r for r in results if r["command"] == "tcpdump")
for r in results:
    cpu = r["user"] + r["system"]
    print(f'{r["command"]:<18} {r["mean"]:8.3f} s ± {r["stddev"]:.3f}   {r["mean"] / base["mean"]:6.2f}× tcpdump'
          f'   CPU {cpu:7.3f} s {cpu / (base["user"] + base["system"]):6.2f}×')
PY
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

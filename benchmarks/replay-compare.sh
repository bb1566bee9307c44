#!/usr/bin/env bash
# Whole-process comparison of `vethtrace replay` with tcpdump and tshark on the same files, in one run (issues 5, 16).
#
#   benchmarks/replay-compare.sh [FILE...]
#
# Files (default): the multi-hop captures benchmarks/record-multihop.sh records into benchmarks/captures/
# (multihop-perif.pcapng, multihop-any.pcap, multihop-mixed.pcapng: those present), the many-flows file
# (benchmarks/many-flows.py: 1,000,000 one-packet flows on 3 hops, made in /tmp/vethtrace-many-flows.pcapng if
# missing) and the single-hop file of the earlier figures (out/bench/replay-800000.pcap: time-shifted copies of
# captures/bulk-iperf3.pcap, made if missing). A file's replay options are read from FILE.args when it exists
# (the SLL2 ifindex names and --egress that record-multihop.sh writes).
#
# Tools, each run on each file in every round, in an order that rotates from round to round, so a change in the
# machine's load falls on all of them alike:
#   tcpdump        tcpdump -r FILE -w /dev/null                                   (the reference of every ratio)
#   current AOT    vethtrace replay FILE, built by `dotnet publish src/VethTrace.Cli -c Release -o DIR`: the build
#                  users get (the project sets PublishAot: Native AOT)
#   current JIT    the same publish with -p:PublishAot=false (framework-dependent, JIT)
#   previous AOT   the same publish of the git ref VT_COMPARE_BASE_REF (default main), or the binary VT_COMPARE_BASELINE
#   tshark         tshark -n -r FILE -T fields -e frame.interface_id -e frame.time_epoch -e ip.src -e ip.dst -e ip.id
#                  (the fields a hop-to-hop match needs); in the first VT_COMPARE_TSHARK_ROUNDS rounds only (default
#                  1: it takes 20-30 s per 800k packets, and is not the target), and only on files of at most
#                  VT_COMPARE_TSHARK_MAX_PACKETS packets (default 1,500,000: the 3,000,000-packet many-flows file
#                  alone would add 80 s on a quiet machine, 10 min on a loaded one)
# Each run is timed alone: wall time, CPU time (user + system) and peak RSS from wait4(2). The table gives the median
# over the rounds (min-max), the ratios of the medians to tcpdump's, and the load average before and after each round.
#
# Environment: VT_COMPARE_ROUNDS (3), VT_COMPARE_TSHARK_ROUNDS (1; 0 leaves tshark out), VT_COMPARE_TSHARK_MAX_PACKETS
# (1500000), VT_COMPARE_BASE_REF (main),
# VT_COMPARE_BASELINE (a vethtrace binary instead of building the ref), VT_COMPARE_JIT=0 (leave the JIT build out),
# VT_COMPARE_OUT (out/bench). Builds are kept in $VT_COMPARE_OUT and reused while the sources are unchanged.
# Results: $VT_COMPARE_OUT/replay-compare.md (the table, for docs/performance.md) and replay-compare.json.
# Needs: the .NET SDK, clang and zlib1g-dev (Native AOT), tcpdump, tshark, wireshark-common (editcap, mergecap,
# capinfos), python3. Runs unattended in 6-9 minutes on 2 cores with the default files (builds included).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${VT_COMPARE_ROUNDS:-3}
tshark_rounds=${VT_COMPARE_TSHARK_ROUNDS:-1}
tshark_max=${VT_COMPARE_TSHARK_MAX_PACKETS:-1500000}
base_ref=${VT_COMPARE_BASE_REF:-main}
baseline=${VT_COMPARE_BASELINE:-}
with_jit=${VT_COMPARE_JIT:-1}
out=${VT_COMPARE_OUT:-$root/out/bench}
mkdir -p "$out"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log() { printf '[replay-compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'replay-compare.sh: %s\n' "$*" >&2; exit 1; }

for tool in tcpdump tshark editcap mergecap capinfos python3 dotnet git; do
    command -v $tool >/dev/null || die "$tool not found (see the header of this script)"
done

# ---- builds (reused while their sources are unchanged) ------------------------------------------------------------
# publish SRC_DIR OUT_DIR STAMP [extra publish args]: skips the publish when OUT_DIR/.stamp holds STAMP.
publish() {
    local src=$1 dir=$2 stamp=$3; shift 3
    if [[ -x $dir/vethtrace && -s $dir/.stamp && $(<"$dir/.stamp") == "$stamp" ]]; then
        log "reusing $dir ($stamp)"
        return
    fi
    log "dotnet publish $src/src/VethTrace.Cli -c Release $* -o $dir"
    rm -rf "$dir"
    if ! dotnet publish "$src/src/VethTrace.Cli" -c Release "$@" -o "$dir" -nologo -v quiet >"$dir.log" 2>&1; then
        tail -20 "$dir.log" >&2
        die "publish failed: $dir.log"
    fi
    echo "$stamp" >"$dir/.stamp"
}
# The working tree's sources: HEAD plus any uncommitted change under src/ and the build files.
current_stamp="$(git rev-parse HEAD) $(git diff HEAD -- src Directory.Build.props Directory.Packages.props global.json | sha256sum | cut -c1-16)"
publish "$root" "$out/current-aot" "$current_stamp"
if [[ $with_jit == 1 ]]; then
    publish "$root" "$out/current-jit" "$current_stamp jit" -p:PublishAot=false
fi
if [[ -z $baseline ]]; then
    base_commit=$(git rev-parse --verify "$base_ref^{commit}") || die "no git ref $base_ref (set VT_COMPARE_BASE_REF or VT_COMPARE_BASELINE)"
    if [[ ! -x $out/previous-aot/vethtrace || ! -s $out/previous-aot/.stamp || $(<"$out/previous-aot/.stamp") != "$base_commit" ]]; then
        rm -rf "$out/previous-src"
        mkdir -p "$out/previous-src"
        git archive "$base_commit" | tar -x -C "$out/previous-src"
    fi
    publish "$out/previous-src" "$out/previous-aot" "$base_commit"
    baseline=$out/previous-aot/vethtrace
    baseline_name="previous AOT ($base_ref ${base_commit:0:7})"
else
    [[ -x $baseline ]] || die "VT_COMPARE_BASELINE=$baseline is not an executable"
    baseline_name="previous ($baseline)"
fi

# ---- files -------------------------------------------------------------------------------------------------------
# The single-hop file of the earlier figures: copies of the bulk capture, each shifted past the end of the one before.
make_bulk_file() {
    local n=$1 file=$2 bulk=captures/bulk-iperf3.pcap
    if [[ -s $file && $(capinfos -c -M "$file" | awk '/Number of packets/ {print $NF}') == "$n" ]]; then
        return
    fi
    bash captures/expand.sh >/dev/null
    local per duration copies parts=() i
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
files=("$@")
if ((${#files[@]} == 0)); then
    for f in benchmarks/captures/multihop-perif.pcapng benchmarks/captures/multihop-any.pcap benchmarks/captures/multihop-mixed.pcapng; do
        if [[ -s $f ]]; then files+=("$f"); else log "$f missing: record it with benchmarks/record-multihop.sh (root, lab up); left out"; fi
    done
    many=/tmp/vethtrace-many-flows.pcapng
    if [[ ! -s $many ]]; then
        log "making $many (benchmarks/many-flows.py, 1,000,000 flows)"
        python3 benchmarks/many-flows.py --out "$many.tmp" >&2 && mv "$many.tmp" "$many"
    fi
    files+=("$many")
    make_bulk_file 800000 "$out/replay-800000.pcap"
    files+=("$out/replay-800000.pcap")
fi
for f in "${files[@]}"; do [[ -s $f ]] || die "$f: no such file"; done

# The current build's name: the commit it was built from, as its stamp says (HEAD may have moved since).
current_label=$(cut -c1-7 "$out/current-aot/.stamp")
[[ $(cut -d' ' -f2 "$out/current-aot/.stamp") == "$(printf '' | sha256sum | cut -c1-16)" ]] || current_label+="+uncommitted changes"
log "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" "$rounds" "$tshark_rounds:$tshark_max" "$out/current-aot/vethtrace" "$([[ $with_jit == 1 ]] && echo "$out/current-jit/vethtrace")" \
    "$baseline" "$baseline_name" "$current_label" "${files[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time

out, rounds, tshark_rounds, aot, jit, baseline, baseline_name, head = sys.argv[1:9]
tshark_rounds, tshark_max = map(int, tshark_rounds.split(":"))
rounds = int(rounds)
files = sys.argv[9:]

def capinfo(path):
    text = subprocess.run(["capinfos", "-c", "-s", "-M", path], capture_output=True, text=True).stdout
    packets = next((int(l.split()[-1]) for l in text.splitlines() if "Number of packets" in l), 0)
    return packets, os.path.getsize(path)

def replay_args(path):
    args = path + ".args"
    return open(args).read().split() if os.path.exists(args) else []

tools = [("tcpdump", lambda f: ["tcpdump", "-r", f, "-w", "/dev/null"])]
tools.append((f"current AOT ({head})", lambda f: [aot, "replay", f, *replay_args(f)]))
if jit:
    tools.append((f"current JIT ({head})", lambda f: [jit, "replay", f, *replay_args(f)]))
tools.append((baseline_name, lambda f: [baseline, "replay", f, *replay_args(f)]))
if tshark_rounds > 0:
    tools.append(("tshark -T fields", lambda f: ["tshark", "-n", "-r", f, "-T", "fields", "-e", "frame.interface_id",
                                                  "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.id"]))

def run(command):
    """Wall time, CPU time (user + system) and peak RSS (KiB) of one run, from wait4(2)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, process.returncode, stderr.decode(errors="replace")

packet_counts = {}
results = {f: {name: [] for name, _ in tools} for f in files}
loads = []
for r in range(rounds):
    before = open("/proc/loadavg").read().split()[:3]
    order = tools[r % len(tools):] + tools[:r % len(tools)]
    for f in files:
        for name, command in order:
            if name.startswith("tshark") and (r >= tshark_rounds or packet_counts.setdefault(f, capinfo(f)[0]) > tshark_max):
                continue
            wall, cpu, rss, code, err = run(command(f))
            if code != 0:
                tail = err.strip().splitlines()[-1:] or [""]
                print(f"warning: {name} on {os.path.basename(f)} exited {code}: {tail[0][:200]}", file=sys.stderr)
            results[f][name].append({"wall": wall, "cpu": cpu, "rss_kib": rss, "exit": code})
    after = open("/proc/loadavg").read().split()[:3]
    loads.append((before, after))
    print(f"[replay-compare] round {r + 1}/{rounds} done; load average {' '.join(before)} before, {' '.join(after)} after", file=sys.stderr)

def med(values):
    return statistics.median(values) if values else float("nan")

lines = []
lines.append(f"`benchmarks/replay-compare.sh`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
             f"{rounds} rounds (tshark: {min(tshark_rounds, rounds)}, on files of at most {tshark_max:,} packets), medians (min–max); "
             f"ratios are medians over tcpdump's median. "
             f"Load average per round (1, 5, 15 min, before → after): " + "; ".join(f"{' '.join(b)} → {' '.join(a)}" for b, a in loads) + ".")
lines.append("")
lines.append("| file | packets | tool | wall s | × tcpdump | CPU s | × tcpdump | peak RSS MB |")
lines.append("|---|---:|---|---:|---:|---:|---:|---:|")
summary = {}
for f in files:
    packets, size = capinfo(f)
    base = results[f]["tcpdump"]
    base_wall, base_cpu = med([x["wall"] for x in base]), med([x["cpu"] for x in base])
    summary[f] = {"packets": packets, "bytes": size, "tools": {}}
    for name, _ in tools:
        runs = results[f][name]
        if not runs:
            continue
        walls, cpus, rss = [x["wall"] for x in runs], [x["cpu"] for x in runs], [x["rss_kib"] for x in runs]
        w, c, m = med(walls), med(cpus), med(rss) / 1024
        failed = sum(1 for x in runs if x["exit"] != 0)
        summary[f]["tools"][name] = {"runs": runs, "wall_median": w, "cpu_median": c, "rss_mb_median": m,
                                     "wall_ratio": w / base_wall, "cpu_ratio": c / base_cpu, "failed_runs": failed}
        spread = f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else ""
        note = f" ⚠ {failed} run(s) exited non-zero" if failed else ""
        lines.append(f"| {os.path.basename(f)} | {packets:,} | {name}{note} | {w:.2f}{spread} | {w / base_wall:.2f}× | {c:.2f} | {c / base_cpu:.2f}× | {m:.0f} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "replay-compare.md"), "w").write(table + "\n")
json.dump({"head": head, "rounds": rounds, "loads": loads, "files": summary}, open(os.path.join(out, "replay-compare.json"), "w"), indent=1)
print(f"\n(written to {out}/replay-compare.md and replay-compare.json)", file=sys.stderr)
PY

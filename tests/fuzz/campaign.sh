#!/usr/bin/env bash
# A long fuzzing campaign on one target, bounded in time, at the lowest CPU priority (the machine is shared).
#
#   tests/fuzz/campaign.sh TARGET SECONDS [SEED]
#
# Prepares the instrumented build and the seeds as tests/fuzz/run.sh does (run.sh --prepare), copies the build
# into the campaign's own directory (so a later rebuild cannot pull it from under a running fuzzer), starts from
# the seeds and tests/fuzz/corpus/TARGET, and runs
#   nice -n 19 afl-fuzz -V SECONDS -s SEED … -- dotnet bin/VethTrace.Fuzz.dll TARGET
# in tests/fuzz/out/campaigns/N-TARGET/ (the exact command is in its `command` file). At the end it appends one
# line to tests/fuzz/out/campaigns.tsv:
#   directory  target  commit  seed  seconds  execs_done  corpus_count  saved_crashes  saved_hangs  command
# Exit status 0 when nothing was found, 1 when a crash or hang was saved, 2 when the fuzzer could not run.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${1:-}
seconds=${2:-}
seed=${3:-$RANDOM}
die() { echo "tests/fuzz/campaign.sh: $*" >&2; exit 2; }
[[ $target =~ ^(parser|pcap|pcapng|replay)$ && $seconds =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] \
    || die "usage: tests/fuzz/campaign.sh parser|pcap|pcapng|replay SECONDS [SEED]"

bash "$here/run.sh" --prepare >/dev/null || die "run.sh --prepare failed"
out="$here/out"
mkdir -p "$out/campaigns"
n=$(( $(find "$out/campaigns" -mindepth 1 -maxdepth 1 -type d | wc -l) + 1 ))
dir="$out/campaigns/$(printf '%02d' "$n")-$target"
mkdir -p "$dir/input"
cp -a "$out/bin" "$dir/bin"
cp "$out/seeds/$target"/* "$dir/input"/
[[ -d $here/corpus/$target ]] && cp "$here/corpus/$target"/* "$dir/input"/
commit=$(git -C "$root" rev-parse --short HEAD)
[[ -n $(git -C "$root" status --porcelain -- src tests/fuzz/VethTrace.Fuzz) ]] && commit="$commit+changes"

command=(afl-fuzz -i input -o findings -t 2000 -m none -s "$seed" -V "$seconds" -- dotnet bin/VethTrace.Fuzz.dll "$target")
env=(AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_FORKSRV_INIT_TMOUT=60000)
echo "${env[*]} nice -n 19 ${command[*]}" >"$dir/command"
echo "campaign $dir: $target for $seconds s, seed $seed, code $commit"
(cd "$dir" && env "${env[@]}" nice -n 19 "${command[@]}" >log 2>&1)
stats="$dir/findings/default/fuzzer_stats"
[[ -f $stats ]] || { tail -20 "$dir/log" >&2; die "afl-fuzz did not run; its log is $dir/log"; }
stat() { sed -n "s/^$1 *: *//p" "$stats"; }
line="$(basename "$dir")	$target	$commit	$seed	$(stat run_time)	$(stat execs_done)	$(stat corpus_count)	$(stat saved_crashes)	$(stat saved_hangs)	$(cat "$dir/command")"
echo "$line" >>"$out/campaigns.tsv"
echo "$line"
[[ $(stat saved_crashes) == 0 && $(stat saved_hangs) == 0 ]]

#!/usr/bin/env bash
# Adds to tests/fuzz/corpus/TARGET the inputs long campaigns found that reach something new, and are small.
#
#   tests/fuzz/keep.sh TARGET MAX_BYTES CAMPAIGN_DIR...
#
# Candidates: the queue entries AFL++ kept in each campaign (tests/fuzz/out/campaigns/N-TARGET), not the seeds they
# started from, up to MAX_BYTES each. afl-cmin runs over the seeds, the committed corpus and the candidates together
# (with the instrumented build in tests/fuzz/out/bin) and keeps, for every edge, the smallest input that reaches it;
# the candidates among those it keeps are copied to tests/fuzz/corpus/TARGET/ (named by their SHA-1, so a second run
# adds nothing twice). The seeds are not copied: run.sh makes them again from the captures at run time.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${1:-}
max=${2:-}
die() { echo "tests/fuzz/keep.sh: $*" >&2; exit 2; }
[[ $target =~ ^(parser|pcap|pcapng|replay)$ && $max =~ ^[0-9]+$ && $# -ge 3 ]] || die "usage: tests/fuzz/keep.sh TARGET MAX_BYTES CAMPAIGN_DIR..."
shift 2
bash "$here/run.sh" --prepare >/dev/null || die "run.sh --prepare failed"
out="$here/out"
work=$(mktemp -d "$out/keep-$target.XXXXXX")
mkdir -p "$work/all" "$work/min"
cp "$out/seeds/$target"/* "$work/all"/ 2>/dev/null
for f in "$here/corpus/$target"/*; do [[ -f $f ]] && cp "$f" "$work/all/corpus-$(basename "$f")"; done
candidates=0
for dir in "$@"; do
    for f in "$dir"/findings/default/queue/id:*; do
        [[ -f $f && $f != *orig:* ]] || continue
        (( $(stat -c %s "$f") <= max )) || continue
        cp "$f" "$work/all/new-$(sha1sum "$f" | cut -c1-12)"
        candidates=$((candidates + 1))
    done
done
AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    nice -n 19 afl-cmin -i "$work/all" -o "$work/min" -t 2000 -m none -- "$(command -v dotnet)" "$out/bin/VethTrace.Fuzz.dll" "$target" >"$work/cmin.log" 2>&1 \
    || { tail -20 "$work/cmin.log" >&2; die "afl-cmin failed; its log is $work/cmin.log"; }
added=0
for f in "$work/min"/new-*; do
    [[ -f $f ]] || continue
    name=${f##*/new-}
    [[ -e $here/corpus/$target/$name ]] && continue
    cp "$f" "$here/corpus/$target/$name"
    added=$((added + 1))
done
echo "keep $target: $candidates candidates up to $max bytes, afl-cmin kept $(ls "$work/min" | wc -l) of $(ls "$work/all" | wc -l) inputs, $added added to tests/fuzz/corpus/$target"
rm -rf "$work"

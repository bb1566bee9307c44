#!/usr/bin/env bash
# Checks that a change to the parser changed no answer a user sees: `vethtrace packets FILE` and `vethtrace packets -g
# FILE` (every field the packets command prints, and the NAT-invariant fingerprint on every line) of two builds, on every
# capture in captures/, captures/replay/ and the public corpus (CORPUS, else ../shared/corpus, else ../../shared/corpus
# for a worktree under /work/wt). Prints the files that differ and a
# count; exits 1 when any does. Output and exit status are compared (a file the reader rejects must be rejected alike).
#
#   benchmarks/parser-identical.sh BEFORE_BINARY AFTER_BINARY
#
# Run from the repository root (the bulk capture is captures/bulk-iperf3.pcap: `bash captures/expand.sh` first).
set -uo pipefail
before=$1; after=$2
work=$(mktemp -d /tmp/vethtrace-parser-identical.XXXXXX)
trap 'rm -rf "$work"' EXIT
corpus=${CORPUS:-../shared/corpus}
[ -d "$corpus" ] || corpus=../../shared/corpus
[ -d "$corpus" ] || { echo "no public corpus at ../shared/corpus or ../../shared/corpus: set CORPUS" >&2; exit 2; }
files=0; runs=0; differ=0
while IFS= read -r -d '' file; do
    files=$((files + 1))
    for mode in plain grouped; do
        args=(packets "$file")
        [ "$mode" = grouped ] && args=(packets -g "$file")
        "$before" "${args[@]}" >"$work/before" 2>&1; before_status=$?
        "$after" "${args[@]}" >"$work/after" 2>&1; after_status=$?
        runs=$((runs + 1))
        if [ "$before_status" != "$after_status" ] || ! cmp -s "$work/before" "$work/after"; then
            differ=$((differ + 1))
            echo "differs ($mode, exit $before_status/$after_status): $file"
        fi
    done
done < <(find captures "$corpus" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' -o -name '*.pcapng.gz' \) -print0 | sort -z)
echo "$files files, $runs outputs each, $differ differ"
[ "$differ" = 0 ] && echo identical
[ "$differ" = 0 ]

#!/usr/bin/env bash
# Expand the compressed bulk capture next to itself (idempotent):
#   captures/bulk-iperf3.pcap.xz -> captures/bulk-iperf3.pcap   (the .pcap is git-ignored)
# Skips the work when the .pcap is already there and matches captures/bulk-iperf3.pcap.sha256.
# Needs only xz (Debian xz-utils) and sha256sum (coreutils). Usable without root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for xzfile in *.pcap.xz *.pcapng.xz; do
    [[ -e $xzfile ]] || continue
    out=${xzfile%.xz}
    sum=$out.sha256
    if [[ -s $out && -s $sum ]] && sha256sum --status -c "$sum" 2>/dev/null; then
        echo "expand.sh: $out up to date"
        continue
    fi
    if [[ -s $out && ! -s $sum && $out -nt $xzfile ]]; then
        echo "expand.sh: $out present (no checksum file to verify against)"
        continue
    fi
    command -v xz >/dev/null || { echo "expand.sh: xz not found (apt-get install xz-utils)" >&2; exit 1; }
    tmp=$(mktemp "$out.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    xz -dc -- "$xzfile" >"$tmp"
    mv -f -- "$tmp" "$out"
    trap - EXIT
    if [[ -s $sum ]] && ! sha256sum --status -c "$sum"; then
        echo "expand.sh: checksum mismatch for $out" >&2
        exit 1
    fi
    echo "expand.sh: expanded $xzfile -> $out ($(stat -c %s "$out") bytes)"
done

#!/usr/bin/env bash
# Write independent expected values for every capture in captures/, using tshark (Wireshark 4.0.x):
#
#   captures/expected/<capture>.tsv          one line per frame, header line, tab separated
#   captures/expected/<capture>.tsv.xz       same, xz-compressed, for the bulk capture
#   captures/expected/<capture>.summary.txt  capinfos, per-interface counts, tshark -z io,phs, conv,ip
#
#   tests/lab/expected.sh [capture-file ...]     (default: every capture in captures/)
#
# Fields: see FIELDS below (also listed in captures/README.md). With -E occurrence=a and
# aggregator ',' a field that occurs several times in a frame (VXLAN outer+inner eth/ip/udp layers,
# 802.1ad + 802.1Q tags) is printed as comma-separated values, outermost first.
# Reassembly is off, so IPv4/IPv6 fragments and TCP segments are described exactly as captured.
# Does not need the lab or root; needs tshark, capinfos and xz.
set -euo pipefail
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/../.." && pwd)"
CAPTURES_DIR="${CAPTURES_DIR:-$REPO_ROOT/captures}"
OUT_DIR="$CAPTURES_DIR/expected"

FIELDS=(
    frame.number frame.interface_id frame.interface_name frame.len frame.cap_len
    eth.type vlan.id sll.pkttype sll.ifindex
    ip.src ip.dst ip.proto ip.id ip.ttl ip.len ip.flags.mf ip.frag_offset
    ipv6.src ipv6.dst ipv6.nxt ipv6.hlim ipv6.plen
    tcp.srcport tcp.dstport tcp.seq_raw tcp.ack_raw tcp.flags tcp.len tcp.hdr_len
    udp.srcport udp.dstport udp.length
    icmp.type icmp.code icmp.ident icmp.seq
    icmpv6.type icmpv6.code icmpv6.echo.identifier icmpv6.echo.sequence_number
    vxlan.vni
    # extras beyond the required list (appended so the required columns keep their order)
    frame.time_epoch ieee8021ad.id vlan.priority sll.etype ip.flags.df
    ipv6.fraghdr.nxt ipv6.fraghdr.offset ipv6.fraghdr.more ipv6.fraghdr.ident
    arp.opcode arp.src.proto_ipv4 arp.dst.proto_ipv4
)
# Captures whose TSV is stored xz-compressed (full, every frame).
BIG_RE='^bulk-'

TSHARK_OPTS=(
    -n                                    # no name resolution
    -o ip.defragment:FALSE
    -o ipv6.defragment:FALSE
    -o tcp.desegment_tcp_streams:FALSE
    -o tcp.relative_sequence_numbers:FALSE
    -o tcp.analyze_sequence_numbers:FALSE
    -o tcp.check_checksum:FALSE -o udp.check_checksum:FALSE -o ip.check_checksum:FALSE
)

for t in tshark capinfos xz; do
    command -v "$t" >/dev/null || { echo "expected.sh: $t missing (tests/lab/install.sh)" >&2; exit 1; }
done

# The bulk capture is stored compressed; expand it first.
bash "$CAPTURES_DIR/expand.sh" >&2

# Verify every field exists in this tshark version (names changed between Wireshark releases).
known=$(tshark -G fields 2>/dev/null | awk -F'\t' '{print $3}')
for f in "${FIELDS[@]}"; do
    grep -qxF "$f" <<<"$known" || { echo "expected.sh: tshark $(tshark -v 2>/dev/null | head -1) has no field $f" >&2; exit 1; }
done
fargs=()
for f in "${FIELDS[@]}"; do fargs+=(-e "$f"); done

if (($#)); then
    files=("$@")
else
    files=()
    for f in "$CAPTURES_DIR"/*.pcap "$CAPTURES_DIR"/*.pcapng; do [[ -e $f ]] && files+=("$f"); done
fi
mkdir -p "$OUT_DIR"

for f in "${files[@]}"; do
    name=$(basename "$f")
    # Per-hop files carry the names users give them (docker0.pcap), which other captures already use: theirs go
    # into expected/<directory>/ (captures/replay/per-hop/docker0.pcap -> expected/per-hop/docker0.pcap.tsv).
    parent=$(basename "$(dirname "$f")")
    if [[ $parent == per-hop || $parent == free-names || $parent == free-names-tied ]]; then
        name="$parent/$name"
        mkdir -p "$OUT_DIR/$parent"
    fi
    echo "expected.sh: $name" >&2
    tmp=$(mktemp "$OUT_DIR/.expected.XXXXXX")
    tshark -r "$f" "${TSHARK_OPTS[@]}" -T fields "${fargs[@]}" \
        -E header=y -E separator=/t -E occurrence=a -E aggregator=, -E quote=n \
        >"$tmp" 2>"$tmp.err" || { cat "$tmp.err" >&2; rm -f "$tmp" "$tmp.err"; exit 1; }
    grep -v 'Running as user "root"' "$tmp.err" >&2 || true
    rm -f "$tmp.err"
    chmod 644 "$tmp"
    frames=$(($(wc -l <"$tmp") - 1))
    # frames per interface: columns 2,3 (interface id/name, pcapng) and 9 (sll.ifindex, -i any)
    per_if=$(awk -F'\t' 'NR>1 {k=$2"\t"$3"\t"$9; c[k]++} END {for (k in c) printf "%8d  %s\n", c[k], (k=="\t\t" ? "(single interface, classic pcap)" : k)}' "$tmp" | sort -k2)
    if [[ $name =~ $BIG_RE ]]; then
        xz -6 -T0 -c "$tmp" >"$OUT_DIR/$name.tsv.xz"
        rm -f "$tmp" "$OUT_DIR/$name.tsv"
        echo "expected.sh:   $frames frames -> expected/$name.tsv.xz" >&2
    else
        mv -f "$tmp" "$OUT_DIR/$name.tsv"
        echo "expected.sh:   $frames frames -> expected/$name.tsv" >&2
    fi

    # Human/test-readable summary.
    {
        echo "# $name"
        echo
        echo "## capinfos"
        capinfos "$f" 2>/dev/null | grep -vE '^(SHA1|RIPEMD160|File name):' | sed 's/[[:space:]]*$//'
        echo
        echo "## frames per interface (count, frame.interface_id, frame.interface_name, sll.ifindex)"
        echo "$per_if"
        echo
        echo "## tshark -q -z io,phs -z conv,ip -z conv,ipv6 (reassembly off)"
        tshark -r "$f" "${TSHARK_OPTS[@]}" -q -z io,phs -z conv,ip -z conv,ipv6 2>/dev/null | sed 's/[[:space:]]*$//'
    } >"$OUT_DIR/$name.summary.txt"
done

# The field list, for README / tests.
printf '%s\n' "${FIELDS[@]}" >"$OUT_DIR/FIELDS.txt"
echo "expected.sh: done ($(tshark -v 2>/dev/null | head -1))" >&2

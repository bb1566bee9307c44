#!/usr/bin/env bash
# Record the captures for the replay scenarios (issue 3) into captures/replay/ from the running lab
# (tests/lab/lab-up.sh first), then derive their expected answers with tests/lab/derive-journeys.py.
#
#   tests/lab/record-replay-scenarios.sh [--only NAME[,NAME...]] [--no-expected]
#   tests/lab/record-replay-scenarios.sh --expected-only      # no root, no lab: only re-derive
#
# NAME is one of (default: all):
#   eastwest  captures/replay/east-west.pcapng      vt-c1 -> vt-c2 on docker0 (ICMP, TCP, UDP)
#   fwdrop    captures/replay/firewall-drop.pcapng  DOCKER-USER drops half of a UDP flow docker0 -> vt-up0
#   delay     captures/replay/delay-egress.pcapng   NFQUEUE holds docker0 -> vt-up0 packets 5 ms
#   split     captures/replay/split/*.pcap          one tcpdump (ns pcap) per interface
#   gro       captures/replay/gro-iperf3.pcapng     iperf3 -n 2M: GSO on docker0, segments on vt-up0, GRO on up0
# Scenarios 1, 2 (masquerade-multi.pcapng) and 7 (any-sll2.pcap) are not re-recorded here; their
# expected answers are derived together with the others.
#
# Everything this script adds (iptables rules, ethtool settings, netns names, helper processes) is
# removed again on exit, also on error; helpers are stopped by the PIDs recorded in
# /run/vethtrace-lab/pids/. The real uplink is watched with tcpdump for the whole run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL="eastwest,fwdrop,delay,split,gro"
ONLY=$ALL
RUN_EXPECTED=1
EXPECTED_ONLY=0
while (($#)); do
    case $1 in
        --only) ONLY=$2; shift ;;
        --no-expected) RUN_EXPECTED=0 ;;
        --expected-only) EXPECTED_ONLY=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

REPLAY_DIR="$CAPTURES_DIR/replay"
TOPO_DIR="$REPLAY_DIR/topology"
EXPECTED_DIR="$REPLAY_DIR/expected"
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3

# ---- expected answers (no root, no lab) ---------------------------------------------------------------
derive_all() {
    local d="$LAB_DIR/derive-journeys.py"
    mkdir -p "$EXPECTED_DIR"
    run() { # name topology [derivation options --] files...
        local name=$1 topo=$2; shift 2
        local opts=()
        if [[ " $* " == *" -- "* ]]; then
            while [[ $1 != -- ]]; do opts+=("$1"); shift; done
            shift
        fi
        local f ok=1
        for f in "$@"; do [[ -e $f ]] || ok=0; done
        if ((ok == 0)); then log "derive: $name: capture missing, skipped"; return 0; fi
        log "derive: $name"
        "$PY" "$d" --name "$name" --topology "$topo" "${opts[@]}" --out "$EXPECTED_DIR/$name.json" "$@"
    }
    run masquerade-multi.pcapng "$TOPO_DIR/masquerade-multi.pcapng.tsv" "$CAPTURES_DIR/masquerade-multi.pcapng"
    run any-sll2.pcap "$TOPO_DIR/any-sll2.pcap.tsv" "$CAPTURES_DIR/any-sll2.pcap"
    # east-west: docker0's own copy of a bridged frame is a side copy, not a hop (issue 14 section 3)
    run east-west.pcapng "$TOPO_DIR/east-west.pcapng.tsv" --bridge-copies side -- "$REPLAY_DIR/east-west.pcapng"
    # the overlay (recorded by tests/lab/overlay.sh record): br-ov1 and br-ov2 are side copies the same way
    run overlay-vxlan.pcapng "$TOPO_DIR/overlay-vxlan.pcapng.tsv" --bridge-copies side -- "$REPLAY_DIR/overlay-vxlan.pcapng"
    run firewall-drop.pcapng "$TOPO_DIR/firewall-drop.pcapng.tsv" "$REPLAY_DIR/firewall-drop.pcapng"
    run delay-egress.pcapng "$TOPO_DIR/delay-egress.pcapng.tsv" "$REPLAY_DIR/delay-egress.pcapng"
    local split=("$REPLAY_DIR"/split/*.pcap)
    [[ -e ${split[0]} ]] && run split "$TOPO_DIR/split.tsv" "${split[@]}"
    run gro-iperf3.pcapng "$TOPO_DIR/gro-iperf3.pcapng.tsv" "$REPLAY_DIR/gro-iperf3.pcapng"
}
if ((EXPECTED_ONLY)); then
    derive_all
    exit 0
fi

need_root
[[ -s $ENV_FILE ]] || die "$ENV_FILE missing: run tests/lab/lab-up.sh first"
# shellcheck disable=SC1090
source "$ENV_FILE"
for t in dumpcap mergecap reordercap tcpdump tshark capinfos socat iperf3 ethtool iptables chrt; do
    command -v "$t" >/dev/null || die "$t missing: run tests/lab/install.sh"
done

mkdir -p "$REPLAY_DIR" "$TOPO_DIR" "$STATE_DIR/pids"
WORK=$(mktemp -d /tmp/vt-replay.XXXXXX)
MY_PIDS=()
UNDO=()   # shell commands run (in reverse order) at exit: rule removal, ethtool restore, ...

# ---- process helpers (as in record-captures.sh): every helper has a PID file, stopped by that PID ------
bg() { # name cmd...   (the PID must be the real program's: ip netns exec / nsenter exec in place)
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$STATE_DIR/pids/replay-$name.pid"
    MY_PIDS+=("$name")
}
stop() { # name [signal]
    local name=$1 sig=${2:-TERM} f="$STATE_DIR/pids/replay-$1.pid" pid
    [[ -s $f ]] || return 0
    pid=$(<"$f")
    if [[ -d /proc/$pid ]]; then
        kill -"$sig" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
wait_log() { # name pattern [timeout_s]
    local name=$1 pat=$2 t=${3:-15} i f
    for ((i = 0; i < t * 10; i++)); do
        grep -Eq "$pat" "$WORK/$name.log" 2>/dev/null && return 0
        f="$STATE_DIR/pids/replay-$name.pid"
        [[ -s $f && -d /proc/$(<"$f") ]] || { cat "$WORK/$name.log" >&2; die "$name exited early"; }
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    die "$name: no '$pat' after ${t}s"
}
cap_start() { bg "$@"; wait_log "$1" 'Capturing on|listening on'; sleep 0.5; }
cap_stop() { sleep 1; stop "$1" TERM; grep -E 'packets? (captured|received|dropped)|Packets|dropped' "$WORK/$1.log" | sed "s/^/[$1] /" >&2 || true; }

undo() { UNDO+=("$*"); }
undone() { # the command was run by hand: drop it from UNDO
    local c keep=()
    for c in "${UNDO[@]}"; do [[ $c == "$*" ]] || keep+=("$c"); done
    UNDO=("${keep[@]}")
}
cleanup() {
    local n i
    for n in "${MY_PIDS[@]}"; do stop "$n" TERM; done
    for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do
        log "undo: ${UNDO[i]}"
        eval "${UNDO[i]}" || log "undo failed: ${UNDO[i]}"
    done
    for ns in vt-c1 vt-c2; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_listen() { # netns-or-pidpath proto port
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(nsenter --net="$1" ss -Hln"${2:0:1}" "sport = :$3") ]] && return 0
        sleep 0.1
    done
    die "nothing listening on $2/$3 in $1"
}
UP_NETNS=/run/netns/$UPSTREAM_NS
flush_neigh() {
    ip netns exec "$UPSTREAM_NS" ip neigh flush all 2>/dev/null || true
    ip neigh flush dev "$EGRESS_IF" 2>/dev/null || true
    ip neigh flush dev "$BRIDGE" 2>/dev/null || true
    nsenter --net="$C1_NETNS" ip neigh flush all 2>/dev/null || true
    nsenter --net="$C2_NETNS" ip neigh flush all 2>/dev/null || true
}
attach_ns() { ip netns del "$1" 2>/dev/null || true; ip netns attach "$1" "$2"; }
summary() { capinfos -c -E -T -M -s "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }
topo() { # file, then rows "key<TAB>name<TAB>label<TAB>role<TAB>attach"
    local f=$1; shift
    { printf '# key\tname\tlabel\trole\tattach\n'; printf '%s\n' "$@"; } >"$f"
}
T=$'\t'

# ---- watch the real uplink for the whole run -------------------------------------------------------------
LAB_FILTER_ALL="net $DOCKER_NET or net $UPSTREAM_NET"
if [[ -n ${REAL_UPLINK:-} ]]; then
    UPLINK_TX_BEFORE=$(<"/sys/class/net/$REAL_UPLINK/statistics/tx_packets")
    cap_start uplink-watch tcpdump -Z root -n -i "$REAL_UPLINK" -w "$WORK/uplink-watch.pcap" "$LAB_FILTER_ALL"
fi
iptables -w -C DOCKER-USER -o "$REAL_UPLINK" -j DROP 2>/dev/null || die "the DOCKER-USER drop rule towards $REAL_UPLINK is missing"

F_ALL="arp or (ip and (net $DOCKER_NET or net $UPSTREAM_NET))"
mkdir -p "$WORK/www"
printf 'hello from the upstream namespace (vethtrace lab)\n' >"$WORK/www/index.html"

# =========================================================================================================
# 3. east-west: vt-c1 -> vt-c2 across docker0 (both container eth0s, both veths, docker0)
# =========================================================================================================
if want eastwest; then
    log "== east-west.pcapng"
    out="$REPLAY_DIR/east-west.pcapng"
    F="arp or (ip and net $DOCKER_NET)"
    bg c2-udpecho nsenter --net="$C2_NETNS" socat -T 2 "UDP4-LISTEN:5005,bind=$C2_IP,fork,reuseaddr" PIPE
    wait_listen "$C2_NETNS" udp 5005
    flush_neigh
    attach_ns vt-c1 "$C1_PID"; attach_ns vt-c2 "$C2_PID"
    cap_start ew-host dumpcap -q -n -w "$WORK/ew-host.pcapng" -i "$C1_VETH" -f "$F" -i "$C2_VETH" -f "$F" -i "$BRIDGE" -f "$F"
    cap_start ew-c1 ip netns exec vt-c1 dumpcap -q -n -w "$WORK/ew-c1.pcapng" -i eth0 -f "$F"
    cap_start ew-c2 ip netns exec vt-c2 dumpcap -q -n -w "$WORK/ew-c2.pcapng" -i eth0 -f "$F"
    ip -d link show "$BRIDGE" | grep -o 'promiscuity [0-9]*' | sed "s/^/    $BRIDGE /" >&2
    log "traffic: ICMP echo $C1 -> $C2_IP"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$C2_IP" >/dev/null
    sleep 0.3
    log "traffic: TCP (busybox wget in $C1) -> $C2_IP:80 index.html and object.txt"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$C2_IP/index.html"
    sleep 0.3
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$C2_IP/object.txt"
    sleep 0.3
    log "traffic: UDP 3 datagrams (+ echoes) $C1:40005 -> $C2_IP:5005"
    (for i in 1 2 3; do echo "vethtrace east-west datagram $i"; sleep 0.2; done) |
        nsenter --net="$C1_NETNS" socat -t 1 - "UDP4:$C2_IP:5005,sourceport=40005" >/dev/null
    sleep 0.3
    cap_stop ew-c1; cap_stop ew-c2; cap_stop ew-host
    # Observation for the README: without promiscuous mode the bridge device does not see
    # forwarded (east-west) frames at all; dumpcap above opened docker0 promiscuously (its default).
    cap_start ew-nopromisc tcpdump -Z root -n -p -i "$BRIDGE" -w "$WORK/ew-nopromisc.pcap" "ip and net $DOCKER_NET"
    "$DOCKER" exec "$C1" ping -c 3 -i 0.2 -W 1 "$C2_IP" >/dev/null
    cap_stop ew-nopromisc
    log "east-west ping x3 seen on $BRIDGE without promiscuous mode (tcpdump -p): $(tcpdump -Z root -n -r "$WORK/ew-nopromisc.pcap" 2>/dev/null | wc -l) frames"
    stop c2-udpecho
    ip netns del vt-c1; ip netns del vt-c2
    # IDB order: 0 eth0 (vt-c1), 1 eth0 (vt-c2), 2 C1_VETH, 3 C2_VETH, 4 docker0
    merge "$out" "$WORK/ew-c1.pcapng" "$WORK/ew-c2.pcapng" "$WORK/ew-host.pcapng"
    topo "$TOPO_DIR/east-west.pcapng.tsv" \
        "0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "1${T}eth0${T}eth0(vt-c2)${T}container${T}$C2_VETH" \
        "2${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "3${T}$C2_VETH${T}$C2_VETH${T}veth${T}" \
        "4${T}$BRIDGE${T}$BRIDGE${T}bridge${T}"
    summary "$out"
fi

# =========================================================================================================
# 4. firewall drop between the bridge and the egress: half of one UDP flow is dropped by DOCKER-USER
# =========================================================================================================
if want fwdrop; then
    log "== firewall-drop.pcapng"
    out="$REPLAY_DIR/firewall-drop.pcapng"
    # Datagrams whose IP total length is >= 200 (the 200-byte payloads: ip.len 228) are dropped; the
    # 40-byte ones (ip.len 68) and their echoes pass. Pings pass too.
    RULE=(DOCKER-USER -i "$BRIDGE" -o "$EGRESS_IF" -p udp --dport 9999 -m length --length 200:65535 -j DROP)
    bg up-udpecho9999 ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:9999,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    wait_listen "$UP_NETNS" udp 9999
    iptables -w -I "${RULE[@]}"
    undo "iptables -w -D ${RULE[*]}"
    iptables -w -S DOCKER-USER | sed 's/^/    /' >&2
    flush_neigh
    attach_ns vt-c1 "$C1_PID"
    cap_start fw-host dumpcap -q -n -w "$WORK/fw-host.pcapng" -i "$C1_VETH" -f "$F_ALL" -i "$BRIDGE" -f "$F_ALL" -i "$EGRESS_IF" -f "$F_ALL"
    cap_start fw-c1 ip netns exec vt-c1 dumpcap -q -n -w "$WORK/fw-c1.pcapng" -i eth0 -f "$F_ALL"
    log "traffic: ICMP echo $C1 -> $UPSTREAM_IP (passes)"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" >/dev/null
    sleep 0.3
    log "traffic: UDP $C1:40099 -> $UPSTREAM_IP:9999, 10 datagrams alternating 40 B (pass) / 200 B (dropped)"
    small=$(printf 'vethtrace fwdrop small %016d' 0 | head -c 39)
    big=$(printf 'vethtrace fwdrop big %0178d' 0 | head -c 199)
    (for i in 1 2 3 4 5; do echo "$small"; sleep 0.15; echo "$big"; sleep 0.15; done; sleep 0.5) |
        nsenter --net="$C1_NETNS" socat -t 1 -b 2048 - "UDP4:$UPSTREAM_IP:9999,sourceport=40099" >"$WORK/fw-replies.txt"
    sleep 0.3
    cap_stop fw-c1; cap_stop fw-host
    iptables -w -L DOCKER-USER -v -n -x | sed 's/^/    /' >&2
    iptables -w -L DOCKER-USER -v -n -x | awk '/dpt:9999/ {print $1}' >"$WORK/fw-dropped"
    log "DOCKER-USER dropped $(<"$WORK/fw-dropped") datagrams; $(wc -l <"$WORK/fw-replies.txt") echo replies came back"
    iptables -w -D "${RULE[@]}"
    undone "iptables -w -D ${RULE[*]}"
    stop up-udpecho9999
    ip netns del vt-c1
    merge "$out" "$WORK/fw-c1.pcapng" "$WORK/fw-host.pcapng"
    topo "$TOPO_DIR/firewall-drop.pcapng.tsv" \
        "0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "1${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "2${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
        "3${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}"
    summary "$out"
fi

# =========================================================================================================
# 5. a known delay on exactly one hop: NFQUEUE holds docker0 -> vt-up0 (forwarded, outbound) 5 ms
# =========================================================================================================
DELAY_US=${DELAY_US:-5000}
if want delay; then
    log "== delay-egress.pcapng (hold ${DELAY_US} us between $BRIDGE and $EGRESS_IF)"
    out="$REPLAY_DIR/delay-egress.pcapng"
    # The lab kernel has no sch_netem, so the delay is made in userspace: nfq-delay.py holds every
    # packet that the mangle FORWARD rule queues for DELAY_US, then accepts it (--queue-bypass: if the
    # program is gone, packets pass undelayed instead of being dropped).
    QRULE=(FORWARD -i "$BRIDGE" -o "$EGRESS_IF" -s "$C1_IP" -j NFQUEUE --queue-num 7 --queue-bypass)
    bg up-httpd ip netns exec "$UPSTREAM_NS" busybox httpd -f -p "$UPSTREAM_IP:80" -h "$WORK/www"
    bg up-udpecho ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:5005,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    wait_listen "$UP_NETNS" tcp 80; wait_listen "$UP_NETNS" udp 5005
    # SCHED_FIFO: without it the hold overshoots by up to several ms when the 2 vCPUs are busy.
    bg nfq-delay chrt -f 50 "$PY" "$LAB_DIR/nfq-delay.py" --queue 7 --delay-us "$DELAY_US" --log "$WORK/nfq-holds.tsv"
    wait_log nfq-delay 'bound queue'
    # With the nf_tables backend, the first `iptables -t mangle` creates an (empty) nft table
    # "ip mangle"; delete it again afterwards if it did not exist before.
    MANGLE_CREATED=0
    if command -v nft >/dev/null && [[ $(iptables -V) == *nf_tables* ]] && ! nft list table ip mangle >/dev/null 2>&1; then
        MANGLE_CREATED=1
        undo "nft delete table ip mangle"
    fi
    iptables -w -t mangle -I "${QRULE[@]}"
    undo "iptables -w -t mangle -D ${QRULE[*]}"
    flush_neigh
    attach_ns vt-c1 "$C1_PID"
    cap_start dl-host dumpcap -q -n -w "$WORK/dl-host.pcapng" -i "$C1_VETH" -f "$F_ALL" -i "$BRIDGE" -f "$F_ALL" -i "$EGRESS_IF" -f "$F_ALL"
    cap_start dl-c1 ip netns exec vt-c1 dumpcap -q -n -w "$WORK/dl-c1.pcapng" -i eth0 -f "$F_ALL"
    log "traffic: ICMP echo x10 $C1 -> $UPSTREAM_IP"
    "$DOCKER" exec "$C1" ping -c 10 -i 0.2 -W 1 "$UPSTREAM_IP" | tail -1 >&2
    sleep 0.3
    log "traffic: TCP (busybox wget in $C1) -> $UPSTREAM_IP:80"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$UPSTREAM_IP/index.html"
    sleep 0.3
    log "traffic: UDP 3 datagrams (+ echoes) $C1:40005 -> $UPSTREAM_IP:5005"
    (for i in 1 2 3; do echo "vethtrace delayed datagram $i"; sleep 0.2; done) |
        nsenter --net="$C1_NETNS" socat -t 1 - "UDP4:$UPSTREAM_IP:5005,sourceport=40005" >/dev/null
    sleep 0.3
    cap_stop dl-c1; cap_stop dl-host
    iptables -w -t mangle -L FORWARD -v -n -x | sed 's/^/    /' >&2
    iptables -w -t mangle -D "${QRULE[@]}"
    undone "iptables -w -t mangle -D ${QRULE[*]}"
    if ((MANGLE_CREATED)); then
        nft delete table ip mangle
        undone "nft delete table ip mangle"
    fi
    stop nfq-delay
    stop up-httpd; stop up-udpecho
    ip netns del vt-c1
    cp "$WORK/nfq-holds.tsv" "$REPLAY_DIR/delay-egress.holds.tsv"
    awk -F'\t' '!/^#/ {n++; h=$6/1000; s+=h; if(n==1||h<mn)mn=h; if(h>mx)mx=h; v=$7/1000; vs+=v; if(v>vx)vx=v}
        END {printf "    nfq-delay: %d packets held, hold min %.1f avg %.1f max %.1f us; verdict call avg %.1f max %.1f us\n", n, mn, s/n, mx, vs/n, vx}' \
        "$REPLAY_DIR/delay-egress.holds.tsv" >&2
    merge "$out" "$WORK/dl-c1.pcapng" "$WORK/dl-host.pcapng"
    topo "$TOPO_DIR/delay-egress.pcapng.tsv" \
        "0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "1${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "2${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
        "3${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}"
    summary "$out"
fi

# =========================================================================================================
# 6. one classic pcap per interface (tcpdump, ns), the container's own eth0 included
# =========================================================================================================
if want split; then
    log "== split/*.pcap"
    sdir="$REPLAY_DIR/split"
    rm -rf "$sdir"; mkdir -p "$sdir"
    bg up-httpd ip netns exec "$UPSTREAM_NS" busybox httpd -f -p "$UPSTREAM_IP:80" -h "$WORK/www"
    bg up-udpecho ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:5005,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    wait_listen "$UP_NETNS" tcp 80; wait_listen "$UP_NETNS" udp 5005
    flush_neigh
    attach_ns vt-c1 "$C1_PID"
    TD=(tcpdump -Z root -n --time-stamp-precision=nano)
    cap_start sp-eth0 ip netns exec vt-c1 "${TD[@]}" -i eth0 -w "$sdir/eth0.pcap" "$F_ALL"
    cap_start sp-veth "${TD[@]}" -i "$C1_VETH" -w "$sdir/$C1_VETH.pcap" "$F_ALL"
    cap_start sp-br "${TD[@]}" -i "$BRIDGE" -w "$sdir/$BRIDGE.pcap" "$F_ALL"
    cap_start sp-eg "${TD[@]}" -i "$EGRESS_IF" -w "$sdir/$EGRESS_IF.pcap" "$F_ALL"
    log "traffic: ICMP echo $C1 -> $UPSTREAM_IP"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" >/dev/null
    sleep 0.3
    log "traffic: TCP (busybox wget in $C1) -> $UPSTREAM_IP:80"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$UPSTREAM_IP/index.html"
    sleep 0.3
    log "traffic: UDP 3 datagrams (+ echoes) $C1:40005 -> $UPSTREAM_IP:5005"
    (for i in 1 2 3; do echo "vethtrace split datagram $i"; sleep 0.2; done) |
        nsenter --net="$C1_NETNS" socat -t 1 - "UDP4:$UPSTREAM_IP:5005,sourceport=40005" >/dev/null
    sleep 0.3
    log "traffic: DNAT $UPSTREAM_NS -> $EGRESS_IP:$C2_PUBLISHED_PORT -> $C2:80"
    http_get "$EGRESS_IP" "$C2_PUBLISHED_PORT" /index.html "$UPSTREAM_NS" | grep '200 OK' >/dev/null || die "DNAT GET failed"
    sleep 0.3
    cap_stop sp-eth0; cap_stop sp-veth; cap_stop sp-br; cap_stop sp-eg
    stop up-httpd; stop up-udpecho
    ip netns del vt-c1
    chmod 644 "$sdir"/*.pcap
    topo "$TOPO_DIR/split.tsv" \
        "eth0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "$C1_VETH${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "$BRIDGE${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
        "$EGRESS_IF${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}"
    for f in "$sdir"/*.pcap; do echo "    $(basename "$f")" >&2; summary "$f"; done
fi

# =========================================================================================================
# 8. GRO/GSO segmentation mismatch: iperf3 -n 2M vt-c1 -> upstream, snaplen 128
#    docker0: GSO super-packets from the container (TSO on the veths);
#    vt-up0:  GSO/TSO turned OFF here, so the stack segments to 1448-byte MSS before the tap;
#    up0:     GRO turned ON (veth NAPI), so the receiver coalesces the segments again.
# =========================================================================================================
if want gro; then
    log "== gro-iperf3.pcapng"
    out="$REPLAY_DIR/gro-iperf3.pcapng"
    feat() { awk -v k="$1:" '$1==k {print $2; exit}'; }
    eg_tso=$(ethtool -k "$EGRESS_IF" | feat tcp-segmentation-offload)
    eg_gso=$(ethtool -k "$EGRESS_IF" | feat generic-segmentation-offload)
    up_gro=$(ip netns exec "$UPSTREAM_NS" ethtool -k "$UPSTREAM_IF" | feat generic-receive-offload)
    log "before: $EGRESS_IF tso $eg_tso gso $eg_gso; $UPSTREAM_NS/$UPSTREAM_IF gro $up_gro"
    undo "ethtool -K $EGRESS_IF tso $eg_tso gso $eg_gso"
    undo "ip netns exec $UPSTREAM_NS ethtool -K $UPSTREAM_IF gro $up_gro"
    ethtool -K "$EGRESS_IF" tso off gso off
    ip netns exec "$UPSTREAM_NS" ethtool -K "$UPSTREAM_IF" gro on
    { echo "$EGRESS_IF:"; ethtool -k "$EGRESS_IF" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|rx-gro-list)'
      echo "$UPSTREAM_NS/$UPSTREAM_IF:"; ip netns exec "$UPSTREAM_NS" ethtool -k "$UPSTREAM_IF" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|rx-gro-list)'
      echo "$BRIDGE:"; ethtool -k "$BRIDGE" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload)'
      echo "$C1_VETH:"; ethtool -k "$C1_VETH" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload)'
    } | sed 's/^/    /' >&2
    bg up-iperf3 ip netns exec "$UPSTREAM_NS" iperf3 -s -1 -B "$UPSTREAM_IP" -p 5201
    wait_listen "$UP_NETNS" tcp 5201
    FG="tcp and host $UPSTREAM_IP"
    cap_start gro-host dumpcap -q -n -s 128 -w "$WORK/gro-host.pcapng" -i "$BRIDGE" -s 128 -f "$FG" -i "$EGRESS_IF" -s 128 -f "$FG"
    cap_start gro-up ip netns exec "$UPSTREAM_NS" dumpcap -q -n -s 128 -w "$WORK/gro-up.pcapng" -i "$UPSTREAM_IF" -s 128 -f "$FG"
    log "traffic: iperf3 -c $UPSTREAM_IP -n 2M (from $C1's netns)"
    nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p 5201 -n 2M >"$WORK/iperf3-client.log"
    tail -4 "$WORK/iperf3-client.log" | sed 's/^/    /' >&2
    cap_stop gro-up; cap_stop gro-host
    stop up-iperf3
    ethtool -K "$EGRESS_IF" tso "$eg_tso" gso "$eg_gso"
    undone "ethtool -K $EGRESS_IF tso $eg_tso gso $eg_gso"
    ip netns exec "$UPSTREAM_NS" ethtool -K "$UPSTREAM_IF" gro "$up_gro"
    undone "ip netns exec $UPSTREAM_NS ethtool -K $UPSTREAM_IF gro $up_gro"
    # IDB order: 0 docker0, 1 vt-up0, 2 up0 (in netns upstream)
    merge "$out" "$WORK/gro-host.pcapng" "$WORK/gro-up.pcapng"
    topo "$TOPO_DIR/gro-iperf3.pcapng.tsv" \
        "0${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
        "1${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}" \
        "2${T}$UPSTREAM_IF${T}$UPSTREAM_IF${T}upstream${T}"
    summary "$out"
    for i in 0 1 2; do
        tshark -r "$out" -Y "frame.interface_id == $i" -T fields -e frame.interface_name -e frame.len 2>/dev/null |
            awk '{n++; name=$1; if ($2 > 1514) big++; else if ($2 > 100) mss++; else small++} END {printf "    %-8s frames %5d: > 1514 B %4d, MSS-sized %4d, <= 100 B %4d\n", name, n, big, mss, small}' >&2
    done
fi

# ---- the real uplink must not have seen any of it -----------------------------------------------------------
if [[ -n ${REAL_UPLINK:-} ]]; then
    cap_stop uplink-watch
    leaked=$(tcpdump -Z root -n -r "$WORK/uplink-watch.pcap" 2>/dev/null | wc -l)
    UPLINK_TX_AFTER=$(<"/sys/class/net/$REAL_UPLINK/statistics/tx_packets")
    log "real uplink $REAL_UPLINK: lab packets seen = $leaked; tx_packets $UPLINK_TX_BEFORE -> $UPLINK_TX_AFTER (includes unrelated host traffic)"
    ((leaked == 0)) || { tcpdump -Z root -n -r "$WORK/uplink-watch.pcap" | head >&2; die "lab traffic leaked to $REAL_UPLINK"; }
fi
iptables -w -C DOCKER-USER -o "$REAL_UPLINK" -j DROP 2>/dev/null || die "the DOCKER-USER drop rule towards $REAL_UPLINK disappeared"

chmod 644 "$REPLAY_DIR"/*.pcapng 2>/dev/null || true
if ((RUN_EXPECTED)); then derive_all; fi
log "replay captures recorded in $REPLAY_DIR"

#!/usr/bin/env bash
# Record the captures issue 14 asks for into captures/replay/ from the running lab (tests/lab/lab-up.sh first),
# then derive their expected answers with tests/lab/derive-journeys.py (no VethTrace code).
#
#   tests/lab/record-issue14.sh [--only NAME[,NAME...]] [--no-expected]
#   tests/lab/record-issue14.sh --expected-only      # no root, no lab: only re-derive (into captures/replay/expected/issue14/)
#
# NAME is one of (default: all):
#   blocked   captures/replay/blocked-port.pcapng      DOCKER-USER drops every datagram of one UDP flow (port 9999)
#   anyhop    captures/replay/any-partial.pcap (+ any-partial-ns.pcap) and captures/replay/per-hop/*.pcap
#             (ANYHOP_IPERF="-n 4M -l 16K -b 100M" by default: the iperf3 client options):
#             iperf3 -n 4M + pings + UDP from vt-c1 through MASQUERADE, recorded at the same time with
#             tcpdump -i any (SLL2, -s 128, us; and a second one in ns) and one tcpdump per interface
#             (c1-eth0.pcap, veth.pcap, docker0.pcap, wan.pcap: names as users choose them)
#   eastwest  captures/replay/east-west-bridged.pcapng  vt-c1 -> vt-c2 (ICMP, TCP, iperf3, UDP) on docker0
#   ipv6      captures/replay/ipv6-masq.pcapng         namespaces only: an IPv6 bridge with ip6tables MASQUERADE,
#             MLD/ND of links coming up, ping6 and UDP to an upstream namespace
# The overlay capture (captures/replay/overlay-vxlan.pcapng) is not re-recorded: its expected answers with the
# bridge copies as side copies are derived from the shipped file.
#
# Everything this script adds (the DOCKER-USER rule, netns names, namespaces, helper processes) has "cap14" in its
# name or comment and is removed again on exit, also on error. The real uplink is watched with tcpdump for the
# whole run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL="blocked,anyhop,eastwest,ipv6"
ONLY=$ALL
RUN_EXPECTED=1
EXPECTED_ONLY=0
while (($#)); do
    case $1 in
        --only) ONLY=$2; shift ;;
        --no-expected) RUN_EXPECTED=0 ;;
        --expected-only) EXPECTED_ONLY=1 ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

REPLAY_DIR="$CAPTURES_DIR/replay"
TOPO_DIR="$REPLAY_DIR/topology"
EXPECTED_DIR="$REPLAY_DIR/expected/issue14"   # not expected/: ReplayScenarioTests runs every JSON there, and today's replay gets these wrong
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3

# ---- expected answers (no root, no lab) ---------------------------------------------------------------
derive_all() {
    local d="$LAB_DIR/derive-journeys.py"
    mkdir -p "$EXPECTED_DIR"
    # tshark's per-frame fields of every issue-14 capture (captures/expected/, per-hop files in expected/per-hop/)
    local f caps=()
    for f in "$REPLAY_DIR"/{blocked-port,east-west-bridged,ipv6-masq,many-flows-1000}.pcapng "$REPLAY_DIR"/any-partial{,-ns}.pcap \
        "$REPLAY_DIR"/per-hop/{c1-eth0,veth,docker0,wan}.pcap; do
        [[ -e $f ]] && caps+=("$f")
    done
    ((${#caps[@]})) && bash "$LAB_DIR/expected.sh" "${caps[@]}"
    run() { # name topology [derive options --] files...
        local name=$1 topo=$2; shift 2
        local opts=()
        while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
        shift
        local f ok=1
        for f in "$@"; do [[ -e $f ]] || ok=0; done
        if ((ok == 0)); then log "derive: $name: capture missing, skipped"; return 0; fi
        log "derive: $name"
        "$PY" "$d" --name "$name" --topology "$topo" "${opts[@]}" --out "$EXPECTED_DIR/$name.json" "$@"
    }
    # blocked port: a packet from a container to an address outside every bridge subnet is expected at the egress
    run blocked-port.pcapng "$TOPO_DIR/blocked-port.pcapng.tsv" --inside-net 172.17.0.0/16 -- "$REPLAY_DIR/blocked-port.pcapng"
    run any-partial.pcap "$TOPO_DIR/any-partial.pcap.tsv" --inside-net 172.17.0.0/16 -- "$REPLAY_DIR/any-partial.pcap"
    run any-partial-ns.pcap "$TOPO_DIR/any-partial-ns.pcap.tsv" --inside-net 172.17.0.0/16 -- "$REPLAY_DIR/any-partial-ns.pcap"
    local ph=("$REPLAY_DIR"/per-hop/{c1-eth0,veth,docker0,wan}.pcap)
    run per-hop "$TOPO_DIR/per-hop.tsv" --inside-net 172.17.0.0/16 -- "${ph[@]}"
    # bridged frames: the bridge device's own copy is a side copy, not a hop (issue 14 section 3)
    run east-west-bridged.pcapng "$TOPO_DIR/east-west-bridged.pcapng.tsv" --bridge-copies side -- "$REPLAY_DIR/east-west-bridged.pcapng"
    run east-west.pcapng.side-copies "$TOPO_DIR/east-west.pcapng.tsv" --bridge-copies side -- "$REPLAY_DIR/east-west.pcapng"
    run overlay-vxlan.pcapng.side-copies "$TOPO_DIR/overlay-vxlan.pcapng.tsv" --bridge-copies side -- "$REPLAY_DIR/overlay-vxlan.pcapng"
    # IPv6: link-scoped packets matched only within one link, never NAT
    run ipv6-masq.pcapng "$TOPO_DIR/ipv6-masq.pcapng.tsv" --bridge-copies side --inside-net fd00:42::/64 -- "$REPLAY_DIR/ipv6-masq.pcapng"
    # many flows: the small file that benchmarks/many-flows.py --flows 1000 writes (same seed, same bytes)
    run many-flows-1000.pcapng "$TOPO_DIR/many-flows-1000.pcapng.tsv" --inside-net 172.17.0.0/16 --nat-aggregate --journey-list none -- \
        "$REPLAY_DIR/many-flows-1000.pcapng"
}
if ((EXPECTED_ONLY)); then
    derive_all
    exit 0
fi

need_root
[[ -s $ENV_FILE ]] || die "$ENV_FILE missing: run tests/lab/lab-up.sh first"
# shellcheck disable=SC1090
source "$ENV_FILE"
for t in dumpcap mergecap reordercap tcpdump tshark capinfos socat iperf3 iptables ip6tables; do
    command -v "$t" >/dev/null || die "$t missing: run tests/lab/install.sh"
done

mkdir -p "$REPLAY_DIR" "$TOPO_DIR" "$STATE_DIR/pids"
WORK=$(mktemp -d /tmp/vt-cap14.XXXXXX)
MY_PIDS=()
UNDO=()
V6_NS=(cap14-6c1 cap14-6c2 cap14-6h cap14-6u)

bg() { # name cmd...   (the PID must be the real program's: ip netns exec / nsenter exec in place)
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$STATE_DIR/pids/cap14-$name.pid"
    MY_PIDS+=("$name")
}
stop() { # name [signal]
    local name=$1 sig=${2:-TERM} f="$STATE_DIR/pids/cap14-$1.pid" pid
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
        f="$STATE_DIR/pids/cap14-$name.pid"
        [[ -s $f && -d /proc/$(<"$f") ]] || { cat "$WORK/$name.log" >&2; die "$name exited early"; }
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    die "$name: no '$pat' after ${t}s"
}
cap_start() { bg "$@"; wait_log "$1" 'Capturing on|listening on'; sleep 0.5; }
cap_stop() { sleep 1; stop "$1" TERM; grep -E 'packets? (captured|received|dropped)|Packets|dropped' "$WORK/$1.log" | sed "s/^/[$1] /" >&2 || true; }
undo() { UNDO+=("$*"); }
undone() {
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
    for ns in cap14-c1 cap14-c2 "${V6_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_listen() { # netns-path proto port
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

LAB_FILTER_ALL="net $DOCKER_NET or net $UPSTREAM_NET or net 2001:db8::/32 or net fd00::/8"
if [[ -n ${REAL_UPLINK:-} ]]; then
    UPLINK_TX_BEFORE=$(<"/sys/class/net/$REAL_UPLINK/statistics/tx_packets")
    cap_start uplink-watch tcpdump -Z root -n -i "$REAL_UPLINK" -w "$WORK/uplink-watch.pcap" "$LAB_FILTER_ALL"
fi
iptables -w -C DOCKER-USER -o "$REAL_UPLINK" -j DROP 2>/dev/null || die "the DOCKER-USER drop rule towards $REAL_UPLINK is missing"

F_ALL="arp or (ip and (net $DOCKER_NET or net $UPSTREAM_NET))"
udp_send() { # netns-path dst port sourceport count tag
    local ns=$1 dst=$2 port=$3 sp=$4 n=$5 tag=$6 i
    (for ((i = 1; i <= n; i++)); do echo "vethtrace cap14 $tag datagram $i"; sleep 0.15; done; sleep 0.5) |
        nsenter --net="$ns" socat -t 1 - "UDP4:$dst:$port,sourceport=$sp" || true
}

# =========================================================================================================
# 1. blocked-port: every datagram to 198.51.100.2:9999 is dropped by DOCKER-USER; pings and UDP :5005 pass
# =========================================================================================================
if want blocked; then
    log "== blocked-port.pcapng"
    out="$REPLAY_DIR/blocked-port.pcapng"
    RULE=(DOCKER-USER -s "$C1_IP" -d "$UPSTREAM_IP" -p udp --dport 9999 -m comment --comment cap14-blocked-port -j DROP)
    bg up-udpecho ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:5005,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    wait_listen "$UP_NETNS" udp 5005
    iptables -w -I "${RULE[@]}"
    undo "iptables -w -D ${RULE[*]}"
    iptables -w -S DOCKER-USER | sed 's/^/    /' >&2
    flush_neigh
    attach_ns cap14-c1 "$C1_PID"
    cap_start bp-host dumpcap -q -n -w "$WORK/bp-host.pcapng" -i "$C1_VETH" -f "$F_ALL" -i "$BRIDGE" -f "$F_ALL" -i "$EGRESS_IF" -f "$F_ALL"
    cap_start bp-c1 ip netns exec cap14-c1 dumpcap -q -n -w "$WORK/bp-c1.pcapng" -i eth0 -f "$F_ALL"
    log "traffic: ICMP echo x5 $C1 -> $UPSTREAM_IP (passes)"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" | tail -2 >&2
    log "traffic: UDP 3 datagrams $C1:40005 -> $UPSTREAM_IP:5005 (pass, echoed)"
    udp_send "$C1_NETNS" "$UPSTREAM_IP" 5005 40005 3 pass >"$WORK/bp-echo.txt"
    log "traffic: UDP 8 datagrams $C1:40099 -> $UPSTREAM_IP:9999 (all dropped at the bridge)"
    udp_send "$C1_NETNS" "$UPSTREAM_IP" 9999 40099 8 blocked >/dev/null
    log "traffic: ICMP echo x3 again"
    "$DOCKER" exec "$C1" ping -c 3 -i 0.2 -W 1 "$UPSTREAM_IP" | tail -2 >&2
    sleep 0.3
    cap_stop bp-c1; cap_stop bp-host
    iptables -w -L DOCKER-USER -v -n -x | sed 's/^/    /' >&2
    iptables -w -L DOCKER-USER -v -n -x | awk '/cap14-blocked-port/ {print $1 "\t" $2}' >"$REPLAY_DIR/blocked-port.iptables-counter.tsv"
    log "DOCKER-USER cap14 rule: packets/bytes $(<"$REPLAY_DIR/blocked-port.iptables-counter.tsv"); echoes of :5005: $(wc -l <"$WORK/bp-echo.txt")"
    iptables -w -D "${RULE[@]}"
    undone "iptables -w -D ${RULE[*]}"
    stop up-udpecho
    ip netns del cap14-c1
    merge "$out" "$WORK/bp-c1.pcapng" "$WORK/bp-host.pcapng"
    topo "$TOPO_DIR/blocked-port.pcapng.tsv" \
        "0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "1${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "2${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
        "3${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}"
    summary "$out"
fi

# =========================================================================================================
# 2 + 3. the same traffic as tcpdump -i any (SLL2, us and ns) and as four per-hop pcaps with free names
# =========================================================================================================
if want anyhop; then
    log "== any-partial.pcap, any-partial-ns.pcap, per-hop/*.pcap"
    pdir="$REPLAY_DIR/per-hop"
    rm -rf "$pdir"; mkdir -p "$pdir"
    IPERF_PORT=5214
    FA="(icmp or tcp port $IPERF_PORT or udp port 5005) and (net $DOCKER_NET or net $UPSTREAM_NET)"
    bg up-iperf3 ip netns exec "$UPSTREAM_NS" iperf3 -s -1 -B "$UPSTREAM_IP" -p "$IPERF_PORT"
    bg up-udpecho ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:5005,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    wait_listen "$UP_NETNS" tcp "$IPERF_PORT"; wait_listen "$UP_NETNS" udp 5005
    flush_neigh
    attach_ns cap14-c1 "$C1_PID"
    # the host's ifindex -> name map at recording time (SLL2 carries only the ifindex)
    { printf '# ifindex\tname\n'; ip -o link show | awk -F': ' '{split($2, a, "@"); print $1 "\t" a[1]}'; } >"$REPLAY_DIR/any-partial.interfaces.tsv"
    TD=(tcpdump -Z root -n -s 128 -B 8192)
    cap_start any-us "${TD[@]}" -i any -y LINUX_SLL2 -w "$REPLAY_DIR/any-partial.pcap" "$FA"
    cap_start any-ns "${TD[@]}" -i any -y LINUX_SLL2 --time-stamp-precision=nano -w "$REPLAY_DIR/any-partial-ns.pcap" "$FA"
    cap_start ph-eth0 ip netns exec cap14-c1 "${TD[@]}" -i eth0 -w "$pdir/c1-eth0.pcap" "$FA"
    cap_start ph-veth "${TD[@]}" -i "$C1_VETH" -w "$pdir/veth.pcap" "$FA"
    cap_start ph-br "${TD[@]}" -i "$BRIDGE" -w "$pdir/docker0.pcap" "$FA"
    cap_start ph-wan "${TD[@]}" -i "$EGRESS_IF" -w "$pdir/wan.pcap" "$FA"
    log "traffic: ICMP echo x5 $C1 -> $UPSTREAM_IP"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" | tail -2 >&2
    read -ra iperf_args <<<"${ANYHOP_IPERF:--n 4M -l 16K -b 100M}"
    log "traffic: iperf3 ${iperf_args[*]} $C1 -> $UPSTREAM_IP:$IPERF_PORT"
    nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p "$IPERF_PORT" "${iperf_args[@]}" >"$WORK/iperf3.log"
    tail -4 "$WORK/iperf3.log" | sed 's/^/    /' >&2
    log "traffic: UDP 3 datagrams $C1:40005 -> $UPSTREAM_IP:5005 (+ echoes), ICMP echo x5"
    udp_send "$C1_NETNS" "$UPSTREAM_IP" 5005 40005 3 anyhop >/dev/null
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" | tail -2 >&2
    sleep 0.3
    for n in ph-eth0 ph-veth ph-br ph-wan any-us any-ns; do cap_stop "$n"; done
    stop up-iperf3; stop up-udpecho
    ip netns del cap14-c1
    chmod 644 "$REPLAY_DIR"/any-partial*.pcap "$pdir"/*.pcap
    for f in any-partial.pcap any-partial-ns.pcap; do
        topo "$TOPO_DIR/$f.tsv" \
            "$C1_VETH_IFINDEX${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
            "$BRIDGE_IFINDEX${T}$BRIDGE${T}$BRIDGE${T}bridge${T}" \
            "$EGRESS_IFINDEX${T}$EGRESS_IF${T}$EGRESS_IF${T}egress${T}"
    done
    topo "$TOPO_DIR/per-hop.tsv" \
        "c1-eth0${T}c1-eth0${T}c1-eth0${T}container${T}veth" \
        "veth${T}veth${T}veth${T}veth${T}" \
        "docker0${T}docker0${T}docker0${T}bridge${T}" \
        "wan${T}wan${T}wan${T}egress${T}"
    echo "    veth = $C1_VETH (ifindex $C1_VETH_IFINDEX), docker0 ifindex $BRIDGE_IFINDEX, $EGRESS_IF ifindex $EGRESS_IFINDEX" >&2
    for f in "$REPLAY_DIR"/any-partial*.pcap "$pdir"/*.pcap; do echo "    $(basename "$f")" >&2; summary "$f"; done
fi

# =========================================================================================================
# 4. east-west across docker0: both eth0s, both veths, docker0 (promiscuous, as dumpcap opens it)
# =========================================================================================================
if want eastwest; then
    log "== east-west-bridged.pcapng"
    out="$REPLAY_DIR/east-west-bridged.pcapng"
    F="arp or (ip and net $DOCKER_NET)"
    IPERF_PORT=5214
    bg c2-udpecho nsenter --net="$C2_NETNS" socat -T 2 "UDP4-LISTEN:5005,bind=$C2_IP,fork,reuseaddr" PIPE
    bg c2-iperf3 nsenter --net="$C2_NETNS" iperf3 -s -1 -B "$C2_IP" -p "$IPERF_PORT"
    wait_listen "$C2_NETNS" udp 5005; wait_listen "$C2_NETNS" tcp "$IPERF_PORT"
    flush_neigh
    attach_ns cap14-c1 "$C1_PID"; attach_ns cap14-c2 "$C2_PID"
    cap_start ew-host dumpcap -q -n -s 256 -w "$WORK/ew-host.pcapng" -i "$C1_VETH" -s 256 -f "$F" -i "$C2_VETH" -s 256 -f "$F" -i "$BRIDGE" -s 256 -f "$F"
    cap_start ew-c1 ip netns exec cap14-c1 dumpcap -q -n -s 256 -w "$WORK/ew-c1.pcapng" -i eth0 -s 256 -f "$F"
    cap_start ew-c2 ip netns exec cap14-c2 dumpcap -q -n -s 256 -w "$WORK/ew-c2.pcapng" -i eth0 -s 256 -f "$F"
    ip -d link show "$BRIDGE" | grep -o 'promiscuity [0-9]*' | sed "s/^/    $BRIDGE /" >&2
    log "traffic: ICMP echo x5 $C1 -> $C2_IP"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$C2_IP" | tail -2 >&2
    log "traffic: TCP wget index.html, object.txt; iperf3 -n 1M -l 16K -b 50M; UDP x3 (+ echoes)"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$C2_IP/index.html"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$C2_IP/object.txt"
    nsenter --net="$C1_NETNS" iperf3 -c "$C2_IP" -p "$IPERF_PORT" -n 1M -l 16K -b 50M >"$WORK/ew-iperf3.log"
    tail -4 "$WORK/ew-iperf3.log" | sed 's/^/    /' >&2
    udp_send "$C1_NETNS" "$C2_IP" 5005 40005 3 eastwest >/dev/null
    sleep 0.3
    cap_stop ew-c1; cap_stop ew-c2; cap_stop ew-host
    stop c2-udpecho; stop c2-iperf3
    ip netns del cap14-c1; ip netns del cap14-c2
    merge "$out" "$WORK/ew-c1.pcapng" "$WORK/ew-c2.pcapng" "$WORK/ew-host.pcapng"
    topo "$TOPO_DIR/east-west-bridged.pcapng.tsv" \
        "0${T}eth0${T}eth0(vt-c1)${T}container${T}$C1_VETH" \
        "1${T}eth0${T}eth0(vt-c2)${T}container${T}$C2_VETH" \
        "2${T}$C1_VETH${T}$C1_VETH${T}veth${T}" \
        "3${T}$C2_VETH${T}$C2_VETH${T}veth${T}" \
        "4${T}$BRIDGE${T}$BRIDGE${T}bridge${T}"
    summary "$out"
fi

# =========================================================================================================
# 6. IPv6 through ip6tables MASQUERADE, namespaces only (the lab's dockerd 20.10 has no ip6tables without a
#    restart with "experimental"):
#   cap14-6c1: eth0 fd00:42::2 ──veth── vethc14a ─┐
#                                               ├─ br-c14 fd00:42::1/64 (cap14-6h) ──route── up-c14 2001:db8:14::1 ══veth══ up0 2001:db8:14::2 (cap14-6u)
#   cap14-6c2: eth0 fd00:42::3 ──veth── vethc14b ─┘   ip6tables -t nat -A POSTROUTING -s fd00:42::/64 ! -o br-c14 -j MASQUERADE
# The captures start while the container ends of the veths are still down, so the MLD reports and DAD of the
# links coming up are recorded on several interfaces.
# =========================================================================================================
if want ipv6; then
    log "== ipv6-masq.pcapng"
    out="$REPLAY_DIR/ipv6-masq.pcapng"
    for ns in "${V6_NS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    H=cap14-6h
    ip netns exec $H sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n $H link add br-c14 type bridge
    ip -n $H link set br-c14 up
    ip -n $H addr add fd00:42::1/64 dev br-c14 nodad
    ip link add vethc14a netns $H type veth peer name eth0 netns cap14-6c1
    ip link add vethc14b netns $H type veth peer name eth0 netns cap14-6c2
    ip link add up-c14 netns $H type veth peer name up0 netns cap14-6u
    for v in vethc14a vethc14b; do ip -n $H link set $v master br-c14; ip -n $H link set $v up; done
    ip -n $H link set up-c14 up
    ip -n $H addr add 2001:db8:14::1/64 dev up-c14 nodad
    ip netns exec $H ip6tables -t nat -A POSTROUTING -s fd00:42::/64 ! -o br-c14 -j MASQUERADE
    ip netns exec $H ip6tables -t nat -S POSTROUTING | sed 's/^/    /' >&2
    bg v6-host ip netns exec $H dumpcap -q -n -s 256 -w "$WORK/v6-host.pcapng" -i vethc14a -s 256 -i vethc14b -s 256 -i br-c14 -s 256 -i up-c14 -s 256
    wait_log v6-host 'Capturing on'
    sleep 0.5
    log "links come up: container eth0s, upstream up0"
    ip -n cap14-6c1 addr add fd00:42::2/64 dev eth0 nodad
    ip -n cap14-6c2 addr add fd00:42::3/64 dev eth0 nodad
    ip -n cap14-6c1 link set eth0 up
    ip -n cap14-6c2 link set eth0 up
    ip -n cap14-6u addr add 2001:db8:14::2/64 dev up0 nodad
    ip -n cap14-6u link set up0 up
    bg v6-c1 ip netns exec cap14-6c1 dumpcap -q -n -s 256 -w "$WORK/v6-c1.pcapng" -i eth0 -s 256
    wait_log v6-c1 'Capturing on'
    ip -n cap14-6c1 route add default via fd00:42::1
    ip -n cap14-6c2 route add default via fd00:42::1
    sleep 2.5    # DAD of the link-local addresses, MLD reports (sent twice), router solicitations
    bg v6-udpecho ip netns exec cap14-6u socat -T 2 "UDP6-LISTEN:5005,bind=[2001:db8:14::2],fork,reuseaddr" PIPE
    wait_listen /run/netns/cap14-6u udp 5005
    log "traffic: ping6 x5 fd00:42::2 -> 2001:db8:14::2, UDP x3 [fd00:42::2]:40006 -> [2001:db8:14::2]:5005, ping6 x3 fd00:42::3 -> fd00:42::2"
    ip netns exec cap14-6c1 busybox ping6 -c 5 -i 0.2 -W 1 2001:db8:14::2 | tail -2 >&2
    (for i in 1 2 3; do echo "vethtrace cap14 ipv6 datagram $i"; sleep 0.15; done; sleep 0.5) |
        ip netns exec cap14-6c1 socat -t 1 - "UDP6:[2001:db8:14::2]:5005,sourceport=40006" >/dev/null || true
    ip netns exec cap14-6c2 busybox ping6 -c 3 -i 0.2 -W 1 fd00:42::2 | tail -2 >&2
    sleep 0.5
    cap_stop v6-c1; cap_stop v6-host
    stop v6-udpecho
    ip netns exec $H ip6tables -t nat -L POSTROUTING -v -n -x | sed 's/^/    /' >&2
    ip netns exec $H conntrack -L -f ipv6 2>/dev/null | sed 's/^/    /' >&2 || true
    for ns in "${V6_NS[@]}"; do ip netns del "$ns"; done
    # IDB order: 0 eth0 (cap14-6c1), 1 vethc14a, 2 vethc14b, 3 br-c14, 4 up-c14
    merge "$out" "$WORK/v6-c1.pcapng" "$WORK/v6-host.pcapng"
    topo "$TOPO_DIR/ipv6-masq.pcapng.tsv" \
        "0${T}eth0${T}eth0(cap14-6c1)${T}container${T}vethc14a" \
        "1${T}vethc14a${T}vethc14a${T}veth${T}" \
        "2${T}vethc14b${T}vethc14b${T}veth${T}" \
        "3${T}br-c14${T}br-c14${T}bridge${T}" \
        "4${T}up-c14${T}up-c14${T}egress${T}"
    summary "$out"
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
log "issue 14 captures recorded in $REPLAY_DIR"

#!/usr/bin/env bash
# Record the real captures in captures/ from the running lab (tests/lab/lab-up.sh first), then run
# tests/lab/expected.sh to regenerate captures/expected/*.tsv.
#
#   tests/lab/record-captures.sh [--only NAME[,NAME...]] [--no-expected]
#
# NAME is one of: multi sll2 bulk vlan ipv4frag ipv6frag vxlan tun  (default: all)
#
# All traffic goes between the lab containers, the "upstream" netns and scratch namespaces
# (vt-a, vt-b) created here; the real uplink is watched with tcpdump during the whole run and the
# script fails if a single lab packet shows up there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

ONLY="multi,sll2,bulk,vlan,ipv4frag,ipv6frag,vxlan,tun"
RUN_EXPECTED=1
while (($#)); do
    case $1 in
        --only) ONLY=$2; shift ;;
        --no-expected) RUN_EXPECTED=0 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

[[ -s $ENV_FILE ]] || die "$ENV_FILE missing: run tests/lab/lab-up.sh first"
# shellcheck disable=SC1090
source "$ENV_FILE"
for t in dumpcap mergecap tcpdump tshark capinfos socat iperf3 xz; do
    command -v "$t" >/dev/null || die "$t missing: run tests/lab/install.sh"
done

# Bulk capture size: bytes iperf3 sends. With TSO/GSO on the veths most data frames are ~64 KiB
# super-frames, so the capture file grows by ~144 B per (super)frame + ACK; see captures/README.md.
BULK_BYTES="${BULK_BYTES:-13G}"
BULK_RATE="${BULK_RATE:-4G}"     # iperf3 -b, keeps tcpdump from dropping on 2 cores

mkdir -p "$CAPTURES_DIR" "$STATE_DIR/pids"
WORK=$(mktemp -d /tmp/vt-record.XXXXXX)
MY_PIDS=()

# ---- process helpers: every background helper gets a PID file and is stopped by that PID ----------
bg() { # name cmd...   (cmd may start with A/B = run in netns vt-a/vt-b)
    local name=$1; shift
    # The PID must be the real program's: never background a shell function (that would record the
    # PID of a subshell). `ip netns exec` and `nsenter` exec the program in place, so those are fine.
    case $1 in
        A) shift; set -- ip netns exec vt-a "$@" ;;
        B) shift; set -- ip netns exec vt-b "$@" ;;
    esac
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$STATE_DIR/pids/$name.pid"
    MY_PIDS+=("$name")
}
stop() { # name [signal]
    local name=$1 sig=${2:-TERM} f="$STATE_DIR/pids/$1.pid" pid
    [[ -s $f ]] || return 0
    pid=$(<"$f")
    if [[ -d /proc/$pid ]]; then
        kill -"$sig" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
wait_log() { # name pattern [timeout_s]
    local name=$1 pat=$2 t=${3:-15} i
    for ((i = 0; i < t * 10; i++)); do
        grep -Eq "$pat" "$WORK/$name.log" 2>/dev/null && return 0
        local f="$STATE_DIR/pids/$name.pid"
        [[ -s $f && -d /proc/$(<"$f") ]] || { cat "$WORK/$name.log" >&2; die "$name exited early"; }
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    die "$name: no '$pat' after ${t}s"
}
# A capture is "ready" once it says so; give the kernel socket a moment more.
cap_start() { # name cmd...   (dumpcap prints "Capturing on", tcpdump "listening on")
    local name=$1
    bg "$@"
    wait_log "$name" 'Capturing on|listening on'
    sleep 0.5
}
cap_stop() { sleep 1; stop "$1" TERM; grep -E 'packets? (captured|received|dropped)|Packets|dropped' "$WORK/$1.log" | sed "s/^/[$1] /" >&2 || true; }

cleanup() {
    local n
    for n in "${MY_PIDS[@]}"; do stop "$n" TERM; done
    for ns in vt-a vt-b vt-c1 vt-c2; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_listen() { # netns tcp-port
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]] && return 0
        sleep 0.1
    done
    die "nothing listening on tcp/$2 in netns $1"
}
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# ---- watch the real uplink for the whole run --------------------------------------------------------
LAB_FILTER_ALL="net $DOCKER_NET or net $UPSTREAM_NET or net 10.0.0.0/8 or net 203.0.113.0/24 or net 2001:db8::/32"
if [[ -n ${REAL_UPLINK:-} ]]; then
    UPLINK_TX_BEFORE=$(<"/sys/class/net/$REAL_UPLINK/statistics/tx_packets")
    cap_start uplink-watch tcpdump -Z root -n -i "$REAL_UPLINK" -w "$WORK/uplink-watch.pcap" "$LAB_FILTER_ALL"
fi

# ---- lab services in the upstream netns ---------------------------------------------------------------
mkdir -p "$WORK/www"
printf 'hello from the upstream namespace (vethtrace lab)\n' >"$WORK/www/index.html"
start_upstream_services() {
    bg up-httpd ip netns exec "$UPSTREAM_NS" busybox httpd -f -p "$UPSTREAM_IP:80" -h "$WORK/www"
    bg up-udpecho ip netns exec "$UPSTREAM_NS" socat -T 2 "UDP4-LISTEN:5005,bind=$UPSTREAM_IP,fork,reuseaddr" PIPE
    sleep 0.5
}
stop_upstream_services() { stop up-httpd; stop up-udpecho; }

flush_neigh() { # so ARP shows up in the captures
    ip netns exec "$UPSTREAM_NS" ip neigh flush all 2>/dev/null || true
    ip neigh flush dev "$EGRESS_IF" 2>/dev/null || true
    ip neigh flush dev "$BRIDGE" 2>/dev/null || true
    nsenter --net="$C1_NETNS" ip neigh flush all 2>/dev/null || true
    nsenter --net="$C2_NETNS" ip neigh flush all 2>/dev/null || true
}

# The IPv4 lab traffic used for captures a and b.
lab_traffic() {
    log "traffic: ICMP echo $C1 -> $UPSTREAM_IP"
    "$DOCKER" exec "$C1" ping -c 5 -i 0.2 -W 1 "$UPSTREAM_IP" >/dev/null
    sleep 0.3
    log "traffic: TCP (HTTP GET, busybox wget in $C1) -> $UPSTREAM_IP:80"
    "$DOCKER" exec "$C1" wget -q -O /dev/null "http://$UPSTREAM_IP/index.html"
    sleep 0.3
    log "traffic: UDP 3 datagrams (+ echo replies) $C1 -> $UPSTREAM_IP:5005"
    (for i in 1 2 3; do echo "vethtrace udp datagram $i"; sleep 0.2; done) |
        nsenter --net="$C1_NETNS" socat -t 1 - "UDP4:$UPSTREAM_IP:5005,sourceport=40005" >/dev/null
    sleep 0.3
    log "traffic: DNAT $UPSTREAM_NS -> $EGRESS_IP:$C2_PUBLISHED_PORT -> $C2:80"
    http_get "$EGRESS_IP" "$C2_PUBLISHED_PORT" /object.txt "$UPSTREAM_NS" | grep '200 OK' >/dev/null || die "DNAT GET failed"
    sleep 0.3
}

summary() { # file
    capinfos -c -E -T -M "$1" 2>/dev/null | sed 's/^/    /' >&2 || true
}

# =====================================================================================================
# a. masquerade-multi.pcapng: vt-c1 eth0 (inside its netns) + its veth + vt-c2's veth + docker0 + vt-up0
# =====================================================================================================
if want multi; then
    log "== masquerade-multi.pcapng"
    start_upstream_services
    flush_neigh
    ip netns del vt-c1 2>/dev/null || true
    ip netns attach vt-c1 "$C1_PID"
    F="arp or (ip and (net $DOCKER_NET or net $UPSTREAM_NET))"
    # Host interfaces in one dumpcap (one IDB each, if_name = interface name, if_tsresol = 9).
    cap_start cap-host dumpcap -q -n -w "$WORK/multi-host.pcapng" \
        -i "$C1_VETH" -f "$F" -i "$C2_VETH" -f "$F" -i "$BRIDGE" -f "$F" -i "$EGRESS_IF" -f "$F"
    # The container's own eth0, from inside its netns (ip netns exec also remounts /sys for that netns).
    cap_start cap-c1 ip netns exec vt-c1 dumpcap -q -n -w "$WORK/multi-c1.pcapng" -i eth0 -f "$F"
    lab_traffic
    cap_stop cap-c1
    cap_stop cap-host
    ip netns del vt-c1
    stop_upstream_services
    # A multi-interface dumpcap writes per-interface batches, so its file is not in time order;
    # reordercap sorts it (IDBs unchanged), then mergecap merges chronologically, one IDB per interface.
    reordercap "$WORK/multi-host.pcapng" "$WORK/multi-host-sorted.pcapng" >&2
    mergecap -w "$CAPTURES_DIR/masquerade-multi.pcapng" "$WORK/multi-c1.pcapng" "$WORK/multi-host-sorted.pcapng"
    summary "$CAPTURES_DIR/masquerade-multi.pcapng"
fi

# =====================================================================================================
# b. any-sll2.pcap: tcpdump -i any, LINUX_SLL2, nanosecond pcap
# =====================================================================================================
if want sll2; then
    log "== any-sll2.pcap"
    start_upstream_services
    flush_neigh
    cap_start cap-any tcpdump -Z root -n -i any -y LINUX_SLL2 --time-stamp-precision=nano \
        -w "$CAPTURES_DIR/any-sll2.pcap" "net $DOCKER_NET or net $UPSTREAM_NET"
    lab_traffic
    cap_stop cap-any
    # SLL2 carries only the ifindex: keep the ifindex -> name map of this recording next to it.
    { printf 'ifindex\tifname\trole\n'
      for pair in "$BRIDGE:bridge" "$EGRESS_IF:egress (stand-in uplink)" "$C1_VETH:host veth of $C1" "$C2_VETH:host veth of $C2"; do
          n=${pair%%:*}; printf '%s\t%s\t%s\n' "$(<"/sys/class/net/$n/ifindex")" "$n" "${pair#*:}"
      done; } >"$CAPTURES_DIR/any-sll2.interfaces.tsv"
    stop_upstream_services
    summary "$CAPTURES_DIR/any-sll2.pcap"
    info=$(capinfos -t -E "$CAPTURES_DIR/any-sll2.pcap")
    grep -q 'Linux cooked-mode capture v2' <<<"$info" || die "any-sll2.pcap is not LINUX_SLL2: $info"
    grep -q 'nanosecond pcap' <<<"$info" || die "any-sll2.pcap is not a nanosecond pcap: $info"
fi

# =====================================================================================================
# c. bulk-iperf3.pcap(.xz): iperf3 TCP vt-c1 -> upstream, captured on vt-up0 with snaplen 128
# =====================================================================================================
if want bulk; then
    log "== bulk-iperf3.pcap ($BULK_BYTES at ${BULK_RATE}bit/s)"
    bg up-iperf3 ip netns exec "$UPSTREAM_NS" iperf3 -s -1 -B "$UPSTREAM_IP" -p 5201
    wait_listen "$UPSTREAM_NS" 5201
    raw="$CAPTURES_DIR/bulk-iperf3.pcap"
    rm -f "$raw" "$raw.xz"
    cap_start cap-bulk tcpdump -Z root -n -i "$EGRESS_IF" -s 128 -B 65536 -w "$raw" "tcp and host $UPSTREAM_IP"
    nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p 5201 -n "$BULK_BYTES" -b "$BULK_RATE" -l 128K \
        >"$WORK/iperf3-client.log"
    tail -4 "$WORK/iperf3-client.log" | sed 's/^/    /' >&2
    cap_stop cap-bulk
    stop up-iperf3
    cp "$WORK/cap-bulk.log" "$STATE_DIR/bulk-tcpdump.log"
    summary "$raw"
    log "compressing (xz -9e, multi-threaded)"
    xz -9e -T0 -k -f "$raw"
    (cd "$CAPTURES_DIR" && sha256sum "$(basename "$raw")" >"$(basename "$raw").sha256")
    ls -l "$raw" "$raw.xz" >&2
fi

# =====================================================================================================
# d. mixed link types / encapsulations between scratch namespaces vt-a and vt-b
# =====================================================================================================
scratch_up() { # v6: 1 to keep IPv6 enabled
    local v6=${1:-0} ns
    for ns in vt-a vt-b; do
        ns_exists "$ns" && ip netns del "$ns"
        ip netns add "$ns"
        ip netns exec "$ns" ip link set lo up
        if ((v6 == 0)); then
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        fi
    done
    ip link add va0 netns vt-a type veth peer name vb0 netns vt-b
    ip netns exec vt-a ip link set va0 up
    ip netns exec vt-b ip link set vb0 up
}
scratch_down() { ip netns del vt-a 2>/dev/null || true; ip netns del vt-b 2>/dev/null || true; }
A() { ip netns exec vt-a "$@"; }
B() { ip netns exec vt-b "$@"; }

# --- 802.1Q / 802.1ad tagged frames ------------------------------------------------------------------
# Preferred: real VLAN sub-interfaces on the veth pair, ping across, capture the parent veth.
# Fallback when the kernel has no CONFIG_VLAN_8021Q (e.g. this lab's 6.18 VM kernel): record the same
# traffic untagged between the namespaces, tag it per subnet with tcprewrite, and replay it with
# tcpreplay from vt-a over the veth; the capture is taken on the receiving end vb0 in vt-b (the kernel
# strips the tag into skb metadata on receive; libpcap re-inserts it from PACKET_AUXDATA).
kernel_has_vlan() {
    local ok=1
    ip netns add vt-probe 2>/dev/null || true
    ip -n vt-probe link add vtp0 type veth peer name vtp1 2>/dev/null || true
    ip -n vt-probe link add link vtp0 name vtp0.5 type vlan id 5 2>/dev/null && ok=0
    ip netns del vt-probe 2>/dev/null || true
    return $ok
}
if want vlan; then
    log "== vlan-8021q.pcap"
    if kernel_has_vlan; then
        echo "kernel-vlan" >"$STATE_DIR/vlan-method"
        scratch_up 0
        A ip addr add 10.77.0.1/24 dev va0; B ip addr add 10.77.0.2/24 dev vb0
        for id in 100 200; do
            A ip link add link va0 name "va0.$id" type vlan id "$id"
            B ip link add link vb0 name "vb0.$id" type vlan id "$id"
            A ip addr add "10.$id.0.1/24" dev "va0.$id"; B ip addr add "10.$id.0.2/24" dev "vb0.$id"
            A ip link set "va0.$id" up; B ip link set "vb0.$id" up
        done
        # QinQ: outer 802.1ad S-tag 1000, inner 802.1Q C-tag 30
        A ip link add link va0 name va0.s1000 type vlan proto 802.1ad id 1000
        B ip link add link vb0 name vb0.s1000 type vlan proto 802.1ad id 1000
        A ip link add link va0.s1000 name va0.qq30 type vlan id 30
        B ip link add link vb0.s1000 name vb0.qq30 type vlan id 30
        A ip link set va0.s1000 up; B ip link set vb0.s1000 up
        A ip link set va0.qq30 up; B ip link set vb0.qq30 up
        A ip addr add 10.130.0.1/24 dev va0.qq30; B ip addr add 10.130.0.2/24 dev vb0.qq30
        bg b-udpecho B socat -T 2 UDP4-LISTEN:5005,fork,reuseaddr PIPE
        sleep 0.3
        cap_start cap-vlan A tcpdump -Z root -n -i va0 -w "$CAPTURES_DIR/vlan-8021q.pcap"
        A busybox ping -c 3 -i 0.2 -W 1 10.77.0.2 >/dev/null    # untagged
        A busybox ping -c 3 -i 0.2 -W 1 10.100.0.2 >/dev/null   # VLAN 100
        A busybox ping -c 3 -i 0.2 -W 1 10.200.0.2 >/dev/null   # VLAN 200
        A busybox ping -c 3 -i 0.2 -W 1 10.130.0.2 >/dev/null   # QinQ 1000/30
        echo "udp over vlan 100" | A socat -t 1 - UDP4:10.100.0.2:5005 >/dev/null
        cap_stop cap-vlan
        stop b-udpecho
        scratch_down
    else
        log "kernel has no 802.1Q support (CONFIG_VLAN_8021Q): tcprewrite + tcpreplay fallback"
        echo "tcpreplay-fallback" >"$STATE_DIR/vlan-method"
        command -v tcprewrite >/dev/null && command -v tcpreplay >/dev/null || die "tcpreplay missing: run tests/lab/install.sh"
        # 1) real untagged traffic, one subnet per future tag
        scratch_up 0
        for n in 77 100 200 130; do A ip addr add "10.$n.0.1/24" dev va0; B ip addr add "10.$n.0.2/24" dev vb0; done
        bg b-udpecho B socat -T 2 UDP4-LISTEN:5005,fork,reuseaddr PIPE
        sleep 0.3
        cap_start cap-vlan-src A tcpdump -Z root -n -i va0 -w "$WORK/vlan-src.pcap" 'net 10.0.0.0/8'
        for n in 77 100 200 130; do
            A ip neigh flush all
            A busybox ping -c 3 -i 0.2 -W 1 "10.$n.0.2" >/dev/null
        done
        echo "udp over vlan 100" | A socat -t 1 - UDP4:10.100.0.2:5005 >/dev/null
        cap_stop cap-vlan-src
        stop b-udpecho
        scratch_down
        # 2) tag per subnet: 10.77 untagged, 10.100 -> 802.1Q 100, 10.200 -> 802.1Q 200 (PCP 5),
        #    10.130 -> 802.1ad (S-tag, TPID 0x88a8) 1000. (tcprewrite cannot stack two tags.)
        tcpdump -Z root -r "$WORK/vlan-src.pcap" -w "$WORK/v77.pcap" 'net 10.77.0.0/24' 2>&1 | grep -v "^reading from" >&2 || true
        tcpdump -Z root -r "$WORK/vlan-src.pcap" -w "$WORK/v100-u.pcap" 'net 10.100.0.0/24' 2>&1 | grep -v "^reading from" >&2 || true
        tcpdump -Z root -r "$WORK/vlan-src.pcap" -w "$WORK/v200-u.pcap" 'net 10.200.0.0/24' 2>&1 | grep -v "^reading from" >&2 || true
        tcpdump -Z root -r "$WORK/vlan-src.pcap" -w "$WORK/v130-u.pcap" 'net 10.130.0.0/24' 2>&1 | grep -v "^reading from" >&2 || true
        tcprewrite --enet-vlan=add --enet-vlan-tag=100 --enet-vlan-pri=0 --enet-vlan-cfi=0 -i "$WORK/v100-u.pcap" -o "$WORK/v100.pcap"
        tcprewrite --enet-vlan=add --enet-vlan-tag=200 --enet-vlan-pri=5 --enet-vlan-cfi=0 -i "$WORK/v200-u.pcap" -o "$WORK/v200.pcap"
        tcprewrite --enet-vlan=add --enet-vlan-proto=802.1ad --enet-vlan-tag=1000 --enet-vlan-pri=0 --enet-vlan-cfi=0 \
            -i "$WORK/v130-u.pcap" -o "$WORK/v130.pcap"
        mergecap -F pcap -w "$WORK/vlan-tagged.pcap" "$WORK/v77.pcap" "$WORK/v100.pcap" "$WORK/v200.pcap" "$WORK/v130.pcap"
        # 3) replay over a fresh veth pair (no addresses: nothing answers), capture on the receiver.
        scratch_up 0
        cap_start cap-vlan B tcpdump -Z root -n -i vb0 -w "$CAPTURES_DIR/vlan-8021q.pcap"
        A tcpreplay -q -i va0 "$WORK/vlan-tagged.pcap" >"$WORK/tcpreplay.log" 2>&1 || { cat "$WORK/tcpreplay.log" >&2; die tcpreplay; }
        cap_stop cap-vlan
        scratch_down
    fi
    summary "$CAPTURES_DIR/vlan-8021q.pcap"
fi

# --- IPv4 fragments: ping -s 3000 and a 4000-byte UDP datagram (echoed back, fragmented both ways) ---
if want ipv4frag; then
    log "== ipv4-frag.pcap"
    scratch_up 0
    A ip addr add 10.77.0.1/24 dev va0; B ip addr add 10.77.0.2/24 dev vb0
    bg b-udpecho B socat -T 2 -b 65536 UDP4-LISTEN:5005,fork,reuseaddr PIPE
    sleep 0.3
    cap_start cap-v4frag A tcpdump -Z root -n -i va0 --time-stamp-precision=nano -w "$CAPTURES_DIR/ipv4-frag.pcap"
    A busybox ping -c 2 -i 0.2 -W 1 -s 3000 10.77.0.2 >/dev/null
    head -c 4000 /dev/zero | tr '\0' 'F' | A socat -t 1 -b 65536 - UDP4:10.77.0.2:5005,sourceport=40004 >/dev/null
    A busybox ping -c 1 -W 1 10.77.0.2 >/dev/null            # one unfragmented echo for contrast
    cap_stop cap-v4frag
    stop b-udpecho
    scratch_down
    summary "$CAPTURES_DIR/ipv4-frag.pcap"
fi

# --- IPv6: ICMPv6 echo (incl. fragmented), TCP and UDP over IPv6, 4000-byte UDP (fragmented) --------
if want ipv6frag; then
    log "== ipv6-frag.pcap"
    scratch_up 1
    A sysctl -qw net.ipv6.conf.va0.accept_ra=0 net.ipv6.conf.va0.router_solicitations=0
    B sysctl -qw net.ipv6.conf.vb0.accept_ra=0 net.ipv6.conf.vb0.router_solicitations=0
    A ip -6 addr add 2001:db8:77::1/64 dev va0 nodad
    B ip -6 addr add 2001:db8:77::2/64 dev vb0 nodad
    bg b-udp6echo B socat -T 2 -b 65536 UDP6-LISTEN:5006,fork,reuseaddr PIPE
    bg b-tcp6 B socat TCP6-LISTEN:8006,reuseaddr,fork SYSTEM:'read l; echo "ack: $l"'
    sleep 0.5
    cap_start cap-v6 A tcpdump -Z root -n -i va0 --time-stamp-precision=nano -w "$CAPTURES_DIR/ipv6-frag.pcap" ip6
    A busybox ping6 -c 3 -i 0.2 -W 1 2001:db8:77::2 >/dev/null
    A busybox ping6 -c 1 -W 1 -s 3000 2001:db8:77::2 >/dev/null
    echo "hello over tcp6" | A socat -t 1 - "TCP6:[2001:db8:77::2]:8006" >/dev/null
    echo "hello over udp6" | A socat -t 1 - "UDP6:[2001:db8:77::2]:5006,sourceport=40006" >/dev/null
    head -c 4000 /dev/zero | tr '\0' 'S' | A socat -t 1 -b 65536 - "UDP6:[2001:db8:77::2]:5006,sourceport=40007" >/dev/null
    cap_stop cap-v6
    stop b-tcp6; stop b-udp6echo
    scratch_down
    summary "$CAPTURES_DIR/ipv6-frag.pcap"
fi

# --- VXLAN (VNI 42, UDP/4789) over a veth underlay; captured on the underlay ---------------------------
if want vxlan; then
    log "== vxlan.pcap"
    scratch_up 0
    A ip addr add 203.0.113.1/24 dev va0; B ip addr add 203.0.113.2/24 dev vb0
    A ip link add vx42 type vxlan id 42 local 203.0.113.1 remote 203.0.113.2 dstport 4789 dev va0
    B ip link add vx42 type vxlan id 42 local 203.0.113.2 remote 203.0.113.1 dstport 4789 dev vb0
    A ip addr add 10.42.0.1/24 dev vx42; B ip addr add 10.42.0.2/24 dev vx42
    A ip link set vx42 up; B ip link set vx42 up
    bg b-udpecho B socat -T 2 UDP4-LISTEN:5005,fork,reuseaddr PIPE
    bg b-tcp B socat TCP4-LISTEN:8005,reuseaddr,fork SYSTEM:'read l; echo "ack: $l"'
    sleep 0.5
    cap_start cap-vxlan A tcpdump -Z root -n -i va0 -w "$CAPTURES_DIR/vxlan.pcap"
    A busybox ping -c 3 -i 0.2 -W 1 10.42.0.2 >/dev/null
    echo "hello over vxlan tcp" | A socat -t 1 - TCP4:10.42.0.2:8005 >/dev/null
    echo "hello over vxlan udp" | A socat -t 1 - UDP4:10.42.0.2:5005,sourceport=40042 >/dev/null
    cap_stop cap-vxlan
    stop b-tcp; stop b-udpecho
    scratch_down
    summary "$CAPTURES_DIR/vxlan.pcap"
fi

# --- LINKTYPE_RAW: a socat TUN-over-UDP tunnel between vt-a and vt-b, captured on the tun device ------
if want tun; then
    log "== tun-raw.pcap"
    scratch_up 0
    A ip addr add 10.77.0.1/24 dev va0; B ip addr add 10.77.0.2/24 dev vb0
    bg tun-a A socat "TUN:10.88.0.1/24,tun-name=vttun0,tun-type=tun,iff-no-pi,iff-up" \
        "UDP4-DATAGRAM:10.77.0.2:7000,bind=10.77.0.1:7000"
    bg tun-b B socat "TUN:10.88.0.2/24,tun-name=vttun0,tun-type=tun,iff-no-pi,iff-up" \
        "UDP4-DATAGRAM:10.77.0.1:7000,bind=10.77.0.2:7000"
    for ((i = 0; i < 50; i++)); do
        A ip link show vttun0 >/dev/null 2>&1 && B ip link show vttun0 >/dev/null 2>&1 && break
        sleep 0.1
    done
    bg b-tcp B socat TCP4-LISTEN:8005,bind=10.88.0.2,reuseaddr,fork SYSTEM:'read l; echo "ack: $l"'
    sleep 0.5
    cap_start cap-tun A tcpdump -Z root -n -i vttun0 -w "$CAPTURES_DIR/tun-raw.pcap"
    A busybox ping -c 3 -i 0.2 -W 1 10.88.0.2 >/dev/null
    echo "hello over tun" | A socat -t 1 - TCP4:10.88.0.2:8005 >/dev/null
    cap_stop cap-tun
    stop b-tcp; stop tun-a; stop tun-b
    scratch_down
    summary "$CAPTURES_DIR/tun-raw.pcap"
fi

# ---- the real uplink must not have seen any of it -------------------------------------------------------
if [[ -n ${REAL_UPLINK:-} ]]; then
    cap_stop uplink-watch
    leaked=$(tcpdump -Z root -n -r "$WORK/uplink-watch.pcap" 2>/dev/null | wc -l)
    UPLINK_TX_AFTER=$(<"/sys/class/net/$REAL_UPLINK/statistics/tx_packets")
    log "real uplink $REAL_UPLINK: lab packets seen = $leaked; tx_packets $UPLINK_TX_BEFORE -> $UPLINK_TX_AFTER (includes unrelated host traffic)"
    ((leaked == 0)) || { tcpdump -Z root -n -r "$WORK/uplink-watch.pcap" | head >&2; die "lab traffic leaked to $REAL_UPLINK"; }
fi

if ((RUN_EXPECTED)); then
    "$LAB_DIR/expected.sh"
fi
log "captures recorded in $CAPTURES_DIR"

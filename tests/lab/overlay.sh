#!/usr/bin/env bash
# A two-host overlay (VXLAN) datapath built from network namespaces, for issue 6.
#
#   tests/lab/overlay.sh up | down
#   tests/lab/overlay.sh record      # up, then record captures/replay/overlay-vxlan.pcapng (+ topology), then down
#
# Docker's overlay driver needs a swarm, and on one node it bridges containers locally without VXLAN; so
# the multi-host datapath it builds (a bridge and a VXLAN device per host, hosts linked by an underlay) is
# made here by hand, with the same devices:
#
#   netns vt-ovc1                netns vt-ovh1 ("host 1")                     netns vt-ovh2 ("host 2")                  netns vt-ovc2
#   eth0 10.42.0.1/24 ──veth── vethov1 ─ br-ov1 ─ vxlan1 (VNI 42) ~ wire1 203.0.113.1 ══ wire2 203.0.113.2 ~ vxlan2 ─ br-ov2 ─ vethov2 ──veth── eth0 10.42.0.2/24
#
# The containers' MTU is 1450 (as Docker's overlay sets it), so an encapsulated frame fits the wire's 1500.
# Nothing here reaches the host's namespace or any real interface. `down` deletes the four namespaces,
# which removes every device in them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

OV_HOSTS=(vt-ovh1 vt-ovh2)
OV_CONTAINERS=(vt-ovc1 vt-ovc2)

down() {
    local ns
    for ns in "${OV_CONTAINERS[@]}" "${OV_HOSTS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

up() {
    down
    local ns
    for ns in "${OV_HOSTS[@]}" "${OV_CONTAINERS[@]}"; do
        ip netns add "$ns"
        # No IPv6: its router and multicast-listener chatter on fresh links would crowd the recorded traffic.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    # The underlay: one veth "wire" between the two hosts.
    ip link add wire1 netns vt-ovh1 type veth peer name wire2 netns vt-ovh2
    ip -n vt-ovh1 addr add 203.0.113.1/24 dev wire1
    ip -n vt-ovh2 addr add 203.0.113.2/24 dev wire2
    local i local_ip remote_ip
    for i in 1 2; do
        ns=vt-ovh$i
        if ((i == 1)); then local_ip=203.0.113.1 remote_ip=203.0.113.2; else local_ip=203.0.113.2 remote_ip=203.0.113.1; fi
        ip -n "$ns" link set "wire$i" up
        ip -n "$ns" link add "br-ov$i" type bridge
        ip -n "$ns" link add "vxlan$i" type vxlan id 42 local "$local_ip" remote "$remote_ip" dstport 4789 dev "wire$i"
        ip -n "$ns" link set "vxlan$i" master "br-ov$i"
        ip link add "vethov$i" netns "$ns" type veth peer name eth0 netns "vt-ovc$i"
        ip -n "$ns" link set "vethov$i" master "br-ov$i"
        ip -n "vt-ovc$i" link set eth0 mtu 1450
        ip -n "vt-ovc$i" addr add "10.42.0.$i/24" dev eth0
        ip -n "vt-ovc$i" link set eth0 up
        ip -n "$ns" link set "vethov$i" up
        ip -n "$ns" link set "vxlan$i" up
        ip -n "$ns" link set "br-ov$i" up
    done
    # A first ping fills the ARP caches and the VXLAN FDBs, so the recorded traffic is the steady state.
    ip netns exec vt-ovc1 busybox ping -c 2 -i 0.2 -W 1 10.42.0.2 >/dev/null || die "overlay: 10.42.0.1 cannot reach 10.42.0.2"
    log "overlay is up: vt-ovc1 10.42.0.1 -> vt-ovc2 10.42.0.2 over VXLAN 42 on wire1 203.0.113.1 = wire2 203.0.113.2"
}

# One dumpcap per namespace (each sees only its own interfaces), ICMP, TCP and UDP from vt-ovc1 to vt-ovc2, then
# reordercap + mergecap into one pcapng with one IDB per interface, and the topology file the derivation reads.
record() {
    local out="$CAPTURES_DIR/replay/overlay-vxlan.pcapng" topo="$CAPTURES_DIR/replay/topology/overlay-vxlan.pcapng.tsv"
    local f
    work=$(mktemp -d) pids=()
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; down; rm -rf "$work"' EXIT
    up
    # The fresh links' IGMP membership reports are left out: both containers send the same report (IP id 0, same
    # group), so no matcher can tell the two apart; inside VXLAN too ("not igmp" sees only the outer header).
    local filter="not igmp and not (udp port 4789 and udp[39] = 2)"
    ip netns exec vt-ovc2 socat -T 2 TCP4-LISTEN:8005,bind=10.42.0.2,fork,reuseaddr SYSTEM:cat >/dev/null 2>&1 &
    pids+=($!)
    ip netns exec vt-ovc2 socat -T 2 UDP4-LISTEN:5005,bind=10.42.0.2,fork,reuseaddr PIPE >/dev/null 2>&1 &
    pids+=($!)
    ip netns exec vt-ovc1 dumpcap -q -n -w "$work/c1.pcapng" -i eth0 -f "$filter" 2>"$work/c1.log" &
    pids+=($!)
    ip netns exec vt-ovh1 dumpcap -q -n -w "$work/h1.pcapng" -i vethov1 -f "$filter" -i br-ov1 -f "$filter" -i vxlan1 -f "$filter" -i wire1 -f "$filter" 2>"$work/h1.log" &
    pids+=($!)
    ip netns exec vt-ovh2 dumpcap -q -n -w "$work/h2.pcapng" -i wire2 -f "$filter" -i vxlan2 -f "$filter" -i br-ov2 -f "$filter" -i vethov2 -f "$filter" 2>"$work/h2.log" &
    pids+=($!)
    ip netns exec vt-ovc2 dumpcap -q -n -w "$work/c2.pcapng" -i eth0 -f "$filter" 2>"$work/c2.log" &
    pids+=($!)
    sleep 2
    log "traffic: ICMP echo x5, TCP 10.42.0.1 -> 10.42.0.2:8005, UDP x3 -> 10.42.0.2:5005"
    ip netns exec vt-ovc1 busybox ping -c 5 -i 0.2 -W 1 10.42.0.2 >/dev/null
    echo "hello across the overlay" | ip netns exec vt-ovc1 socat -t 1 - TCP4:10.42.0.2:8005 >/dev/null
    (for i in 1 2 3; do echo "overlay datagram $i"; sleep 0.2; done) |
        ip netns exec vt-ovc1 socat -t 1 - UDP4:10.42.0.2:5005,sourceport=40005 >/dev/null
    sleep 1
    for f in "${pids[@]:2}"; do kill -TERM "$f"; done
    wait "${pids[@]:2}" 2>/dev/null || true
    # IDB order: 0 eth0 (vt-ovc1), 1 eth0 (vt-ovc2), 2-5 host 1, 6-9 host 2
    merge "$out" "$work/c1.pcapng" "$work/c2.pcapng" "$work/h1.pcapng" "$work/h2.pcapng"
    local T=$'\t'
    {
        printf '# key\tname\tlabel\trole\tattach\n'
        printf '%s\n' "0${T}eth0${T}eth0(vt-ovc1)${T}container${T}vethov1" "1${T}eth0${T}eth0(vt-ovc2)${T}container${T}vethov2" \
            "2${T}vethov1${T}vethov1${T}veth${T}br-ov1" "3${T}br-ov1${T}br-ov1${T}bridge${T}vxlan1" "4${T}vxlan1${T}vxlan1${T}tunnel${T}wire1" \
            "5${T}wire1${T}wire1${T}egress${T}wire2" "6${T}wire2${T}wire2${T}egress${T}vxlan2" "7${T}vxlan2${T}vxlan2${T}tunnel${T}br-ov2" \
            "8${T}br-ov2${T}br-ov2${T}bridge${T}vethov2" "9${T}vethov2${T}vethov2${T}veth${T}br-ov2"
    } >"$topo"
    capinfos -c -E -s "$out" | sed 's/^/    /' >&2
    log "recorded $out"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    record) record ;;
    *) sed -n '2,4p' "$0" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Undo tests/lab/podman-up.sh (idempotent): remove the Podman lab tests' containers (podman19-t-*), stop the
# `podman system service` podman-up.sh started (by its recorded PID only), remove the two iptables rules.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

GUARD_COMMENT="vethtrace-lab podman0 uplink guard"
DNAT_COMMENT="vethtrace-lab podman published ports"

if command -v podman >/dev/null; then
    for c in $(podman ps -a --format '{{.Names}}' | grep '^podman19-t-' || true); do
        podman rm -f -t 0 "$c" >/dev/null && log "removed podman container $c"
    done
fi
if [[ -f $STATE_DIR/podman-service.pid ]]; then
    pid=$(<"$STATE_DIR/podman-service.pid")
    if [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]]; then
        kill -TERM "$pid" && log "stopped podman system service (pid $pid)"
    fi
    rm -f "$STATE_DIR/podman-service.pid"
fi
rm -f /etc/containers/containers.conf.d/50-vethtrace-lab.conf # podman-up.sh's choice of netavark
UPLINK=$(real_uplink)
if [[ -n $UPLINK ]]; then
    while iptables -w -t mangle -D FORWARD -i podman0 -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null; do :; done
fi
while iptables -w -D FORWARD -o podman0 -m conntrack --ctstate DNAT -m comment --comment "$DNAT_COMMENT" -j ACCEPT 2>/dev/null; do :; done
# netavark's own chains and jumps, which it leaves behind when its last container is gone (the lab's containers were
# removed above): the jumps first, then the emptied chains. Only chains named NETAVARK*, which nothing else makes.
while iptables -w -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD 2>/dev/null; do :; done
for chain in PREROUTING OUTPUT; do
    while iptables -w -t nat -D "$chain" -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT 2>/dev/null; do :; done
done
while iptables -w -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ 2>/dev/null; do :; done
for table in filter nat; do
    for chain in $(iptables -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
        iptables -w -t "$table" -F "$chain" 2>/dev/null || true
        iptables -w -t "$table" -X "$chain" 2>/dev/null || true
    done
done

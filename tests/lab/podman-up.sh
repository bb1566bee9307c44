#!/usr/bin/env bash
# Rootful Podman beside the lab's dockerd, for the Podman lab tests (issue 19). Idempotent; starts nothing when
# podman is not installed. Leaves dockerd and its rules alone.
#
# - `podman system service --time=0 unix:///run/podman/podman.sock`, started here (PID in $STATE_DIR/podman-service.pid)
#   unless something already answers on that socket;
# - the lab image, from Docker's copy (`docker save | podman load`): no registry is contacted;
# - safety: netavark puts its NETAVARK_FORWARD jump (which ACCEPTs everything from 10.88.0.0/16) ahead of DOCKER-USER,
#   so the lab's uplink DROP there does not cover podman0. A mangle-table FORWARD DROP (netavark does not touch that
#   table) stops podman0 traffic to the real uplink whatever the filter table's order;
# - published ports: Docker's FORWARD policy is DROP and netavark 1.4 (Debian 12) only accepts replies to podman0, so
#   a DNATed connection from the upstream namespace needs an ACCEPT for conntrack state DNAT to podman0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

PODMAN_SOCKET=/run/podman/podman.sock
PODMAN_IMAGE="localhost/$IMAGE"
GUARD_COMMENT="vethtrace-lab podman0 uplink guard"
DNAT_COMMENT="vethtrace-lab podman published ports"

command -v podman >/dev/null || { log "podman not installed: skipping the Podman lab"; exit 0; }

podman_ok() { curl -sf --max-time 3 --unix-socket "$PODMAN_SOCKET" http://podman/_ping >/dev/null 2>&1; }

UPLINK=$(real_uplink)
if [[ -n $UPLINK ]]; then
    iptables -w -t mangle -C FORWARD -i podman0 -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null \
        || iptables -w -t mangle -I FORWARD 1 -i podman0 -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP
fi
iptables -w -C FORWARD -o podman0 -m conntrack --ctstate DNAT -m comment --comment "$DNAT_COMMENT" -j ACCEPT 2>/dev/null \
    || iptables -w -A FORWARD -o podman0 -m conntrack --ctstate DNAT -m comment --comment "$DNAT_COMMENT" -j ACCEPT

# The lab's bridge is netavark's podman0 (the tests and the guards above name it). Podman picks its backend once and
# keeps the choice (/var/lib/containers/storage/defaultNetworkBackend): CNI when netavark was missing or CNI networks
# were configured at its first use (the CNI node's files in /etc/cni/net.d), so say netavark here; podman-down.sh
# removes the file.
BACKEND_CONF=/etc/containers/containers.conf.d/50-vethtrace-lab.conf
if [[ -x /usr/lib/podman/netavark && ! -f $BACKEND_CONF ]]; then
    mkdir -p "$(dirname "$BACKEND_CONF")"
    printf '# written by tests/lab/podman-up.sh, removed by podman-down.sh\n[network]\nnetwork_backend = "netavark"\n' >"$BACKEND_CONF"
fi
# A bridge the CNI backend left (cni-podman0) holds podman's 10.88.0.1/16 and its route, so podman0's replies would
# leave by it: removed when nothing is plugged into it.
if [[ -f $BACKEND_CONF && -d /sys/class/net/cni-podman0/brif && -z $(ls /sys/class/net/cni-podman0/brif) ]]; then
    ip link del cni-podman0 && log "removed the CNI backend's empty bridge cni-podman0 (podman now uses netavark's podman0)"
fi

if ! podman_ok; then
    mkdir -p /run/podman "$STATE_DIR"
    log "starting podman system service on $PODMAN_SOCKET"
    nohup podman system service --time=0 "unix://$PODMAN_SOCKET" >"$STATE_DIR/podman-service.log" 2>&1 &
    echo $! >"$STATE_DIR/podman-service.pid"
    for ((i = 0; i < 50; i++)); do podman_ok && break; sleep 0.2; done
    podman_ok || die "podman system service did not answer on $PODMAN_SOCKET (see $STATE_DIR/podman-service.log)"
fi

if ! podman image exists "$PODMAN_IMAGE"; then
    log "loading $IMAGE into podman from docker"
    "$DOCKER" save "$IMAGE" | podman load >/dev/null
fi
log "podman up: $(podman --version), socket $PODMAN_SOCKET"

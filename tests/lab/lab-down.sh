#!/usr/bin/env bash
# Tear the VethTrace Docker lab down (idempotent).
#
#   tests/lab/lab-down.sh [--keep-docker]
#
# Removes the lab containers, the "upstream" netns, vt-up0, the scratch namespaces of
# record-captures.sh, the DOCKER-USER drop rule, and stops containerd/dockerd only if
# docker-up.sh started them (by the PIDs it recorded). The image vethtrace/busybox:lab is kept.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

KEEP_DOCKER=0
for a in "$@"; do
    case $a in
        --keep-docker) KEEP_DOCKER=1 ;;
        -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done

# Leftover helper processes of an interrupted record-captures.sh (only PIDs it recorded).
if [[ -d $STATE_DIR/pids ]]; then
    for f in "$STATE_DIR"/pids/*.pid; do
        [[ -e $f ]] || continue
        pid=$(<"$f")
        if [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]]; then
            log "killing leftover helper $(basename "$f" .pid) (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
fi

# Podman first (issue 19): its test containers, the service podman-up.sh started, its iptables rules.
"$LAB_DIR/podman-down.sh"
# The CNI node (issue 19): DEL through the plugin, the pods' namespaces, cni0, the VXLAN device, their rules.
"$LAB_DIR/cni-down.sh"

# Containers.
if command -v "$DOCKER" >/dev/null && docker_ok; then
    for c in "$C1" "$C2"; do
        if "$DOCKER" inspect "$c" >/dev/null 2>&1; then
            "$DOCKER" rm -f "$c" >/dev/null && log "removed container $c"
        fi
    done
fi

# What an interrupted NetworkModeTests run may have left: its containers, networks and the macvlan parent.
if command -v "$DOCKER" >/dev/null && docker_ok; then
    for c in $("$DOCKER" ps -aq --filter name=vt-mode- 2>/dev/null); do "$DOCKER" rm -f "$c" >/dev/null && log "removed container $c"; done
    for n in $("$DOCKER" network ls -q --filter name=vt-mode- 2>/dev/null); do "$DOCKER" network rm "$n" >/dev/null && log "removed network $n"; done
fi
ip link del vt-mvp 2>/dev/null && log "deleted vt-mvp"

# Upstream namespace + veth (deleting one end of a veth removes the peer).
if ip link show "$EGRESS_IF" >/dev/null 2>&1; then
    ip link del "$EGRESS_IF" && log "deleted $EGRESS_IF"
fi
for ns in "$UPSTREAM_NS" vt-a vt-b vt-c1 vt-c2 vt-probe vt-mvlan vt-ovc1 vt-ovc2 vt-ovh1 vt-ovh2; do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
        ip netns del "$ns" && log "deleted netns $ns"
    fi
done

# The DOCKER-USER drop rule(s) we added (the uplink name is recorded by lab-up.sh).
uplinks=()
[[ -s $STATE_DIR/uplink-drop-rule ]] && uplinks+=("$(<"$STATE_DIR/uplink-drop-rule")")
u=$(real_uplink); [[ -n $u ]] && uplinks+=("$u")
for u in "${uplinks[@]}"; do
    while iptables -w -C DOCKER-USER -o "$u" -j DROP 2>/dev/null; do
        iptables -w -D DOCKER-USER -o "$u" -j DROP
        log "removed: DOCKER-USER -o $u -j DROP"
    done
done
rm -f "$STATE_DIR/uplink-drop-rule"

# Daemons: only those docker-up.sh started.
stopped_docker=0
if ((KEEP_DOCKER == 0)); then
    if [[ -s $STATE_DIR/dockerd.started ]]; then
        cp "$STATE_DIR/dockerd.started" "$STATE_DIR/dockerd.stop"
        stop_pidfile "$STATE_DIR/dockerd.stop" dockerd 30
        rm -f "$STATE_DIR/dockerd.started" "$STATE_DIR/dockerd.pid"
        stopped_docker=1
    fi
    if [[ -s $STATE_DIR/containerd.pid ]]; then
        stop_pidfile "$STATE_DIR/containerd.pid" containerd 20
    fi
fi

# If we stopped the dockerd we had started, also remove what that dockerd left in the host network
# (docker0 and its iptables chains/rules; dockerd re-creates them on its next start).
purge_docker_net() {
    local t rule
    for t in filter nat; do
        iptables -w -t "$t" -S 2>/dev/null | grep -E '^-A (FORWARD|PREROUTING|OUTPUT|POSTROUTING) .*(DOCKER|docker0|172\.17\.0\.0/16)' |
            while read -r rule; do
                # shellcheck disable=SC2086
                iptables -w -t "$t" ${rule/-A/-D} 2>/dev/null || true
            done
        for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
            iptables -w -t "$t" -F "$c" 2>/dev/null || true
        done
        for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
            iptables -w -t "$t" -X "$c" 2>/dev/null || true
        done
    done
    if [[ -s $STATE_DIR/forward-policy.orig ]]; then
        iptables -w -P FORWARD "$(<"$STATE_DIR/forward-policy.orig")" && rm -f "$STATE_DIR/forward-policy.orig"
    fi
    ip link del docker0 2>/dev/null || true
    log "removed docker0 and Docker's iptables chains (left by the dockerd we started)"
}
if ((stopped_docker == 1)); then purge_docker_net; fi

# ip_forward: restore only if we enabled it and no dockerd (which needs it) is left running by us.
if [[ -s $STATE_DIR/ip_forward.orig ]] && { ((stopped_docker == 1)) || ! docker_ok; }; then
    sysctl -qw net.ipv4.ip_forward="$(<"$STATE_DIR/ip_forward.orig")"
    log "restored net.ipv4.ip_forward=$(<"$STATE_DIR/ip_forward.orig")"
    rm -f "$STATE_DIR/ip_forward.orig"
fi

rm -f "$ENV_FILE"
log "lab is down"

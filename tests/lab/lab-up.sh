#!/usr/bin/env bash
# Bring the VethTrace Docker lab up (idempotent; re-running repairs/keeps what exists).
#
#   tests/lab/lab-up.sh [--skip-install]
#
# Topology (all traffic stays inside this machine):
#
#   vt-c1 eth0 ──veth── vethXXX ─┐                                          netns "upstream"
#                                ├─ docker0 172.17.0.1/16 ── (MASQUERADE) ── vt-up0 198.51.100.1/24 ══ up0 198.51.100.2/24
#   vt-c2 eth0 ──veth── vethYYY ─┘  (vt-c2: busybox httpd :80, published as 198.51.100.1:8080 -> DNAT)
#
# The netns "upstream" has no default route, and DOCKER-USER drops anything forwarded to the real
# uplink (the default-route interface), so no container packet can leave the machine.
# State for the other scripts (and for tests) is written to /run/vethtrace-lab/env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

SKIP_INSTALL=0
for a in "$@"; do
    case $a in
        --skip-install) SKIP_INSTALL=1 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done
[[ ${VT_SKIP_INSTALL:-0} == 1 ]] && SKIP_INSTALL=1

mkdir -p "$STATE_DIR"
if ((SKIP_INSTALL == 0)); then "$LAB_DIR/install.sh"; fi
"$LAB_DIR/docker-up.sh"

# --- safety first: no container packet may be forwarded to the real uplink ---------------------------
UPLINK=$(real_uplink)
if [[ -n $UPLINK ]]; then
    [[ $UPLINK != "$EGRESS_IF" ]] || die "default route points at $EGRESS_IF?"
    # dockerd creates DOCKER-USER at startup; wait for it briefly if it is still starting.
    for ((i = 0; i < 50; i++)); do iptables -w -n -L DOCKER-USER >/dev/null 2>&1 && break; sleep 0.2; done
    iptables -w -n -L DOCKER-USER >/dev/null 2>&1 || iptables -w -N DOCKER-USER
    iptables -w -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -w -I FORWARD 1 -j DOCKER-USER
    if ! iptables -w -C DOCKER-USER -o "$UPLINK" -j DROP 2>/dev/null; then
        iptables -w -I DOCKER-USER -o "$UPLINK" -j DROP
        log "added: iptables -I DOCKER-USER -o $UPLINK -j DROP"
    fi
    echo "$UPLINK" >"$STATE_DIR/uplink-drop-rule"
else
    log "no default route: nothing to protect"
fi

# --- ip forwarding ----------------------------------------------------------------------------------
if [[ $(sysctl -n net.ipv4.ip_forward) != 1 ]]; then
    [[ -e $STATE_DIR/ip_forward.orig ]] || sysctl -n net.ipv4.ip_forward >"$STATE_DIR/ip_forward.orig"
    sysctl -qw net.ipv4.ip_forward=1
    log "enabled net.ipv4.ip_forward"
fi

# --- the "upstream" namespace and the vt-up0 veth ----------------------------------------------------
if ! ip netns list | awk '{print $1}' | grep -qx "$UPSTREAM_NS"; then
    ip netns add "$UPSTREAM_NS"
    log "created netns $UPSTREAM_NS"
fi
if ! ip link show "$EGRESS_IF" >/dev/null 2>&1; then
    ip link add "$EGRESS_IF" type veth peer name "$UPSTREAM_IF" netns "$UPSTREAM_NS"
    log "created veth $EGRESS_IF <-> $UPSTREAM_NS/$UPSTREAM_IF"
fi
ip netns exec "$UPSTREAM_NS" ip link show "$UPSTREAM_IF" >/dev/null 2>&1 ||
    die "$EGRESS_IF exists but its peer $UPSTREAM_IF is not in netns $UPSTREAM_NS; run lab-down.sh first"
ip addr replace "$EGRESS_IP/$UPSTREAM_PREFIX" dev "$EGRESS_IF"
ip link set "$EGRESS_IF" up
ip netns exec "$UPSTREAM_NS" ip link set lo up
ip netns exec "$UPSTREAM_NS" ip addr replace "$UPSTREAM_IP/$UPSTREAM_PREFIX" dev "$UPSTREAM_IF"
ip netns exec "$UPSTREAM_NS" ip link set "$UPSTREAM_IF" up
# No IPv6 chatter (router solicitations, MLD) on the lab links; keeps the captures IPv4-only.
sysctl -qw "net.ipv6.conf.$EGRESS_IF.disable_ipv6=1" 2>/dev/null || true
ip netns exec "$UPSTREAM_NS" sysctl -qw "net.ipv6.conf.$UPSTREAM_IF.disable_ipv6=1" 2>/dev/null || true
# Deliberately NO default route in $UPSTREAM_NS: it can only answer on-link 198.51.100.0/24.

# --- containers ---------------------------------------------------------------------------------------
ensure_container() { # name, extra docker run args..., -- cmd...
    local name=$1; shift
    local state
    state=$("$DOCKER" inspect -f '{{.State.Status}}' "$name" 2>/dev/null || true)
    case $state in
        running) log "container $name running" ; return ;;
        "") ;;
        *) log "container $name is $state; recreating"; "$DOCKER" rm -f "$name" >/dev/null ;;
    esac
    "$DOCKER" run -d --pull never --name "$name" --hostname "$name" --network bridge \
        --label vethtrace.lab=1 "$@" >/dev/null
    log "started container $name"
}
ensure_container "$C1" "$IMAGE" sleep 1d
ensure_container "$C2" -p "$C2_PUBLISHED_PORT:80" "$IMAGE" httpd -f -v -p 80 -h /www

# --- state file -------------------------------------------------------------------------------------
c_info() { # name prefix
    local name=$1 p=$2 id pid ip mac veth vidx
    id=$("$DOCKER" inspect -f '{{.Id}}' "$name")
    pid=$(container_pid "$name")
    [[ $pid =~ ^[0-9]+$ && $pid -gt 0 ]] || die "container $name has no PID"
    ip=$("$DOCKER" inspect -f '{{.NetworkSettings.IPAddress}}' "$name")
    mac=$("$DOCKER" inspect -f '{{.NetworkSettings.MacAddress}}' "$name")
    veth=$(host_veth_of "$pid")
    [[ -n $veth ]] || die "cannot find host veth of $name"
    vidx=$(<"/sys/class/net/$veth/ifindex")
    # Container-side ifindex of eth0 (inside its netns).
    local cidx
    cidx=$(container_if_index "$pid")
    cat <<EOF
${p}_NAME=$name
${p}_ID=$id
${p}_PID=$pid
${p}_NETNS=/proc/$pid/ns/net
${p}_IP=$ip
${p}_MAC=$mac
${p}_IF=eth0
${p}_IFINDEX=$cidx
${p}_VETH=$veth
${p}_VETH_IFINDEX=$vidx
EOF
}

tmp=$(mktemp "$STATE_DIR/env.XXXXXX")
{
    echo "# VethTrace lab state, written by tests/lab/lab-up.sh at $(date -u +%FT%TZ)"
    c_info "$C1" C1
    c_info "$C2" C2
    cat <<EOF
C2_PUBLISHED_PORT=$C2_PUBLISHED_PORT
BRIDGE=$BRIDGE
BRIDGE_IP=${DOCKER_BIP%/*}
BRIDGE_IFINDEX=$(<"/sys/class/net/$BRIDGE/ifindex")
DOCKER_NET=$DOCKER_NET
EGRESS_IF=$EGRESS_IF
EGRESS_IFINDEX=$(<"/sys/class/net/$EGRESS_IF/ifindex")
EGRESS_IP=$EGRESS_IP
UPSTREAM_NS=$UPSTREAM_NS
UPSTREAM_IF=$UPSTREAM_IF
UPSTREAM_IP=$UPSTREAM_IP
UPSTREAM_NET=$UPSTREAM_NET
REAL_UPLINK=$UPLINK
IMAGE=$IMAGE
EOF
} >"$tmp"
mv "$tmp" "$ENV_FILE"
log "state written to $ENV_FILE"
cat "$ENV_FILE"

# --- smoke test: container -> upstream (MASQUERADE) and upstream -> published port (DNAT) -------------
# shellcheck disable=SC1090
source "$ENV_FILE"
for ((i = 0; i < 20; i++)); do
    "$DOCKER" exec "$C1" ping -c 1 -W 1 "$UPSTREAM_IP" >/dev/null 2>&1 && break
    sleep 0.5
done
"$DOCKER" exec "$C1" ping -c 1 -W 2 "$UPSTREAM_IP" >/dev/null || die "smoke test: $C1 cannot ping $UPSTREAM_IP"
for ((i = 0; i < 20; i++)); do
    http_get "$EGRESS_IP" "$C2_PUBLISHED_PORT" / "$UPSTREAM_NS" 2>/dev/null | grep '200 OK' >/dev/null && break
    sleep 0.5
done
http_get "$EGRESS_IP" "$C2_PUBLISHED_PORT" / "$UPSTREAM_NS" | grep '200 OK' >/dev/null ||
    die "smoke test: upstream cannot reach $EGRESS_IP:$C2_PUBLISHED_PORT (DNAT to $C2)"
log "lab is up: $C1 -> $UPSTREAM_IP via $EGRESS_IF (MASQUERADE) and $UPSTREAM_NS -> $EGRESS_IP:$C2_PUBLISHED_PORT -> $C2 (DNAT) work"

# Rootful Podman beside dockerd (issue 19): its API socket, the image, and its two iptables rules; a no-op without podman.
"$LAB_DIR/podman-up.sh"

# A CNI bridge node beside them (issue 19): cni0, two pods wired by the bridge plugin, a VXLAN device; a no-op without the plugins.
"$LAB_DIR/cni-up.sh"

#!/usr/bin/env bash
# A Kubernetes-style CNI bridge node beside the lab's dockerd, for the CNI lab tests (issue 19). Idempotent; starts
# nothing when Debian's containernetworking-plugins are missing.
#
#   cni0 10.244.77.1/24 ── veth ── eth0 10.244.77.x   netns cni19-pod1, cni19-pod2 (/run/netns/…)
#        (cni19-pod1 named as Kubernetes pod cni19/web by its cached CNI_ARGS, cni19-pod2 by host-local's lease only)
#        └─ MASQUERADE (the bridge plugin's ipMasq) ── vt-up0 198.51.100.1 ══ upstream 198.51.100.2
#   vtcni.1: a VXLAN device (VNI 1, UDP 8472, flannel's settings) over vtcni-ul0 ══ netns cni19-node2, whose own
#            vtcni.1 answers for 10.244.78.2: the path pod → cni0 → vtcni.1 a flannel node's pods take to another node.
#
# The pods' namespaces are wired as a container runtime does it: the bridge plugin (with host-local IPAM) is run with
# CNI_COMMAND=ADD, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH and the network config on stdin; its result is
# cached under /var/lib/cni/results as libcni (containerd, CRI-O) caches it. host-local keeps its own lease files
# under /var/lib/cni/networks/vtcni. State for the tests: /run/vethtrace-lab/cni.env. Undo: tests/lab/cni-down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

source "$(dirname "${BASH_SOURCE[0]}")/cni-lib.sh"

[[ -x $CNI_BIN/bridge && -x $CNI_BIN/host-local ]] || { log "containernetworking-plugins not installed: skipping the CNI node"; exit 0; }

cni_config() {
    cat <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "type": "bridge",
  "bridge": "$CNI_BRIDGE",
  "isGateway": true,
  "ipMasq": true,
  "hairpinMode": true,
  "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$CNI_SUBNET", "gateway": "$CNI_GATEWAY" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
}
EOF
}

# cni_call COMMAND POD ARGS: the bridge plugin, as a runtime calls it; its stdout (the result) on stdout.
cni_call() {
    local command=$1 pod=$2 args=$3
    cni_config | CNI_COMMAND=$command CNI_CONTAINERID="$CNI_NET-$pod" CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 \
        CNI_ARGS="$args" CNI_PATH=$CNI_BIN "$CNI_BIN/bridge"
}

# Our addresses must be new to the host: an address on a host device that the host already routes elsewhere (its own
# uplink's subnet, say) would take that traffic over. Only the default route may cover them.
for net in 10.244.77.0/24 10.244.78.0/24 10.244.79.0/30; do
    if ip -4 route show match "$net" | grep -v '^default' | grep -v -E "dev ($CNI_BRIDGE|$VX_DEV|$VX_UNDERLAY) " | grep -q .; then
        die "$net is already routed on this host ($(ip -4 route show match "$net" | grep -v '^default' | head -1)): not building the CNI node"
    fi
done

# --- safety first: nothing from cni0 may be forwarded to the real uplink ----------------------------------------
# Docker's FORWARD policy is DROP: cni0 needs its own ACCEPTs (to the lab's stand-in uplink and between pods only),
# and a mangle-table DROP towards the real uplink holds whatever order the filter table's rules end up in.
UPLINK=$(real_uplink)
if [[ -n $UPLINK ]]; then
    iptables -w -t mangle -C FORWARD -i "$CNI_BRIDGE" -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null \
        || iptables -w -t mangle -I FORWARD 1 -i "$CNI_BRIDGE" -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP
fi
for rule in "-i $CNI_BRIDGE -o $EGRESS_IF" "-i $EGRESS_IF -o $CNI_BRIDGE" "-i $CNI_BRIDGE -o $CNI_BRIDGE" "-i $CNI_BRIDGE -o $VX_DEV" "-i $VX_DEV -o $CNI_BRIDGE"; do
    # shellcheck disable=SC2086
    iptables -w -C FORWARD $rule -m comment --comment "$ACCEPT_COMMENT" -j ACCEPT 2>/dev/null \
        || iptables -w -A FORWARD $rule -m comment --comment "$ACCEPT_COMMENT" -j ACCEPT
done

# --- the pods: a namespace each, wired by the bridge plugin ------------------------------------------------------
mkdir -p "$CNI_CACHE" "$STATE_DIR"
# cni19-pod1 is wired as containerd does it for a Kubernetes pod: CNI_ARGS carries the pod's name (the bridge plugin
# ignores those keys, IgnoreUnknown=1) and the result is cached with them. cni19-pod2 as a runtime that keeps no cache:
# only host-local's lease (networks/vtcni/IP: the container id, the interface) is left to name it.
cni_config >"$STATE_DIR/cni-$CNI_NET.conf"
for pod in "${CNI_PODS[@]}"; do
    cache="$CNI_CACHE/$CNI_NET-$CNI_NET-$pod-eth0"
    if [[ -e /run/netns/$pod ]] && ip netns exec "$pod" ip -4 -o addr show dev eth0 2>/dev/null | grep -q "inet "; then
        log "pod $pod already wired"
        continue
    fi
    [[ -e /run/netns/$pod ]] || ip netns add "$pod"
    ip netns exec "$pod" ip link set lo up
    args=""
    [[ $pod == "${CNI_PODS[0]}" ]] && args="IgnoreUnknown=1;K8S_POD_NAMESPACE=cni19;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=$CNI_NET-$pod"
    result=$(cni_call ADD "$pod" "$args") || die "bridge plugin ADD for $pod failed: $result"
    # The cache libcni writes (cniCacheV1): the runtime's record of what the plugin did, read back by DEL and by tools.
    [[ -z $args ]] || RESULT=$result CONFIG=$(cni_config) POD=$pod NET=$CNI_NET ARGS=$args python3 - "$cache" <<'EOF'
import base64, json, os, sys
pod, net = os.environ["POD"], os.environ["NET"]
args = [pair.split("=", 1) for pair in os.environ["ARGS"].split(";") if pair]
cache = {"kind": "cniCacheV1", "containerId": f"{net}-{pod}", "config": base64.b64encode(os.environ["CONFIG"].encode()).decode(),
         "ifName": "eth0", "networkName": net, "netns": f"/run/netns/{pod}", "cniArgs": args, "result": json.loads(os.environ["RESULT"])}
with open(sys.argv[1], "w") as f:
    json.dump(cache, f)
EOF
    ip netns exec "$pod" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    log "pod $pod: $(ip netns exec "$pod" ip -4 -o addr show dev eth0 | awk '{print $4}')"
done
sysctl -qw "net.ipv6.conf.$CNI_BRIDGE.disable_ipv6=1" 2>/dev/null || true

# --- the VXLAN device (flannel's VNI 1, port 8472) to a second "node" of our own -------------------------------------
[[ -e /run/netns/$VX_NODE ]] || ip netns add "$VX_NODE"
if ! ip link show "$VX_UNDERLAY" >/dev/null 2>&1; then
    ip link add "$VX_UNDERLAY" type veth peer name ul0 netns "$VX_NODE"
fi
ip addr replace 10.244.79.1/30 dev "$VX_UNDERLAY"
ip link set "$VX_UNDERLAY" up
sysctl -qw "net.ipv6.conf.$VX_UNDERLAY.disable_ipv6=1" 2>/dev/null || true
ip netns exec "$VX_NODE" sh -c "ip link set lo up; ip addr replace 10.244.79.2/30 dev ul0; ip link set ul0 up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
if ! ip link show "$VX_DEV" >/dev/null 2>&1; then
    ip link add "$VX_DEV" type vxlan id 1 local 10.244.79.1 remote 10.244.79.2 dev "$VX_UNDERLAY" dstport 8472 nolearning
fi
ip addr replace 10.244.78.1/24 dev "$VX_DEV"
ip link set "$VX_DEV" up
ip netns exec "$VX_NODE" sh -c "ip link show $VX_DEV >/dev/null 2>&1 || ip link add $VX_DEV type vxlan id 1 local 10.244.79.2 remote 10.244.79.1 dev ul0 dstport 8472 nolearning;
    ip addr replace 10.244.78.2/24 dev $VX_DEV; ip link set $VX_DEV up"

# --- state for the tests ----------------------------------------------------------------------------------------
{
    echo "# CNI node state, written by tests/lab/cni-up.sh at $(date -u +%FT%TZ)"
    echo "CNI_NET=$CNI_NET"
    echo "CNI_BRIDGE=$CNI_BRIDGE"
    echo "CNI_SUBNET=$CNI_SUBNET"
    echo "CNI_GATEWAY=$CNI_GATEWAY"
    echo "CNI_CACHE=$CNI_CACHE"
    echo "CNI_VXLAN=$VX_DEV"
    echo "CNI_VXLAN_REMOTE_IP=10.244.78.2"
    n=0
    for pod in "${CNI_PODS[@]}"; do
        n=$((n + 1))
        ip=$(ip netns exec "$pod" ip -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}')
        peer=$(ip netns exec "$pod" ip -o link show dev eth0 | sed -n 's/.*eth0@if\([0-9]*\):.*/\1/p')
        veth=$(ip -o link show | awk -v i="$peer" -F': ' '$1 == i { split($2, a, "@"); print a[1] }')
        echo "CNI_POD${n}_NETNS=$pod"
        echo "CNI_POD${n}_ID=$CNI_NET-$pod"
        [[ $n == 1 ]] && echo "CNI_POD1_K8S_NAME=cni19/web"
        echo "CNI_POD${n}_IP=$ip"
        echo "CNI_POD${n}_VETH=$veth"
    done
} >"$CNI_ENV.tmp"
mv "$CNI_ENV.tmp" "$CNI_ENV"

# --- smoke test: a pod reaches the upstream namespace (MASQUERADEd) and the other node over the VXLAN -------------
source "$ENV_FILE"
ip netns exec "${CNI_PODS[0]}" busybox ping -c 1 -W 2 "$UPSTREAM_IP" >/dev/null || die "smoke test: ${CNI_PODS[0]} cannot ping $UPSTREAM_IP"
ip netns exec "${CNI_PODS[0]}" busybox ping -c 1 -W 2 10.244.78.2 >/dev/null || die "smoke test: ${CNI_PODS[0]} cannot ping 10.244.78.2 over $VX_DEV"
log "CNI node up: $CNI_BRIDGE $CNI_SUBNET, pods ${CNI_PODS[*]}, $VX_DEV; state in $CNI_ENV"

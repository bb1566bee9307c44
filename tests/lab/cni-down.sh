#!/usr/bin/env bash
# Undo tests/lab/cni-up.sh (idempotent): DEL through the bridge plugin for each pod (it releases the host-local lease
# and removes its MASQUERADE chain), the pods' namespaces, the runtime cache files, cni0, the VXLAN device and the
# second node, the iptables rules cni-up.sh added, and any CNI-* nat chain the plugin left behind for our network.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

source "$(dirname "${BASH_SOURCE[0]}")/cni-lib.sh"

for pod in "${CNI_PODS[@]}"; do
    cache="$CNI_CACHE/$CNI_NET-$CNI_NET-$pod-eth0"
    if [[ -x $CNI_BIN/bridge && ( -e /run/netns/$pod || -e $cache ) ]]; then
        config=$(python3 -c 'import base64, json, sys; print(base64.b64decode(json.load(open(sys.argv[1]))["config"]).decode())' "$cache" 2>/dev/null \
            || cat "$STATE_DIR/cni-$CNI_NET.conf" 2>/dev/null || true)
        if [[ -n $config ]]; then
            netns="/run/netns/$pod"; [[ -e $netns ]] || netns=""
            printf '%s' "$config" | CNI_COMMAND=DEL CNI_CONTAINERID="$CNI_NET-$pod" CNI_NETNS="$netns" CNI_IFNAME=eth0 CNI_PATH=$CNI_BIN \
                "$CNI_BIN/bridge" >/dev/null 2>&1 && log "CNI DEL $pod" || log "CNI DEL $pod failed (cleaning up by hand)"
        fi
    fi
    rm -f "$cache"
    if [[ -e /run/netns/$pod ]]; then ip netns del "$pod" && log "deleted netns $pod"; fi
done
# host-local's leases of our network (DEL released them; a lease of a pod whose DEL failed would stay).
rm -rf "/var/lib/cni/networks/$CNI_NET"
rmdir "$CNI_CACHE" /var/lib/cni/networks /var/lib/cni 2>/dev/null || true

ip link del "$VX_DEV" 2>/dev/null && log "deleted $VX_DEV" || true
ip link del "$VX_UNDERLAY" 2>/dev/null && log "deleted $VX_UNDERLAY" || true
if [[ -e /run/netns/$VX_NODE ]]; then ip netns del "$VX_NODE" && log "deleted netns $VX_NODE"; fi
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link del "$CNI_BRIDGE" && log "deleted $CNI_BRIDGE"; fi

UPLINK=$(real_uplink)
if [[ -n $UPLINK ]]; then
    while iptables -w -t mangle -D FORWARD -i "$CNI_BRIDGE" -o "$UPLINK" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null; do :; done
fi
while read -r rule; do
    # shellcheck disable=SC2086
    eval "iptables -w ${rule/-A/-D}" 2>/dev/null || true
done < <(iptables -w -S FORWARD | grep -F -- "--comment \"$ACCEPT_COMMENT\"" || true)
# The bridge plugin's ipMasq chains (CNI-<hash>, commented 'name: "vtcni" id: "…"'): their POSTROUTING jumps, then
# the chains. Only chains whose comment names our network.
while read -r rule; do
    eval "iptables -w -t nat ${rule/-A/-D}" 2>/dev/null || true
done < <(iptables -w -t nat -S POSTROUTING | grep -E -- "-j CNI-[0-9a-f]+ .*name: \\\\\"$CNI_NET\\\\\"|name: \\\\\"$CNI_NET\\\\\".* -j CNI-" || true)
for chain in $(iptables -w -t nat -S | awk '$1 == "-A" && $2 ~ /^CNI-/ && /name: \\"vtcni\\"/ { print $2 }' | sort -u); do
    iptables -w -t nat -F "$chain" 2>/dev/null || true
    iptables -w -t nat -X "$chain" 2>/dev/null && log "removed nat chain $chain" || true
done
rm -f "$STATE_DIR/cni.env" "$STATE_DIR/cni-$CNI_NET.conf"

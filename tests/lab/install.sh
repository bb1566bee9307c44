#!/usr/bin/env bash
# Install the Debian packages the VethTrace Docker lab and the capture scripts need.
# Idempotent: a quick no-op when everything is already installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

PACKAGES=(
    docker.io containerd runc        # dockerd 20.10 + runtime (used without any registry)
    iptables                         # Docker needs a working iptables; lab adds DOCKER-USER rule
    iproute2 procps util-linux       # ip, ip netns, sysctl, nsenter
    busybox-static                   # the container root filesystem (vethtrace/busybox:lab)
    tshark wireshark-common          # tshark, dumpcap, mergecap, capinfos, editcap
    tcpdump                          # -i any / LINUX_SLL2 / nanosecond pcap
    iperf3                           # bulk TCP capture
    socat                            # UDP/TCP/IPv6 listeners and the TUN (LINKTYPE_RAW) tunnel
    tcpreplay                        # tcprewrite/tcpreplay: 802.1Q fallback when the kernel has no VLAN_8021Q
    ethtool                          # offload (GRO/TSO) inspection for the README
    xz-utils zstd                    # compressed captures
    chromium                         # headless browser for the HTML report tests (Category=Browser)
    prometheus                       # follow --prometheus lab tests: each starts its own server (PrometheusLabTests)
    podman                           # rootful Podman 4.3 + netavark beside dockerd (tests/lab/podman-up.sh, issue 19)
    netavark                         # podman's network backend (podman0): named, since podman's "netavark | CNI plugins"
                                     # dependency is met by containernetworking-plugins below, and podman then uses CNI
    containernetworking-plugins      # bridge + host-local CNI plugins for the CNI node (tests/lab/cni-up.sh, issue 19)
    debootstrap                      # the container image's Debian root (build/container-image.sh, ContainerImageLabTests)
)

missing=()
for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all lab packages already installed"
    exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Don't ask about non-root capture; we run as root anyway.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
apt-get update
# --no-install-recommends would drop things like the docker.io man pages only; keep defaults minimal but safe.
apt-get install -y --no-install-recommends "${missing[@]}"
# Debian's prometheus package enables a service of its own: the tests run their own servers on loopback, so the
# packaged one must not run (it would listen on :9090 and scrape nothing of ours).
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
log "done"

# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Shared settings and helpers for the VethTrace Docker lab scripts.
# Sourced by the other tests/lab/*.sh scripts; not meant to be run directly.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/../.." && pwd)"
CAPTURES_DIR="${CAPTURES_DIR:-$REPO_ROOT/captures}"

STATE_DIR="${VT_STATE_DIR:-/run/vethtrace-lab}"
ENV_FILE="$STATE_DIR/env"

IMAGE="vethtrace/busybox:lab"
C1="vt-c1"
C2="vt-c2"
C2_PUBLISHED_PORT=8080

UPSTREAM_NS="upstream"
EGRESS_IF="vt-up0"           # host side of the stand-in uplink
UPSTREAM_IF="up0"            # namespace side (NOT named eth0 to avoid confusion with the real uplink)
EGRESS_IP="198.51.100.1"
UPSTREAM_IP="198.51.100.2"
UPSTREAM_PREFIX=24
UPSTREAM_NET="198.51.100.0/24"
DOCKER_BIP="172.17.0.1/16"
DOCKER_NET="172.17.0.0/16"
BRIDGE="docker0"

# Prefer the docker CLI that matches the Debian dockerd (20.10); fall back to any docker in PATH.
if [[ -z "${DOCKER:-}" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi

log()  { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[lab ERROR] %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
}

# The interface that carries the default route (the real uplink). Empty if none.
real_uplink() {
    ip -4 route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); exit}}'
}

docker_ok() {
    timeout 10 "$DOCKER" info >/dev/null 2>&1
}

# pid_alive PIDFILE EXPECTED_COMM -> 0 if the PID in the file is running and is that program
pid_alive() {
    local f=$1 comm=$2 pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(</proc/"$pid"/comm) == "$comm"* ]]
}

# stop_pidfile PIDFILE COMM [timeout_s]: TERM the recorded PID (only if it is COMM), wait, then KILL.
stop_pidfile() {
    local f=$1 comm=$2 t=${3:-20} pid i
    if pid_alive "$f" "$comm"; then
        pid=$(<"$f")
        log "stopping $comm (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < t * 10; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            log "$comm (pid $pid) did not stop in ${t}s, sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$f"
}

container_pid() { "$DOCKER" inspect -f '{{.State.Pid}}' "$1"; }

# Name of the host-side veth of a container's eth0 (via eth0's iflink = peer ifindex in the host netns).
# Note: /sys/class/net reflects the netns of whoever mounted /sys, so after `nsenter --net` only
# netlink (ip) tells the truth about the container's interfaces; `ip -o link` prints "eth0@ifN".
container_if_index() { # pid -> ifindex of eth0 inside the container netns
    nsenter --net=/proc/"$1"/ns/net ip -o link show dev eth0 | awk -F': ' '{print $1; exit}'
}
host_veth_of() {
    local pid=$1 idx
    idx=$(nsenter --net=/proc/"$pid"/ns/net ip -o link show dev eth0 | sed -n 's/^[0-9]*: eth0@if\([0-9]*\):.*/\1/p')
    [[ -n $idx ]] || return 1
    ip -o link show | awk -F': ' -v i="$idx" '$1==i {split($2,a,"@"); print a[1]; exit}'
}

# http_get HOST PORT [PATH] [netns]: a tiny HTTP/1.0 GET with socat (Debian's static busybox wget
# segfaults on hosts whose /etc/nsswitch.conf uses "services: db files").
http_get() {
    local host=$1 port=$2 path=${3:-/} ns=${4:-}
    local cmd=(socat -t 3 -T 5 - "TCP:$host:$port,connect-timeout=3")
    [[ -n $ns ]] && cmd=(ip netns exec "$ns" "${cmd[@]}")
    printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: vethtrace-lab\r\n\r\n' "$path" "$host" "$port" | "${cmd[@]}"
}

# merge OUT IN...: the captures of several dumpcaps as one pcapng, one IDB per interface. A dumpcap file with several
# interfaces is in arrival order, so each is sorted (reordercap) first; mergecap then merges chronologically.
merge() {
    local out=$1; shift
    local f sorted=()
    for f in "$@"; do
        reordercap "$f" "$f.sorted" >/dev/null
        sorted+=("$f.sorted")
    done
    mergecap -I none -w "$out" "${sorted[@]}"
}

#!/usr/bin/env bash
# Make sure a Docker daemon answers, and that the registry-free image vethtrace/busybox:lab exists.
#
# - If `docker info` already answers (system dockerd, developer machine), that daemon is used as is.
# - Otherwise containerd and dockerd are started in the background by this script; their PIDs go to
#   $STATE_DIR/containerd.pid and $STATE_DIR/dockerd.pid, logs to $STATE_DIR/*.log, and lab-down.sh
#   stops exactly those PIDs again.
# - The image is built from Debian's busybox-static and `docker import`ed: no registry is contacted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
mkdir -p "$STATE_DIR"

DOCKER_TIMEOUT="${DOCKER_TIMEOUT:-60}"

# --- iptables backend ------------------------------------------------------------------------------
# Docker 20.10 calls `iptables` (whatever the alternatives point at). Check that it can really create
# chains in filter and nat; if the current backend can't but the other one can, switch alternatives.
iptables_works() { # $1 = iptables binary
    local ipt=$1 chain="VT-PROBE-$$"
    "$ipt" -w -t filter -N "$chain" 2>/dev/null || return 1
    "$ipt" -w -t filter -X "$chain" 2>/dev/null || return 1
    "$ipt" -w -t nat -N "$chain" 2>/dev/null || return 1
    "$ipt" -w -t nat -X "$chain" 2>/dev/null || return 1
}

check_iptables() {
    local cur
    cur=$(iptables --version 2>/dev/null || true)
    if iptables_works iptables; then
        log "iptables OK: $cur"
        echo "$cur" >"$STATE_DIR/iptables-backend"
        return
    fi
    log "iptables ($cur) cannot create chains; trying the other backend"
    local alt
    for alt in /usr/sbin/iptables-legacy /usr/sbin/iptables-nft; do
        [[ -x $alt ]] || continue
        if iptables_works "$alt"; then
            update-alternatives --set iptables "$alt"
            [[ -x ${alt/iptables/ip6tables} ]] && update-alternatives --set ip6tables "${alt/iptables/ip6tables}" || true
            log "switched iptables alternative to $alt"
            iptables --version >"$STATE_DIR/iptables-backend"
            return
        fi
    done
    die "no working iptables backend (neither nft nor legacy can create chains); Docker needs iptables"
}

# --- cgroups ---------------------------------------------------------------------------------------
check_cgroups() {
    if [[ -e /sys/fs/cgroup/cgroup.controllers || -d /sys/fs/cgroup/memory || -d /sys/fs/cgroup/cpu ]]; then
        return
    fi
    log "no cgroup hierarchy mounted at /sys/fs/cgroup; mounting cgroup2"
    mkdir -p /sys/fs/cgroup
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2"
}

# --- containerd ------------------------------------------------------------------------------------
CONTAINERD_SOCK=/run/containerd/containerd.sock
containerd_ok() { [[ -S $CONTAINERD_SOCK ]] && timeout 5 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

start_containerd() {
    if containerd_ok; then
        log "containerd already answering on $CONTAINERD_SOCK"
        return
    fi
    command -v containerd >/dev/null || die "containerd not installed (run tests/lab/install.sh)"
    log "starting containerd (log $STATE_DIR/containerd.log)"
    # setsid detaches it from our session; the inner shell records its own PID and execs containerd,
    # so the PID file holds containerd's PID even when setsid has to fork.
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$STATE_DIR/containerd.pid" \
        containerd --address "$CONTAINERD_SOCK" >>"$STATE_DIR/containerd.log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 50; i++)); do [[ -s $STATE_DIR/containerd.pid ]] && break; sleep 0.1; done
    for ((i = 0; i < DOCKER_TIMEOUT * 2; i++)); do
        containerd_ok && { log "containerd up (pid $(<"$STATE_DIR/containerd.pid"))"; return; }
        pid_alive "$STATE_DIR/containerd.pid" containerd || { tail -20 "$STATE_DIR/containerd.log" >&2; die "containerd exited"; }
        sleep 0.5
    done
    tail -20 "$STATE_DIR/containerd.log" >&2
    die "containerd did not answer within ${DOCKER_TIMEOUT}s"
}

# --- dockerd ---------------------------------------------------------------------------------------
start_dockerd() {
    command -v dockerd >/dev/null || die "dockerd not installed (run tests/lab/install.sh)"
    # Our own config file so /etc/docker/daemon.json (if any) is not mixed in and nothing touches the
    # real network: containers get 198.51.100.2 (the lab upstream namespace) as their only DNS server,
    # no registry mirrors, no userland proxy (published ports are pure iptables DNAT).
    cat >"$STATE_DIR/daemon.json" <<EOF
{
  "bip": "$DOCKER_BIP",
  "dns": ["$UPSTREAM_IP"],
  "iptables": true,
  "ip-forward": true,
  "ip-masq": true,
  "ipv6": false,
  "userland-proxy": false,
  "registry-mirrors": [],
  "log-level": "warn",
  "pidfile": "$STATE_DIR/dockerd.pid"
}
EOF
    log "starting dockerd (log $STATE_DIR/dockerd.log)"
    # Use the system-wide socket so plain `docker` works for developers.
    rm -f "$STATE_DIR/dockerd.started"
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$STATE_DIR/dockerd.started" \
        dockerd --config-file "$STATE_DIR/daemon.json" --containerd "$CONTAINERD_SOCK" \
        >>"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    local i pid
    for ((i = 0; i < 50; i++)); do [[ -s $STATE_DIR/dockerd.started ]] && break; sleep 0.1; done
    pid=$(<"$STATE_DIR/dockerd.started")
    for ((i = 0; i < DOCKER_TIMEOUT * 2; i++)); do
        if docker_ok; then
            echo "$pid" >"$STATE_DIR/dockerd.pid"
            log "dockerd up (pid $pid)"
            return
        fi
        if [[ ! -d /proc/$pid ]]; then
            tail -30 "$STATE_DIR/dockerd.log" >&2
            rm -f "$STATE_DIR/dockerd.started"
            die "dockerd exited during startup (see $STATE_DIR/dockerd.log)"
        fi
        sleep 0.5
    done
    tail -30 "$STATE_DIR/dockerd.log" >&2
    die "dockerd did not answer 'docker info' within ${DOCKER_TIMEOUT}s (see $STATE_DIR/dockerd.log)"
}

# --- image -----------------------------------------------------------------------------------------
build_image() {
    if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image $IMAGE present"
        return
    fi
    local bb=/bin/busybox
    [[ -x $bb ]] || die "$bb missing (apt-get install busybox-static)"
    file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
    file_is_static "$bb" || die "$bb is not statically linked (need busybox-static, not busybox)"

    local root
    root=$(mktemp -d /tmp/vt-rootfs.XXXXXX)
    trap 'rm -rf "$root"' RETURN
    log "building root filesystem in $root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/www,www}
    chmod 1777 "$root/tmp"
    cp "$bb" "$root/bin/busybox"
    # One symlink per applet at its canonical place (busybox --list-full prints e.g. usr/bin/wget).
    local applet
    while read -r applet; do
        [[ -n $applet && $applet != bin/busybox ]] || continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sf /bin/busybox "$root/$applet"
    done < <("$bb" --list-full)
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
www-data:x:33:
nogroup:x:65534:
EOF
    echo "hosts: files dns" >"$root/etc/nsswitch.conf"
    printf '<html><body><h1>vethtrace lab</h1><p>served by busybox httpd in vt-c2</p></body></html>\n' >"$root/www/index.html"
    # A slightly bigger object so an HTTP GET spans several TCP segments.
    awk 'BEGIN{for(i=0;i<200;i++) printf "line %04d of the vethtrace lab test object, padding padding padding\n", i}' >"$root/www/object.txt"
    log "importing $IMAGE"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
        "$DOCKER" import -c 'CMD ["/bin/sh"]' -c 'WORKDIR /' -m "vethtrace lab busybox (from Debian busybox-static)" - "$IMAGE" >/dev/null
    log "image $IMAGE built"
}

check_iptables
check_cgroups
if docker_ok; then
    log "docker already answering; using the running daemon"
else
    # dockerd (ip-forward=true) turns on net.ipv4.ip_forward; remember the old value for lab-down.sh.
    [[ -e $STATE_DIR/ip_forward.orig ]] || sysctl -n net.ipv4.ip_forward >"$STATE_DIR/ip_forward.orig"
    # dockerd also sets the FORWARD policy to DROP; lab-down.sh restores this one.
    [[ -e $STATE_DIR/forward-policy.orig ]] ||
        iptables -w -S FORWARD | awk '$1=="-P"{print $3; exit}' >"$STATE_DIR/forward-policy.orig"
    start_containerd
    start_dockerd
fi
build_image

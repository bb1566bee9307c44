#!/usr/bin/env bash
# Record the multi-hop benchmark captures of issue 16 in the running Docker lab (tests/lab/lab-up.sh first), into
# benchmarks/captures/ (git-ignored: the files are ~100-200 MB each), each with at least MIN packets (default 800,000):
#
#   perif   multihop-perif.pcapng   iperf3 vt-c1 -> 198.51.100.2 (the upstream namespace) through MASQUERADE, one
#                                   dumpcap on the host (the veth, docker0, vt-up0) and one in vt-c1 (eth0), snaplen
#                                   128, merged in time order: one IDB per interface, named as the kernel names them
#   any     multihop-any.pcap       the same traffic as `tcpdump -i any -y LINUX_SLL2 -s 128` (veth, docker0, vt-up0)
#   mixed   multihop-mixed.pcapng   many short flows from four containers (vt-c1, vt-c2 and two made here,
#                                   bench16-c3/-c4): busybox wget of a 5.4 kB file from busybox httpd in the upstream
#                                   namespace, DNS-like UDP queries to port 53 there (one source port each,
#                                   benchmarks/udp-queries.py), and pings (-s 116, 10 ms apart); each container's
#                                   eth0, its veth, docker0 and vt-up0, snaplen 256
#
#   benchmarks/record-multihop.sh [--only perif,any,mixed] [--min PACKETS] [--seconds S] [--mixed-seconds S]
#
# Beside each file: NAME.args (the replay options the file needs: --egress, --ifname of the SLL2 ifindexes),
# NAME.log (the recording's counters: capture drops, iperf3's summary) and SHA256SUMS. The iperf3 runs are
# time-bound (--seconds, default 20; --mixed-seconds, default 14): if a file falls short of MIN, it is recorded again with the time scaled up.
# Filters keep other sessions' traffic in the shared lab out: TCP port 5216 (iperf3), TCP 8016 (httpd), UDP 53,
# and ICMP of IP total length 144 (ping -s 116). Everything added here (containers bench16-c3/-c4, netns names
# bench16-*, the servers) is removed on exit, also on error. The real uplink must see none of it (checked).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/tests/lab/lib.sh"

ONLY=perif,any,mixed
MIN=800000
SECONDS_IPERF=20
SECONDS_MIXED=14
while (($#)); do
    case $1 in
        --only) ONLY=$2; shift ;;
        --min) MIN=$2; shift ;;
        --seconds) SECONDS_IPERF=$2; shift ;;
        --mixed-seconds) SECONDS_MIXED=$2; shift ;;
        -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

need_root
[[ -s $ENV_FILE ]] || die "$ENV_FILE missing: run tests/lab/lab-up.sh first"
# shellcheck disable=SC1090
source "$ENV_FILE"
for t in dumpcap mergecap reordercap tcpdump capinfos iperf3 busybox nsenter python3 sha256sum; do
    command -v "$t" >/dev/null || die "$t missing: run tests/lab/install.sh"
done

OUT=$root/benchmarks/captures
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/vt-bench16-rec.XXXXXX)
EXTRA=(bench16-c3 bench16-c4)

bg() { # name cmd...: the PID recorded is the program's own (ip netns exec / nsenter exec in place)
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    echo $! >"$WORK/$name.pid"
}
stop() { # name [signal]
    local f="$WORK/$1.pid" pid
    [[ -s $f ]] || return 0
    pid=$(<"$f")
    if [[ -d /proc/$pid ]]; then kill -"${2:-TERM}" "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -f "$f"
}
wait_log() { # name pattern
    local i f="$WORK/$1.pid"
    for ((i = 0; i < 150; i++)); do
        grep -Eq "$2" "$WORK/$1.log" 2>/dev/null && return 0
        [[ -s $f && -d /proc/$(<"$f") ]] || { cat "$WORK/$1.log" >&2; die "$1 exited early"; }
        sleep 0.1
    done
    cat "$WORK/$1.log" >&2
    die "$1: no '$2' after 15 s"
}
cap_start() { bg "$@"; wait_log "$1" 'Capturing on|listening on'; sleep 0.5; }
cap_stop() { sleep 1; stop "$1" TERM; grep -E 'captured|received|dropped|Packets' "$WORK/$1.log" | sed "s/^/[$1] /" || true; }
# Recordings run inside `{ …; } | tee` (a subshell), so cleanup finds what to stop from the files, not from variables.
cleanup() {
    local f n ns
    for f in "$WORK"/*.pid; do [[ -e $f ]] && stop "$(basename "$f" .pid)" TERM; done
    for n in "${EXTRA[@]}"; do "$DOCKER" rm -f "$n" >/dev/null 2>&1 || true; done
    for ns in $(ip netns list | awk '$1 ~ /^bench16-/ {print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
attach_ns() { ip netns del "$1" 2>/dev/null || true; ip netns attach "$1" "$2"; }
packets() { capinfos -c -M "$1" | awk '/Number of packets/ {print $NF}'; }
wait_listen() { # netns-path proto port
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n $(nsenter --net="$1" ss -Hln"${2:0:1}" "sport = :$3") ]] && return 0
        sleep 0.1
    done
    die "nothing listening on $2/$3 in $1"
}
UP_NETNS=/run/netns/$UPSTREAM_NS

# The real uplink must see none of this (the lab's DOCKER-USER rule drops it; checked again at the end).
iptables -w -C DOCKER-USER -o "$REAL_UPLINK" -j DROP 2>/dev/null || die "the DOCKER-USER drop rule towards $REAL_UPLINK is missing"
LAB_NETS="net $DOCKER_NET or net $UPSTREAM_NET"
cap_start uplink-watch tcpdump -Z root -n -i "$REAL_UPLINK" -w "$WORK/uplink-watch.pcap" "$LAB_NETS"

IPERF_PORT=5216
F_IPERF="tcp port $IPERF_PORT and ($LAB_NETS)"
# One iperf3 run of SECONDS at full speed from vt-c1 to the upstream namespace; the captures are started by $1.
iperf_run() { # seconds logfile
    bg up-iperf3 ip netns exec "$UPSTREAM_NS" iperf3 -s -1 -B "$UPSTREAM_IP" -p "$IPERF_PORT"
    wait_listen "$UP_NETNS" tcp "$IPERF_PORT"
    nsenter --net="$C1_NETNS" iperf3 -c "$UPSTREAM_IP" -p "$IPERF_PORT" -t "$1" >"$2"
    tail -4 "$2" | head -2
    stop up-iperf3
}

# One dumpcap per interface: a dumpcap with several interfaces funnels them through one queue and dropped up to
# 20 % of the packets here ("dumpcap:N" in its counters), where one per interface dropped none.
cap_if() { # name snaplen filter interface [netns]
    local name=$1 snap=$2 filter=$3 ifc=$4 ns=${5:-}
    local cmd=(dumpcap -q -n -s "$snap" -B 64 -w "$WORK/$name.pcapng" -i "$ifc" -s "$snap" -B 64 -f "$filter")
    [[ -n $ns ]] && cmd=(ip netns exec "$ns" "${cmd[@]}")
    cap_start "$name" "${cmd[@]}"
}
record_perif() { # seconds -> writes $OUT/multihop-perif.pcapng
    attach_ns bench16-c1 "$C1_PID"
    cap_if perif-0 128 "$F_IPERF" eth0 bench16-c1
    cap_if perif-1 128 "$F_IPERF" "$C1_VETH"
    cap_if perif-2 128 "$F_IPERF" "$BRIDGE"
    cap_if perif-3 128 "$F_IPERF" "$EGRESS_IF"
    iperf_run "$1" "$WORK/perif-iperf3.txt"
    local i
    for i in 0 1 2 3; do cap_stop perif-$i; done
    ip netns del bench16-c1
    merge "$OUT/multihop-perif.pcapng" "$WORK"/perif-{0,1,2,3}.pcapng >/dev/null
    rm -f "$WORK"/perif-*.pcapng*
    printf -- '--egress %s\n' "$EGRESS_IF" >"$OUT/multihop-perif.pcapng.args"
}
record_any() { # seconds -> writes $OUT/multihop-any.pcap
    cap_start any tcpdump -Z root -n -s 128 -B 65536 -i any -y LINUX_SLL2 -w "$OUT/multihop-any.pcap" "$F_IPERF"
    iperf_run "$1" "$WORK/any-iperf3.txt"
    cap_stop any
    printf -- '--ifname %s=%s --ifname %s=%s --ifname %s=%s --egress %s\n' "$C1_VETH_IFINDEX" "$C1_VETH" \
        "$BRIDGE_IFINDEX" "$BRIDGE" "$EGRESS_IFINDEX" "$EGRESS_IF" "$EGRESS_IF" >"$OUT/multihop-any.pcap.args"
}
# Record NAME with its iperf3 run; if it has fewer than MIN packets, again with the time scaled (at most 3 times).
record_iperf() { # name file
    local name=$1 file=$2 secs=$SECONDS_IPERF n attempt
    for attempt in 1 2 3; do
        log "== $name: iperf3 -t $secs (attempt $attempt)"
        {
            echo "# $(date -u +%FT%TZ) $name: iperf3 -c $UPSTREAM_IP -p $IPERF_PORT -t $secs from $C1_NAME; load $(cut -d' ' -f1-3 /proc/loadavg)"
            "record_$name" "$secs"
        } 2>&1 | tee "$file.log"
        n=$(packets "$file")
        log "$name: $n packets"
        ((n >= MIN)) && return 0
        secs=$(( (secs * MIN * 11 / 10 + n - 1) / n ))
    done
    die "$name: $n packets after 3 attempts, fewer than $MIN"
}

if want perif; then record_iperf perif "$OUT/multihop-perif.pcapng"; fi
if want any; then record_iperf any "$OUT/multihop-any.pcap"; fi

if want mixed; then
    file=$OUT/multihop-mixed.pcapng
    log "== mixed: $SECONDS_MIXED s of wget, DNS-like UDP and pings from 4 containers"
    for n in "${EXTRA[@]}"; do
        "$DOCKER" rm -f "$n" >/dev/null 2>&1 || true
        "$DOCKER" run -d --pull never --name "$n" --hostname "$n" --network bridge --label vethtrace.lab=bench16 "$IMAGE" sleep 1h >/dev/null
    done
    declare -A PID_OF VETH_OF
    for n in "$C1_NAME" "$C2_NAME" "${EXTRA[@]}"; do
        PID_OF[$n]=$(container_pid "$n")
        VETH_OF[$n]=$(host_veth_of "${PID_OF[$n]}")
        [[ -n ${VETH_OF[$n]} ]] || die "no veth for $n"
    done
    www=$WORK/www
    mkdir -p "$www"
    head -c 4000 /dev/urandom | base64 >"$www/obj.txt"   # 5,400 bytes: four segments and their ACKs per fetch
    bg up-httpd ip netns exec "$UPSTREAM_NS" busybox httpd -f -p "$UPSTREAM_IP:8016" -h "$www"
    bg up-udp ip netns exec "$UPSTREAM_NS" python3 "$root/benchmarks/udp-queries.py" serve "$UPSTREAM_IP" 53
    wait_listen "$UP_NETNS" tcp 8016; wait_listen "$UP_NETNS" udp 53
    F_MIXED="(tcp port 8016 or udp port 53 or (icmp and ip[2:2] = 144)) and ($LAB_NETS)"
    {
        echo "# $(date -u +%FT%TZ) mixed: $SECONDS_MIXED s from $C1_NAME ${C2_NAME} ${EXTRA[*]}; load $(cut -d' ' -f1-3 /proc/loadavg)"
        i=0
        for n in "$C1_NAME" "$C2_NAME" "${EXTRA[@]}"; do
            attach_ns "bench16-$n" "${PID_OF[$n]}"
            cap_if "mixed-$i" 256 "$F_MIXED" eth0 "bench16-$n"; i=$((i + 1))
        done
        for ifc in "${VETH_OF[$C1_NAME]}" "${VETH_OF[$C2_NAME]}" "${VETH_OF[${EXTRA[0]}]}" "${VETH_OF[${EXTRA[1]}]}" "$BRIDGE" "$EGRESS_IF"; do
            cap_if "mixed-$i" 256 "$F_MIXED" "$ifc"; i=$((i + 1))
        done
        for n in "$C1_NAME" "$C2_NAME" "${EXTRA[@]}"; do
            # each loop ends by itself: killing `docker exec` would leave it running in the container
            bg "wget-$n" "$DOCKER" exec "$n" sh -c "end=\$((\$(date +%s) + $SECONDS_MIXED)); ok=0; bad=0
                while [ \$(date +%s) -lt \$end ]; do
                    if wget -q -O /dev/null http://$UPSTREAM_IP:8016/obj.txt; then ok=\$((ok+1)); else bad=\$((bad+1)); fi
                done; echo \"wget ok \$ok failed \$bad\""
            bg "ping-$n" "$DOCKER" exec "$n" ping -q -c $((SECONDS_MIXED * 100)) -i 0.01 -s 116 "$UPSTREAM_IP"
        done
        for n in "$C1_NAME" "${EXTRA[0]}"; do
            bg "udp-$n" nsenter --net="/proc/${PID_OF[$n]}/ns/net" python3 "$root/benchmarks/udp-queries.py" query "$UPSTREAM_IP" 53 "$SECONDS_MIXED" 1500
        done
        for n in "$C1_NAME" "$C2_NAME" "${EXTRA[@]}"; do
            wait "$(<"$WORK/wget-$n.pid")" || true; rm -f "$WORK/wget-$n.pid"; echo "[$n] $(tail -1 "$WORK/wget-$n.log")"
            wait "$(<"$WORK/ping-$n.pid")" || true; rm -f "$WORK/ping-$n.pid"; echo "[$n] $(grep -E 'transmitted' "$WORK/ping-$n.log")"
        done
        for n in "$C1_NAME" "${EXTRA[0]}"; do
            wait "$(<"$WORK/udp-$n.pid")" || true; rm -f "$WORK/udp-$n.pid"; echo "[$n] udp $(tail -1 "$WORK/udp-$n.log")"
        done
        for ((i = 0; i < 10; i++)); do cap_stop "mixed-$i"; done
        for n in "$C1_NAME" "$C2_NAME" "${EXTRA[@]}"; do ip netns del "bench16-$n"; done
        echo "interfaces: ${VETH_OF[*]} $BRIDGE $EGRESS_IF (containers $C1_NAME ${C2_NAME} ${EXTRA[*]})"
    } 2>&1 | tee "$file.log"
    stop up-httpd; stop up-udp
    merge "$file" "$WORK"/mixed-{0,1,2,3,4,5,6,7,8,9}.pcapng >/dev/null
    rm -f "$WORK"/mixed-*.pcapng*
    printf -- '--egress %s\n' "$EGRESS_IF" >"$file.args"
    for n in "${EXTRA[@]}"; do "$DOCKER" rm -f "$n" >/dev/null; done
    n=$(packets "$file")
    log "mixed: $n packets"
    ((n >= MIN)) || die "mixed: $n packets, fewer than $MIN: record again with a longer --mixed-seconds"
fi

cap_stop uplink-watch
leaked=$(tcpdump -Z root -n -r "$WORK/uplink-watch.pcap" 2>/dev/null | wc -l)
((leaked == 0)) || die "lab traffic leaked to $REAL_UPLINK: $leaked packets"
log "real uplink $REAL_UPLINK: 0 lab packets"

cd "$OUT"
chmod 644 multihop-* 2>/dev/null || true
sha256sum multihop-*.pcap multihop-*.pcapng 2>/dev/null >SHA256SUMS || true
for f in multihop-*.pcap multihop-*.pcapng; do
    [[ -e $f ]] || continue
    capinfos -t -E -c -s -u -M "$f" | sed 's/^/    /'
done
cat SHA256SUMS

#!/usr/bin/env bash
# Whole-host follow while a container starts whose first command is one marked ping (then four more after a second),
# the host loaded by LOADERS busy shell loops at normal priority: does follow count all 5 of the container's pings?
# Needs the lab (tests/lab/lab-up.sh); the pings go to the lab's upstream namespace only.
#   benchmarks/whole-host-late-start.sh ROUNDS LOADERS NAME=BINARY [NAME=BINARY...]
# Prints, per round and build, the container's packets_out (5 expected) and the any record's held_then_traced /
# held_dropped (builds before session 16 have neither). The JSON of each run is kept in $OUT (default a temp dir).
set -uo pipefail
R=$1; L=$2; shift 2
source /run/vethtrace-lab/env
OUT=${OUT:-$(mktemp -d)}
NAME=vt-late-start
for r in $(seq "$R"); do for spec in "$@"; do
  n=${spec%%=*}; bin=${spec#*=}; out=$OUT/late-$n-$r.json
  docker rm -f $NAME >/dev/null 2>&1
  "$bin" follow --egress "$EGRESS_IF" --duration 7s --format json --filter 'ip[2:2] == 349' > "$out" 2>/dev/null & fp=$!
  for _ in $(seq 50); do grep -q '"type":"start"' "$out" 2>/dev/null && break; sleep 0.1; done
  pids=(); for _ in $(seq "$L"); do ( while :; do :; done ) & pids+=($!); done
  docker run -d --name $NAME "$IMAGE" sh -c "ping -c 1 -s 321 -W 2 $UPSTREAM_IP >/dev/null; sleep 1; ping -c 4 -i 0.2 -s 321 $UPSTREAM_IP >/dev/null; sleep 60" >/dev/null
  sleep 3; kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
  wait $fp
  docker rm -f $NAME >/dev/null 2>&1
  c=$(grep '"type":"container"' "$out" | grep "\"$NAME\"" | grep -o '"packets_out":[0-9]*')
  a=$(grep '"interface":"any"' "$out" | grep -o '"held_then_traced":[0-9]*,"held_dropped":[0-9]*')
  echo "$n round $r: ${c:-no container record} $a load $(cut -d' ' -f1 /proc/loadavg)"
done; done
echo "JSON in $OUT"

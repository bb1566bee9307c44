#!/usr/bin/env bash
# Scrape size and time of `vethtrace follow --prometheus` at N real containers (issue 17): whole-host follow as an
# agent, N busybox containers of this script's own, each pinging the lab's upstream namespace and (every second one)
# its neighbour container, scraped by curl and by a real Prometheus (Debian's 2.42) with the documented configuration.
#
#   benchmarks/prometheus-scrape.sh [N] [SECONDS]   # as root, the Docker lab up (tests/lab/lab-up.sh); default 50 and 60
#   VETHTRACE=path/to/vethtrace  (default: the Release build in src/VethTrace.Cli/bin; the figures in docs/prometheus.md
#   are of the Native AOT build users install: dotnet publish src/VethTrace.Cli -c Release -o DIR)   PORT (19517)
#
# Traffic goes only to the lab's upstream namespace (UPSTREAM_IP from /run/vethtrace-lab/env) and between the
# containers. Containers are named prom17b-scrape-I and removed at the end (trap), with follow and Prometheus (by PID)
# and the temporary directory. Phases:
#   1. N containers start; `vethtrace follow --egress EGRESS --prometheus 127.0.0.1:PORT --quiet` (stdout a file: an
#      agent) and a Prometheus scraping it every 5 s (scrape_timeout 4 s, as documented) start;
#   2. after SECONDS/2 (every container's hops seen), /metrics is fetched 5 times with curl, 2 s apart: bytes, series,
#      time (curl's time_total), and the series that carry a container label of this script's containers;
#   3. at SECONDS, Prometheus's own view of its scrapes: scrape_duration_seconds and scrape_samples_scraped (last, and
#      the average and maximum over the run), and follow's peak RSS (VmHWM).
set -euo pipefail
N="${1:-50}"
SECS="${2:-60}"
PORT="${PORT:-19517}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VETHTRACE="${VETHTRACE:-$ROOT/src/VethTrace.Cli/bin/Release/net10.0/vethtrace}"
ENV_FILE="${VETHTRACE_LAB_ENV:-/run/vethtrace-lab/env}"
[[ $EUID -eq 0 ]] || { echo "prometheus-scrape: run as root" >&2; exit 2; }
[[ -f $ENV_FILE ]] || { echo "prometheus-scrape: the lab is not up ($ENV_FILE missing)" >&2; exit 2; }
command -v prometheus >/dev/null || { echo "prometheus-scrape: prometheus is not installed (apt-get install prometheus)" >&2; exit 2; }
# shellcheck disable=SC1090
source "$ENV_FILE"
P=prom17b-scrape
WORK="$(mktemp -d /tmp/prom17b-scrape.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
docker ps -aq --filter "name=^$P-" | xargs -r docker rm -f >/dev/null 2>&1 || true

echo "prometheus-scrape: N=$N containers, ${SECS}s; $VETHTRACE ($(stat -c %s "$VETHTRACE") bytes); load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for (( i = 0; i < N; i++ )); do
    docker run -d --pull never --name "$P-$i" "$IMAGE" sh -c "ping -i 1 -s 64 $UPSTREAM_IP >/dev/null" >/dev/null
done
# Every second container also pings its neighbour (east-west across docker0), once its address is known.
for (( i = 0; i + 1 < N; i += 2 )); do
    peer=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$P-$((i + 1))")
    docker exec -d "$P-$i" sh -c "ping -i 1 -s 64 $peer >/dev/null"
done
echo "started $N containers: $(docker ps -q --filter "name=^$P-" | wc -l) running; all containers on the host: $(docker ps -q | wc -l)"

"$VETHTRACE" follow --egress "$EGRESS_IF" --prometheus "127.0.0.1:$PORT" --quiet --host-label bench > "$WORK/follow.out" 2> "$WORK/follow.err" &
FOLLOW=$!
PIDS+=("$FOLLOW")
sed -e "s/- 127.0.0.1:9417/- 127.0.0.1:$PORT/" "$ROOT/docs/prometheus/prometheus.yml" > "$WORK/prometheus.yml"
PROM_PORT=$((PORT + 1))
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" --web.listen-address="127.0.0.1:$PROM_PORT" > "$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
START=$(date +%s)

sleep $((SECS / 2))
kill -0 "$FOLLOW" 2>/dev/null || { echo "follow exited:"; cat "$WORK/follow.err"; exit 1; }
echo
echo "curl http://127.0.0.1:$PORT/metrics, 5 times (bytes, series, seconds, series of the $N containers, containers labelled):"
for (( k = 0; k < 5; k++ )); do
    read -r size took < <(curl -s -o "$WORK/scrape" -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$PORT/metrics")
    series=$(grep -vc '^#' "$WORK/scrape")
    mine=$(grep -v '^#' "$WORK/scrape" | grep -c "container=\"$P-" || true)
    labelled=$(grep -o "container=\"$P-[0-9]*\"" "$WORK/scrape" | sort -u | wc -l)
    echo "  $size bytes  $series series  ${took} s  $mine series of $P-*  $labelled containers"
    sleep 2
done
echo "  per container (series by container label, min/max over $P-*):" \
    "$(grep -o "container=\"$P-[0-9]*\"" "$WORK/scrape" | sort | uniq -c | awk 'NR==1{min=$1;max=$1} {if($1<min)min=$1; if($1>max)max=$1} END{print min"/"max}')"
echo "  every container label: $(grep -o 'container="[^"]*"' "$WORK/scrape" | sort -u | wc -l) ($(grep -o 'container="[^"]*"' "$WORK/scrape" | sort -u | grep -vc "$P-") not of this script: the lab's and other containers, _other)"

sleep $(( SECS - ($(date +%s) - START) > 0 ? SECS - ($(date +%s) - START) : 0 ))
read -r size took < <(curl -s -o "$WORK/scrape" -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$PORT/metrics")
echo "curl at the end: $size bytes  $(grep -vc '^#' "$WORK/scrape") series  ${took} s  $(grep -v '^#' "$WORK/scrape" | grep -c "container=\"$P-" || true) series of $P-*"
q() { curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(" ".join(x["value"][1] for x in r) or "none")'; }
echo
echo "Prometheus 2.42 (scrape_interval 5s, scrape_timeout 4s) after $(( $(date +%s) - START )) s:"
echo "  scrapes:                         $(q 'count_over_time(up{job="vethtrace"}[10m])') (up: $(q 'up{job="vethtrace"}'))"
echo "  scrape_duration_seconds last:    $(q 'scrape_duration_seconds{job="vethtrace"}')"
echo "  scrape_duration_seconds avg/max: $(q 'avg_over_time(scrape_duration_seconds{job="vethtrace"}[10m])') / $(q 'max_over_time(scrape_duration_seconds{job="vethtrace"}[10m])')"
echo "  scrape_samples_scraped last/max: $(q 'scrape_samples_scraped{job="vethtrace"}') / $(q 'max_over_time(scrape_samples_scraped{job="vethtrace"}[10m])')"
echo "  containers with a series:        $(q "count(count by (container) (vethtrace_journeys_total{container=~\"$P-.+\"}))")"
echo
echo "PromQL (promtool query instant), the slowest p99 through the bridge to the egress, per container, over 1 minute:"
promtool query instant "http://127.0.0.1:$PROM_PORT" \
    "topk(3, histogram_quantile(0.99, sum by (container, from, to, le) (rate(vethtrace_hop_latency_seconds_bucket{container=~\"$P-.+\",direction=\"outbound\",to=\"$EGRESS_IF\"}[1m]))))" || true
echo "Journeys a second, all $N containers and the busiest 3:"
promtool query instant "http://127.0.0.1:$PROM_PORT" "sum(rate(vethtrace_journeys_total{container=~\"$P-.+\"}[1m]))" || true
promtool query instant "http://127.0.0.1:$PROM_PORT" "topk(3, sum by (container) (rate(vethtrace_journeys_total{container=~\"$P-.+\"}[1m])))" || true
echo "Kernel drops (the one any handle):"
promtool query instant "http://127.0.0.1:$PROM_PORT" 'vethtrace_capture_kernel_drops_total' || true
echo
echo "follow: peak RSS $(awk '/VmHWM/{print $2, $3}' "/proc/$FOLLOW/status"); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$FOLLOW"
wait "$FOLLOW" || true
echo "follow's closing lines (stdout is a file: an agent, no line a second):"
grep -E '^(the whole host|capturing|[0-9]+ journeys|  any:)' "$WORK/follow.out" | sed 's/^/  /' || true
echo "  lines on stdout: $(wc -l < "$WORK/follow.out"); stderr: $(wc -l < "$WORK/follow.err")"

#!/usr/bin/env bash
# MySQLCluster high-availability benchmark (not a test: it measures).
#
#   bench/cluster-ha.sh [runs]      default 5 runs of each
#
# Needs the local environment (e2e/localenv.sh up). Starts its own operator
# (release build) as the chart's ServiceAccount, then measures:
#   - switchover: from `kubectl patch spec.primary` to the new primary
#     accepting a write;
#   - failover: from kill -9 of the primary's mariadbd to the new primary
#     accepting a write, minus failover.delaySeconds; and the same for a
#     frozen (SIGSTOP) primary, the path that really waits out the delay;
#   - the operator's peak RSS (VmHWM) while it manages 3 clusters.
# Goals (issue 4): switchover median <= 5 s; failover <= delaySeconds + 5 s.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-5}
STATE=${SWITCHYARD_STATE:-/var/lib/switchyard-localenv}
export KUBECONFIG=$STATE/kubeconfig
NS=bench-ha
DELAY=2
AGENT=$ROOT/target/debug/node-agent

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
"$ROOT/e2e/localenv.sh" operator-objects
"$ROOT/e2e/localenv.sh" stop-operator
(cd "$ROOT" && cargo build -q --release -p switchyard --bin switchyard && cargo build -q -p switchyard-e2e --bin node-agent)

KUBECONFIG=$STATE/operator.kubeconfig POD_NAMESPACE=switchyard-system \
  "$ROOT/target/release/switchyard" run --metrics-addr 127.0.0.1:18090 > /tmp/bench-ha-operator.log 2>&1 &
OP=$!
cleanup() { kill "$OP" 2>/dev/null || true; kubectl delete ns "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

kubectl create ns "$NS" >/dev/null 2>&1 || true
for c in db other1 other2; do
  cat <<YAML | kubectl apply -n "$NS" -f - >/dev/null
apiVersion: switchyard.io/v1alpha1
kind: MySQLCluster
metadata: {name: $c}
spec: {replicas: 3, storage: {size: 1Gi}, failover: {delaySeconds: $DELAY}}
YAML
done

field() { kubectl get myc db -n "$NS" -o jsonpath="$1"; }
wait_healthy() {
  for _ in $(seq 1 600); do
    [ "$(field '{.status.state}/{.status.readyReplicas}')" = "Healthy/3" ] && return 0
    sleep 0.2
  done
  echo "cluster not Healthy" >&2; exit 1
}
ip_of() { field "{.status.instances[?(@.name==\"$1\")].address}"; }
APP=$(kubectl get secret db-credentials -n "$NS" -o jsonpath='{.data.app-password}' 2>/dev/null | base64 -d || true)
wait_healthy
APP=$(kubectl get secret db-credentials -n "$NS" -o jsonpath='{.data.app-password}' | base64 -d)
primary=$(field '{.status.primary}')
mariadb -h "$(ip_of "$primary")" -u app -p"$APP" -e "CREATE DATABASE IF NOT EXISTS bench; CREATE TABLE IF NOT EXISTS bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DOUBLE)"

# Writes at `ip` until one is accepted.
write_until_accepted() {
  until mariadb --connect-timeout=1 -h "$1" -u app -p"$APP" -e "INSERT INTO bench.t (at) VALUES ($(now))" 2>/dev/null; do sleep 0.02; done
}

echo "switchover (patch -> new primary accepts a write):"
switch=()
for i in $(seq 1 "$RUNS"); do
  wait_healthy
  cur=$(field '{.status.primary}'); cur=${cur##*-}
  next=$(( (cur + 1) % 3 ))
  target_ip=$(ip_of "db-$next")
  t0=$(now)
  kubectl patch myc db -n "$NS" --type merge -p "{\"spec\":{\"primary\":$next}}" >/dev/null
  until [ "$(field '{.status.primary}')" = "db-$next" ]; do sleep 0.02; done
  write_until_accepted "$target_ip"
  s=$(elapsed "$t0" "$(now)"); switch+=("$s"); printf '  run %d: %.2f s\n' "$i" "$s"
done

# Fails the primary with SIGNAL, RUNS times; prints each run and leaves the
# seconds beyond the delay in the array named by the second argument.
measure_failover() { # measure_failover SIGNAL ARRAY
  local signal=$1 i old p t0 s f
  local -n out=$2
  for i in $(seq 1 "$RUNS"); do
    wait_healthy
    old=$(field '{.status.primary}')
    t0=$(now)
    "$AGENT" signal --state-dir "$STATE/node" --namespace "$NS" --pod "$old" --signal "$signal" >/dev/null
    until p=$(field '{.status.primary}') && [ -n "$p" ] && [ "$p" != "$old" ]; do sleep 0.02; done
    write_until_accepted "$(ip_of "$p")"
    s=$(elapsed "$t0" "$(now)"); f=$(echo "$s - $DELAY" | bc -l); out+=("$f")
    if [ "$signal" = STOP ]; then
      "$AGENT" signal --state-dir "$STATE/node" --namespace "$NS" --pod "$old" --signal CONT >/dev/null
    fi
    printf '  run %d: %.2f s total, %.2f s beyond the delay\n' "$i" "$s" "$f"
  done
  wait_healthy
}

echo "failover (kill -9 -> new primary accepts a write, minus delaySeconds=$DELAY):"
fail=()
measure_failover KILL fail

# A frozen primary (SIGSTOP) answers nothing: this is the path that waits
# failover.delaySeconds, where a killed one is seen restarted at once.
echo "failover (SIGSTOP -> new primary accepts a write, minus delaySeconds=$DELAY):"
freeze=()
measure_failover STOP freeze

rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$OP/status")
sw=$(printf '%s\n' "${switch[@]}" | median)
fo=$(printf '%s\n' "${fail[@]}" | median)
fo_max=$(printf '%s\n' "${fail[@]}" | sort -n | tail -1)
echo
printf 'switchover median      %.2f s   (goal <= 5 s: %.2fx of budget)\n' "$sw" "$(echo "$sw / 5" | bc -l)"
printf 'failover beyond delay  median %.2f s, worst %.2f s   (goal <= 5 s: worst is %.2fx of budget)\n' "$fo" "$fo_max" "$(echo "$fo_max / 5" | bc -l)"
fz=$(printf '%s\n' "${freeze[@]}" | median)
fz_max=$(printf '%s\n' "${freeze[@]}" | sort -n | tail -1)
printf 'freeze failover beyond delay  median %.2f s, worst %.2f s   (goal <= 5 s: worst is %.2fx of budget)\n' "$fz" "$fz_max" "$(echo "$fz_max / 5" | bc -l)"
printf 'operator peak RSS      %.1f MB with 3 clusters\n' "$(echo "$rss_kb / 1024" | bc -l)"

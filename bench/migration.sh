#!/usr/bin/env bash
# Migration benchmark (not a test: it measures).
#
#   bench/migration.sh [--runs N] [rows]      default 3 runs, 1000000 rows
#
# Needs the local environment (e2e/localenv.sh up). Starts its own operator
# (release build) and a one-instance MySQLCluster (the target). The source is
# a standalone MariaDB, sy-bench-a on 127.0.0.1:33071 (bench/movement.sh's
# source; sbtest.sbtest1 is reused when it has `rows` rows). In every run,
# the tools taking turns:
#   1. seed copy of sbtest (sbtest1, `rows` rows) to the target:
#      a Migration from kubectl apply until its step leaves SeedCopy (the
#      pre-flight checks and table creation included), against mydumper +
#      myloader (2 threads each) into the same target;
#   2. the switch's write-fenced window under load: a Migration of sbswitch
#      (sbtest1, 100000 rows) released at once while sysbench
#      oltp_write_only writes to it (2 threads, 200 tx/s);
#      status.switch.fencedMillis, which runs from the fence (LOCK TABLES
#      and triggers) to the moment the data source has moved, and so
#      includes the catch-up and the checksum of every moved row.
# Goals (issue 7): seed copy ≥ 1.0× mydumper + myloader; fenced window
# median ≤ 1 s.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
ROWS=1000000
SWITCH_ROWS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    [0-9]*) ROWS=$1 ;;
    *) sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# */usage: /' >&2; exit 2 ;;
  esac
  shift
done
STATE=${SWITCHYARD_STATE:-/var/lib/switchyard-localenv}
export KUBECONFIG=$STATE/kubeconfig
export PATH=$PATH:/usr/sbin
NS=bench-mig
WORK=${WORK:-/tmp/sy-bench-migration}
PW=switchyard
SRC_PORT=33071
mkdir -p "$WORK"

log() { echo "migration-bench: $*" >&2; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
src() { mariadb --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot -p"$PW" -N -B "$@"; }

missing=()
command -v sysbench >/dev/null || missing+=(sysbench)
command -v mydumper >/dev/null && command -v myloader >/dev/null || missing+=(mydumper)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$ROOT/hack/local-mariadb.sh" start sy-bench-a "$SRC_PORT"
start_operator "$ROOT" "$STATE" "$WORK/operator.log" 18092
SYSBENCH=""
cleanup() {
  [ -n "$SYSBENCH" ] && kill "$SYSBENCH" 2>/dev/null || true
  kill "$OP" 2>/dev/null || true
}
trap cleanup EXIT

sb() { # sb DB ROWS COMMAND [args]
  local db=$1 rows=$2
  shift 2
  sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" \
    --mysql-user=root --mysql-password="$PW" --mysql-db="$db" --tables=1 --table-size="$rows" "$@"
}
have=$(src -e "SELECT COUNT(*) FROM sbtest.sbtest1" 2>/dev/null || echo none)
if [ "$have" != "$ROWS" ]; then
  log "preparing sbtest.sbtest1 with $ROWS rows (had: $have)"
  src -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sb sbtest "$ROWS" prepare >"$WORK/prepare.log"
fi
src -e "DROP DATABASE IF EXISTS sbswitch; CREATE DATABASE sbswitch"
sb sbswitch "$SWITCH_ROWS" prepare >"$WORK/prepare-switch.log"
src -e "CHECKSUM TABLE sbtest.sbtest1" >/dev/null

one_instance_cluster "$NS" target
kubectl create secret generic legacy -n "$NS" --from-literal=username=root --from-literal=password="$PW" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
TPW=$(kubectl get secret target-credentials -n "$NS" -o jsonpath='{.data.root-password}' | base64 -d)
tgt() { mariadb --no-defaults -h"$IP" -P3306 -uroot -p"$TPW" -N -B "$@"; }

migration() { # migration NAME DB POSTPONE
  kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: switchyard.io/v1alpha1
kind: Migration
metadata: {name: $1}
spec:
  source: {external: {host: 127.0.0.1, port: $SRC_PORT, credentialsSecret: legacy}}
  target: {cluster: target}
  databases: [$2]
  postponeCompletion: $3
  switch: {lockWaitTimeoutSeconds: 5, backoffSeconds: 1}
YAML
}
step() { kubectl get migration "$1" -n "$NS" -o jsonpath='{.status.step}'; }
# Polls: the step passes SeedCopy into Incremental and on, and a watch for
# one value could miss a step that lasts less than the watch's latency.
wait_past() { # wait_past NAME STEP...: until the step is none of these
  local s
  for _ in $(seq 1 6000); do
    s=$(step "$1")
    case " ${*:2} " in *" $s "*) ;; *) [ "$s" = Failed ] && { kubectl get migration "$1" -n "$NS" -o yaml >&2; exit 1; }; return 0 ;; esac
    sleep 0.1
  done
  log "$1 stuck at $s"
  exit 1
}
wait_step() {
  if ! kubectl wait migration "$1" -n "$NS" --for=jsonpath='{.status.step}'="$2" --timeout=600s >/dev/null; then
    kubectl get migration "$1" -n "$NS" -o yaml >&2
    exit 1
  fi
}
unfence() { # the source's fence triggers on sbswitch.sbtest1
  for op in i u d; do src -e "DROP TRIGGER IF EXISTS sbswitch.switchyard_fence_${op}_sbtest1"; done
}

sy_t=() peer_t=() fenced=()
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: mydumper + myloader"
  tgt -e "DROP DATABASE IF EXISTS sbtest"
  rm -rf "$WORK/dump"
  t0=$(now)
  mydumper -h 127.0.0.1 -P "$SRC_PORT" -u root -p "$PW" -B sbtest -t 2 -o "$WORK/dump" >"$WORK/mydumper.log" 2>&1
  myloader -h "$IP" -P 3306 -u root -p "$TPW" -d "$WORK/dump" -t 2 -o >"$WORK/myloader.log" 2>&1
  peer_t+=("$(elapsed "$t0" "$(now)")")
  tgt -e "DROP DATABASE IF EXISTS sbtest"

  log "run $run/$RUNS: Migration seed copy"
  t0=$(now)
  migration "seed-$run" sbtest true
  wait_past "seed-$run" "" Pending SeedCopy
  sy_t+=("$(elapsed "$t0" "$(now)")")
  wait_step "seed-$run" Postponed
  kubectl delete migration "seed-$run" -n "$NS" >/dev/null

  log "run $run/$RUNS: switch under sysbench load"
  unfence
  tgt -e "DROP DATABASE IF EXISTS sbswitch"
  sb sbswitch "$SWITCH_ROWS" run --threads=2 --rate=200 --time=600 >"$WORK/sysbench.$run.log" 2>&1 &
  SYSBENCH=$!
  sleep 2
  migration "switch-$run" sbswitch false
  wait_step "switch-$run" Complete
  fenced+=("$(kubectl get migration "switch-$run" -n "$NS" -o jsonpath='{.status.switch.fencedMillis}')")
  kill "$SYSBENCH" 2>/dev/null || true
  wait "$SYSBENCH" 2>/dev/null || true
  SYSBENCH=""
  kubectl delete migration "switch-$run" -n "$NS" >/dev/null
done
unfence
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$OP/status")

SY=$(printf '%s\n' "${sy_t[@]}" | median)
PEER=$(printf '%s\n' "${peer_t[@]}" | median)
FM=$(printf '%s\n' "${fenced[@]}" | median)
cat <<EOF

Migration benchmark: $RUNS runs (medians); source 127.0.0.1:$SRC_PORT, target MySQLCluster primary $IP
  seed copy sbtest.sbtest1 ($ROWS rows)
    Migration (apply → past SeedCopy)      ${SY} s   (runs: ${sy_t[*]})
    mydumper + myloader (2 threads each)   ${PEER} s   (runs: ${peer_t[*]})
    speed vs mydumper + myloader           $(ratio "$PEER" "$SY")×   (goal ≥ 1.0)
  switch of sbswitch.sbtest1 ($SWITCH_ROWS rows) under sysbench oltp_write_only (2 threads, 200 tx/s)
    write-fenced window                    ${FM} ms   (runs: ${fenced[*]}; goal median ≤ 1000)
  operator peak RSS (VmHWM)                $((RSS_KB / 1024)) MB
EOF

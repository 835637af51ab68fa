#!/usr/bin/env bash
# OnlineDDL benchmark (not a test: it measures).
#
#   bench/onlineddl.sh [--runs N] [rows]      default 5 runs, 1000000 rows
#
# Needs the local environment (e2e/localenv.sh up). Starts its own operator
# (release build), creates a one-instance MySQLCluster, fills sbtest.sbtest1
# with sysbench, then, the tools taking turns in every run, rebuilds the
# table with the same ALTER (`ENGINE=InnoDB`: a full rebuild that leaves the
# table as it was, so every run starts equal):
#   1. OnlineDDL, strategy shadow: kubectl apply → status.step Complete
#      (copy, catch-up, checksum and cut-over included);
#   2. pt-online-schema-change, same ALTER, same table;
#   3. native ALTER TABLE ... ALGORITHM=COPY;
#   4. the cut-over write stall: an OnlineDDL held with postponeCompletion,
#      a writer inserting one row every 5 ms (e2e's write-probe), then the
#      release; the writer's worst latency over the cut-over;
#   5. the operator's peak RSS (VmHWM) over the whole run.
# Goals (issue 6): total ≤ 1.0× pt-osc; stall median ≤ 100 ms; RSS ≤ 100 MB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5
ROWS=1000000
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
NS=bench-ddl
WORK=${WORK:-/tmp/sy-bench-onlineddl}
mkdir -p "$WORK"

log() { echo "onlineddl-bench: $*" >&2; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

missing=()
command -v sysbench >/dev/null || missing+=(sysbench)
command -v pt-online-schema-change >/dev/null || missing+=(percona-toolkit)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

(cd "$ROOT" && cargo build -q -p switchyard-e2e --bin node-agent --bin write-probe)
PROBE=$ROOT/target/debug/write-probe
start_operator "$ROOT" "$STATE" "$WORK/operator.log" 18091
cleanup() { kill "$OP" 2>/dev/null || true; }
trap cleanup EXIT
one_instance_cluster "$NS" db
PW=$(kubectl get secret db-credentials -n "$NS" -o jsonpath='{.data.root-password}' | base64 -d)
sql() { mariadb --no-defaults -h"$IP" -uroot -p"$PW" -N -B "$@"; }

have=$(sql -e "SELECT COUNT(*) FROM sbtest.sbtest1" 2>/dev/null || echo none)
if [ "$have" -lt "$ROWS" ] 2>/dev/null || [ "$have" = none ]; then
  log "preparing sbtest.sbtest1 with $ROWS rows on $IP"
  sql -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sysbench oltp_write_only --db-driver=mysql --mysql-host="$IP" --mysql-user=root --mysql-password="$PW" \
    --mysql-db=sbtest --tables=1 --table-size="$ROWS" prepare >"$WORK/prepare.log"
fi
sql -e "CHECKSUM TABLE sbtest.sbtest1" >/dev/null   # warm the buffer pool

ddl() { # ddl NAME EXTRA-SPEC-LINES
  kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: switchyard.io/v1alpha1
kind: OnlineDDL
metadata: {name: $1}
spec:
  cluster: db
  database: sbtest
  table: sbtest1
  alter: "ENGINE=InnoDB"
  strategy: shadow
  retainOldTableSeconds: 0
$2
YAML
}
step() { kubectl get onlineddl "$1" -n "$NS" -o jsonpath='{.status.step}'; }
# A watch (kubectl wait), so the time is not rounded up to a polling period.
wait_step() { # wait_step NAME STEP
  if ! kubectl wait onlineddl "$1" -n "$NS" --for=jsonpath='{.status.step}'="$2" --timeout=300s >/dev/null; then
    kubectl get onlineddl "$1" -n "$NS" -o yaml >&2
    log "$1 never reached $2 (step: $(step "$1"))"
    exit 1
  fi
}
# The old table of a finished change is dropped by the controller right away
# (retainOldTableSeconds: 0); wait so the next run starts from one table.
wait_retired() {
  for _ in $(seq 1 300); do
    [ -z "$(sql -e "SHOW TABLES FROM sbtest LIKE '\\_sbtest1\\_old\\_%'")" ] && return 0
    sleep 0.2
  done
}

sy_t=() pt_t=() na_t=() stall=() opstall=()
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: OnlineDDL"
  t0=$(now)
  ddl "bench-$run" ""
  wait_step "bench-$run" Complete
  sy_t+=("$(elapsed "$t0" "$(now)")")
  wait_retired
  kubectl delete onlineddl "bench-$run" -n "$NS" >/dev/null

  log "run $run/$RUNS: pt-online-schema-change"
  t0=$(now)
  pt-online-schema-change --alter "ENGINE=InnoDB" "D=sbtest,t=sbtest1,h=$IP,u=root,p=$PW" \
    --execute --recursion-method=none --no-check-replication-filters --chunk-time=0.5 \
    --set-vars lock_wait_timeout=5 >"$WORK/ptosc.$run.log" 2>&1
  pt_t+=("$(elapsed "$t0" "$(now)")")

  log "run $run/$RUNS: ALTER TABLE ... ALGORITHM=COPY"
  t0=$(now)
  sql -e "ALTER TABLE sbtest.sbtest1 ENGINE=InnoDB, ALGORITHM=COPY"
  na_t+=("$(elapsed "$t0" "$(now)")")

  log "run $run/$RUNS: cut-over stall"
  ddl "stall-$run" "  postponeCompletion: true"
  wait_step "stall-$run" Postponed
  "$PROBE" "mysql://root:$PW@$IP:3306" sbtest.sbtest1 5 >"$WORK/probe.$run.json" &
  PR=$!
  sleep 1
  kubectl patch onlineddl "stall-$run" -n "$NS" --type merge -p '{"spec":{"postponeCompletion":false}}' >/dev/null
  wait_step "stall-$run" Complete
  sleep 1
  kill -TERM "$PR"
  wait "$PR" || true
  stall+=("$(sed 's/.*"maxMillis":\([0-9.]*\).*/\1/' "$WORK/probe.$run.json")")
  opstall+=("$(kubectl get onlineddl "stall-$run" -n "$NS" -o jsonpath='{.status.cutover.writeStallMillis}')")
  wait_retired
  kubectl delete onlineddl "stall-$run" -n "$NS" >/dev/null
done
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$OP/status")

SY=$(printf '%s\n' "${sy_t[@]}" | median)
PT=$(printf '%s\n' "${pt_t[@]}" | median)
NA=$(printf '%s\n' "${na_t[@]}" | median)
ST=$(printf '%s\n' "${stall[@]}" | median)
cat <<EOF

OnlineDDL benchmark: ALTER TABLE sbtest.sbtest1 ENGINE=InnoDB, $ROWS rows, $RUNS runs (medians)
  OnlineDDL (shadow; copy+catch-up+checksum+cut-over)   ${SY} s   (runs: ${sy_t[*]})
  pt-online-schema-change                               ${PT} s   (runs: ${pt_t[*]})
  ALTER TABLE ... ALGORITHM=COPY (blocks writes)        ${NA} s   (runs: ${na_t[*]})
  OnlineDDL / pt-osc                                    $(ratio "$SY" "$PT")×   (goal ≤ 1.0)
  OnlineDDL / native ALTER                              $(ratio "$SY" "$NA")×
  cut-over write stall, worst writer latency            ${ST} ms (runs: ${stall[*]}; goal: median ≤ 100)
  cut-over lock held (status.cutover.writeStallMillis)  ${opstall[*]} ms
  operator peak RSS (VmHWM)                             $((RSS_KB / 1024)) MB   (goal ≤ 100)
EOF

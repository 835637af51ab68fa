#!/usr/bin/env bash
# ShardSplit benchmark (not a test: it measures).
#
#   bench/shardsplit.sh [--runs N] [rows]      default 3 runs, 1000000 rows
#
# Needs the local environment (e2e/localenv.sh up). Starts its own operator
# (release build), creates a one-instance MySQLCluster, fills sbtest.sbtest1
# with sysbench, then, the three taking turns in every run, moves the whole
# table on that one server:
#   a. the plain engine copy: `switchyard move --then verify` of sbtest1
#      into one table (copy_plain). One target on the same server, so the
#      engine uses its in-server copy;
#   b. the engine's split: the same command into split_0..split_3 with
#      `--route-by hash:k`. With a router, the rows travel through the engine;
#   c. a ShardSplit (hash on id, 4 shards, postponeCompletion), from kubectl
#      apply until status.step is ReadyToComplete: shard creation, copy,
#      catch-up and the per-shard checksum, seen by a watch.
# All three include the catch-up and a full checksum. Ratios are
# throughput against (a): time(a) / time(x).
# Goal (issue 8): ShardSplit ≥ 0.8× the plain copy.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
ROWS=1000000
SHARDS=4
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
NS=bench-split
WORK=${WORK:-/tmp/sy-bench-shardsplit}
BIN=$ROOT/target/release/switchyard
ROUTING=sbtest1-routing
mkdir -p "$WORK"

log() { echo "shardsplit-bench: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

command -v sysbench >/dev/null || {
  log "installing sysbench"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench >/dev/null
}

# Builds target/release/switchyard, which (a) and (b) run too.
start_operator "$ROOT" "$STATE" "$WORK/operator.log" 18093
WATCH=""
cleanup() {
  if [ -n "$WATCH" ]; then kill "$WATCH" 2>/dev/null || true; fi
  kill "$OP" 2>/dev/null || true
}
trap cleanup EXIT
one_instance_cluster "$NS" db
PW=$(kubectl get secret db-credentials -n "$NS" -o jsonpath='{.data.root-password}' | base64 -d)
URL="mysql://root:$PW@$IP:3306"
sql() { mariadb --no-defaults -h"$IP" -uroot -p"$PW" -N -B "$@"; }
count() { sql -e "SELECT COUNT(*) FROM $1"; }

have=$(sql -e "SELECT COUNT(*) FROM sbtest.sbtest1" 2>/dev/null || echo none)
if [ "$have" != "$ROWS" ]; then
  log "preparing sbtest.sbtest1 with $ROWS rows on $IP (had: $have)"
  sql -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sysbench oltp_write_only --db-driver=mysql --mysql-host="$IP" --mysql-user=root --mysql-password="$PW" \
    --mysql-db=sbtest --tables=1 --table-size="$ROWS" prepare >"$WORK/prepare.log"
fi

shard_tables() { # shard_tables PREFIX: PREFIX0,PREFIX1,... (schema-qualified)
  local i out=""
  for i in $(seq 0 $((SHARDS - 1))); do out+="${out:+,}sbtest.$1$i"; done
  echo "$out"
}
# Leftovers of an aborted run. A ShardSplit is deleted through its
# finalizer, so the operator must be running first.
kubectl delete shardsplit --all -n "$NS" --ignore-not-found --timeout=120s >/dev/null
reset_tables() {
  sql -e "DROP TABLE IF EXISTS sbtest.copy_plain, $(shard_tables split_), $(shard_tables sbtest1_)"
  kubectl delete configmap "$ROUTING" -n "$NS" --ignore-not-found >/dev/null
}
reset_tables
sql -e "CHECKSUM TABLE sbtest.sbtest1" >/dev/null   # warm the buffer pool

# Waits until InnoDB has written back most dirty pages, so one measurement
# does not pay for the previous one's writes (as in bench/movement.sh).
settle() {
  local dirty
  sql -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
  for _ in $(seq 1 600); do
    dirty=$(sql -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
    [ "$dirty" -lt 200 ] && break
    sleep 0.1
  done
  sql -e "SET GLOBAL innodb_max_dirty_pages_pct = 90"
}

# move NAME TABLE-SPEC [ARGS...]: switchyard move --then verify from and to
# the cluster's primary; fails the benchmark unless source and targets match.
move() {
  local name=$1 spec=$2 rc=0
  shift 2
  rm -f "$WORK/$name.checkpoint"
  "$BIN" move --source "$URL" --target "$URL" --min-binlog-retention-hours 0 \
    --table "$spec" "$@" --then verify --checkpoint "$WORK/$name.checkpoint" \
    >"$WORK/$name.json" 2>"$WORK/$name.err" || rc=$?
  [ "$rc" = 0 ] || { tail -5 "$WORK/$name.err" >&2; cat "$WORK/$name.json" >&2; die "switchyard move ($name) exited with $rc"; }
}
sum_counts() { # sum_counts PREFIX
  local i n=0
  for i in $(seq 0 $((SHARDS - 1))); do n=$((n + $(count "sbtest.$1$i"))); done
  echo "$n"
}

shardsplit() { # shardsplit NAME
  kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: switchyard.io/v1alpha1
kind: ShardSplit
metadata: {name: $1}
spec:
  source: {cluster: db, database: sbtest, table: sbtest1}
  rule: {column: id, algorithm: hash, shards: $SHARDS}
  targets: {template: {table: "sbtest1_{shard}"}}
  routing: {configMap: $ROUTING}
  postponeCompletion: true
YAML
}
# A watch, so the time is not rounded up to a polling period. Postponed
# counts too: it only follows ReadyToComplete, and with postponeCompletion
# the step may pass on to it before a one-value watch (kubectl wait) sees
# ReadyToComplete. The watch is reopened if the API server ends it.
wait_ready() { # wait_ready NAME
  local name=$1 s fd rc deadline
  deadline=$(($(date +%s) + 900))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    exec {fd}< <(exec kubectl get shardsplit "$name" -n "$NS" -w -o jsonpath='{.status.step}{"\n"}' 2>>"$WORK/watch.err")
    WATCH=$!
    while :; do
      rc=0
      IFS= read -r -t 5 -u "$fd" s || rc=$?
      if [ "$rc" = 0 ]; then
        case $s in
          ReadyToComplete | Postponed) break 2 ;;
          Failed | Cancelled)
            kubectl get shardsplit "$name" -n "$NS" -o yaml >&2
            die "$name: step $s"
            ;;
        esac
      elif [ "$rc" -le 128 ]; then
        sleep 0.2 # the watch ended; reopen it
        break
      fi
      [ "$(date +%s)" -lt "$deadline" ] || break
    done
    kill "$WATCH" 2>/dev/null || true
    exec {fd}<&-
    WATCH=""
  done
  if [ -n "$WATCH" ]; then
    kill "$WATCH" 2>/dev/null || true
    exec {fd}<&-
    WATCH=""
    return 0
  fi
  kubectl get shardsplit "$name" -n "$NS" -o yaml >&2
  die "$name never reached ReadyToComplete"
}

plain_t=() split_t=() ss_t=()
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: a. switchyard move, plain copy"
  sql -e "CREATE TABLE sbtest.copy_plain LIKE sbtest.sbtest1"
  settle
  t0=$(now)
  move plain "sbtest.sbtest1=sbtest.copy_plain"
  plain_t+=("$(elapsed "$t0" "$(now)")")
  n=$(count sbtest.copy_plain)
  [ "$n" = "$ROWS" ] || die "copy_plain has $n rows, expected $ROWS"
  sql -e "DROP TABLE sbtest.copy_plain"

  log "run $run/$RUNS: b. switchyard move, split by hash:k"
  for i in $(seq 0 $((SHARDS - 1))); do sql -e "CREATE TABLE sbtest.split_$i LIKE sbtest.sbtest1"; done
  settle
  t0=$(now)
  move split "sbtest.sbtest1=$(shard_tables split_)" --route-by hash:k
  split_t+=("$(elapsed "$t0" "$(now)")")
  n=$(sum_counts split_)
  [ "$n" = "$ROWS" ] || die "split_0..$((SHARDS - 1)) hold $n rows, expected $ROWS"
  sql -e "DROP TABLE $(shard_tables split_)"

  log "run $run/$RUNS: c. ShardSplit"
  settle
  t0=$(now)
  shardsplit "split-$run"
  wait_ready "split-$run"
  ss_t+=("$(elapsed "$t0" "$(now)")")
  matched=$(kubectl get shardsplit "split-$run" -n "$NS" -o jsonpath='{.status.shards[*].checksumMatched}')
  # shellcheck disable=SC2086 # one word per shard
  [ "$(printf '%s\n' $matched | grep -cx true || true)" = "$SHARDS" ] ||
    log "warning: split-$run per-shard checksumMatched: '$matched'"
  n=$(sum_counts sbtest1_)
  [ "$n" = "$ROWS" ] || die "sbtest1_0..$((SHARDS - 1)) hold $n rows, expected $ROWS"
  if [ "$run" = "$RUNS" ]; then
    # Outside the timing: the operator's shards against the rule's SQL form
    # (docs/routing.md), and the published routing through the example client.
    for i in $(seq 0 $((SHARDS - 1))); do
      want=$(sql -e "SELECT COUNT(*) FROM sbtest.sbtest1 WHERE CRC32(id) % $SHARDS = $i")
      [ "$(count "sbtest.sbtest1_$i")" = "$want" ] || log "warning: sbtest1_$i differs from CRC32(id) % $SHARDS = $i ($want rows)"
    done
    python3 "$ROOT/examples/shard-router/router.py" --configmap "$ROUTING" -n "$NS" 1 2 3 >"$WORK/router.out" 2>&1 ||
      log "warning: examples/shard-router could not read the routing ConfigMap: $(tail -1 "$WORK/router.out")"
  fi
  log "   plain ${plain_t[-1]} s, split ${split_t[-1]} s, ShardSplit ${ss_t[-1]} s"
  kubectl delete shardsplit "split-$run" -n "$NS" --timeout=120s >/dev/null
  reset_tables
done
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$OP/status")

A=$(printf '%s\n' "${plain_t[@]}" | median)
B=$(printf '%s\n' "${split_t[@]}" | median)
C=$(printf '%s\n' "${ss_t[@]}" | median)
cat <<EOF

ShardSplit benchmark: sbtest.sbtest1 ($ROWS rows) into $SHARDS tables on one server, $RUNS runs (medians); MySQLCluster primary $IP
  a. switchyard move --then verify, one table (plain copy)      ${A} s   (runs: ${plain_t[*]})
  b. switchyard move --then verify, --route-by hash:k           ${B} s   (runs: ${split_t[*]})
  c. ShardSplit hash on id (apply → ReadyToComplete)            ${C} s   (runs: ${ss_t[*]})
  b. engine split, throughput                                   $(ratio "$A" "$B")× plain copy
  c. ShardSplit, throughput                                     $(ratio "$A" "$C")× plain copy   (goal ≥ 0.8)
  operator peak RSS (VmHWM)                                     $((RSS_KB / 1024)) MB
EOF

#!/usr/bin/env bash
# Data-movement engine benchmark (not a test: it measures).
#
#   bench/movement.sh [--runs N] [--stop] [--no-build] [rows]
#
# rows defaults to 1000000; the copies and checksums run N rounds (default
# 3), the tools taking turns, and the table shows medians.
#
# Starts two standalone MariaDB servers (hack/local-mariadb.sh: sy-bench-a on
# 127.0.0.1:33071 is the source, sy-bench-b on 33072 the target), fills
# sbtest.sbtest1 on a with sysbench (reused when it already has `rows` rows),
# then measures `switchyard move` (release build) against peers, in the same
# run:
#   1. cross-server copy of sbtest1 a -> b: switchyard --copy-only vs
#      mydumper + myloader (2 threads each) and vs mariadb-dump | mariadb;
#   2. same-server copy into a new table: switchyard vs INSERT ... SELECT;
#   3. change apply under load: `--then follow` while sysbench
#      oltp_write_only (2 threads, 30 s) writes on a; max and final lag;
#   4. checksum of source vs target: `--then verify` vs CHECKSUM TABLE on
#      both servers;
#   5. the engine's peak RSS during the cross-server copy (/usr/bin/time -v).
# Goals (the movement issue): cross-server copy >= 1.0x mydumper + myloader;
# same-server copy >= 0.8x INSERT ... SELECT;
# lag < 2 s under the load; peak RSS <= 100 MB.
#
# --stop stops both servers at the end (by default they keep running, so a
# rerun skips the sysbench prepare). --no-build uses target/release/switchyard
# as it is, even when src/ is newer. Scratch files go to $WORK (default
# /tmp/sy-bench-movement).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

STOP=0
BUILD=1
ROWS=1000000
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --stop) STOP=1 ;;
    --no-build) BUILD=0 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    [0-9]*) ROWS=$1 ;;
    *) sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# */usage: /' >&2; exit 2 ;;
  esac
  shift
done

BIN=$ROOT/target/release/switchyard
SERVERS=$ROOT/hack/local-mariadb.sh
WORK=${WORK:-/tmp/sy-bench-movement}
PW=switchyard
PORT_A=33071
PORT_B=33072
URL_A=mysql://root:$PW@127.0.0.1:$PORT_A
URL_B=mysql://root:$PW@127.0.0.1:$PORT_B
LOAD_SECONDS=30
export PATH=$PATH:/usr/sbin

log() { echo "movement-bench: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v p="$1" -v o="$2" 'BEGIN { if (o > 0) printf "%.2f", p / o; else print "-" }'; }
# $1 op $2, as awk sees it: yes or no.
holds() { awk -v a="$1" -v b="$3" "BEGIN { r = (a $2 b); if (r) print \"yes\"; else print \"no\" }"; }

sql() { # sql PORT [client args...]: batch mode, no column names
  local port=$1
  shift
  mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot -p"$PW" -N -B "$@"
}
sqla() { sql "$PORT_A" "$@"; }
sqlb() { sql "$PORT_B" "$@"; }
count() { sql "$1" -e "SELECT COUNT(*) FROM $2"; }

# --- tools and binary -------------------------------------------------------

missing=()
command -v sysbench >/dev/null || missing+=(sysbench)
command -v mydumper >/dev/null && command -v myloader >/dev/null || missing+=(mydumper)
[ -x /usr/bin/time ] || missing+=(time)
command -v mariadb-dump >/dev/null || missing+=(mariadb-client)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$BUILD" = 1 ]; then
  if [ ! -x "$BIN" ] || [ -n "$(cd "$ROOT" && find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit)" ]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release -q -p switchyard --bin switchyard)
  fi
fi
[ -x "$BIN" ] || die "$BIN is missing (run without --no-build)"

# --- servers and data -------------------------------------------------------

"$SERVERS" start sy-bench-a "$PORT_A"
"$SERVERS" start sy-bench-b "$PORT_B"
mkdir -p "$WORK"

FOLLOWER=""
SYSBENCH=""
cleanup() {
  [ -n "$SYSBENCH" ] && kill "$SYSBENCH" 2>/dev/null || true
  [ -n "$FOLLOWER" ] && kill -INT "$FOLLOWER" 2>/dev/null || true
  if [ "$STOP" = 1 ]; then
    "$SERVERS" stop sy-bench-a || true
    "$SERVERS" stop sy-bench-b || true
  fi
}
trap cleanup EXIT

SB=(sysbench oltp_write_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PORT_A"
  --mysql-user=root --mysql-password="$PW" --mysql-db=sbtest --tables=1 --table-size="$ROWS")

have=$(sqla -e "SELECT COUNT(*) FROM sbtest.sbtest1" 2>/dev/null || echo none)
if [ "$have" = "$ROWS" ]; then
  log "reusing sbtest.sbtest1 on sy-bench-a ($ROWS rows)"
else
  log "preparing sbtest.sbtest1 with $ROWS rows on sy-bench-a (had: $have)"
  sqla -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  "${SB[@]}" prepare >"$WORK/prepare.log"
fi
# Leftovers of an earlier run, then fresh binary logs on both servers: every
# checkpoint below is new, and the logs would otherwise grow with every run.
sqla -e "DROP TABLE IF EXISTS sbtest.sbtest1_copy, sbtest.sbtest1_copy2; RESET MASTER"
sqlb -e "DROP DATABASE IF EXISTS sbtest; RESET MASTER"
DDL=$(sqla -r -e "SHOW CREATE TABLE sbtest.sbtest1" | sed '1s/^[^\t]*\t//')
# Warm the source's buffer pool (the table fits in it) so that the first
# measured copy does not pay for reading it from disk.
sqla -e "CHECKSUM TABLE sbtest.sbtest1" >/dev/null

# Percent of all CPU time busy over 2 s (everything here shares the machine's
# cores; every figure below is a wall time).
cpu_busy() {
  local a b
  a=($(head -1 /proc/stat))
  sleep 2
  b=($(head -1 /proc/stat))
  awk -v u="$((b[1] + b[2] + b[3] + b[6] + b[7] - a[1] - a[2] - a[3] - a[6] - a[7]))" \
    -v t="$((b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] - a[1] - a[2] - a[3] - a[4] - a[5] - a[6] - a[7]))" \
    'BEGIN { printf "%.0f", (t > 0 ? 100 * u / t : 0) }'
}

# Waits until InnoDB has written back most dirty pages, so one measurement
# does not pay for the previous one's writes.
settle() {
  local port=$1 dirty i
  sql "$port" -e "SET GLOBAL innodb_max_dirty_pages_pct = 0"
  for i in $(seq 1 600); do
    dirty=$(sql "$port" -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
    [ "$dirty" -lt 200 ] && break
    sleep 0.1
  done
  sql "$port" -e "SET GLOBAL innodb_max_dirty_pages_pct = 90"
}
settle_both() { settle "$PORT_A"; settle "$PORT_B"; }

# An empty sbtest database on b, optionally with an empty sbtest1 as on a.
reset_b() {
  sqlb -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  [ "${1:-}" = table ] && sqlb sbtest -e "$DDL"
  settle_both
}

check_count() { # check_count WHAT PORT TABLE
  local n
  n=$(count "$2" "$3")
  [ "$n" = "$ROWS" ] || die "$1: $3 on port $2 has $n rows, expected $ROWS"
}

move() { # move ARGS...: switchyard move with the bench's defaults
  "$BIN" move --source "$URL_A" --min-binlog-retention-hours 0 "$@"
}

# The field of the one JSON summary line in FILE.
json_field() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" "$1" | tail -1 | tr -d '"'; }

# --- 1. cross-server copy (and 5. peak RSS) --------------------------------

settle_both
BUSY=$(cpu_busy)
[ "$BUSY" -le 10 ] || log "warning: the CPUs were ${BUSY}% busy before the measurements; figures will be noisy"

# The tools take turns, RUNS rounds, so that a disturbance hits all of them;
# the table reports medians. The engine goes last in each round: its last
# copy is the one the change apply (3.) continues.
CP=$WORK/cross.checkpoint
T_DUMP=() T_MYDUMPER=() T_SY=() RSS_COPY=()
for run in $(seq 1 "$RUNS"); do
  log "1. cross-server copy, round $run/$RUNS: mariadb-dump | mariadb"
  reset_b
  t0=$(now)
  mariadb-dump --no-defaults -h127.0.0.1 -P"$PORT_A" -uroot -p"$PW" --single-transaction sbtest sbtest1 \
    | mariadb --no-defaults -h127.0.0.1 -P"$PORT_B" -uroot -p"$PW" sbtest
  T_DUMP+=("$(elapsed "$t0" "$(now)")")
  check_count mariadb-dump "$PORT_B" sbtest.sbtest1

  log "1. cross-server copy, round $run/$RUNS: mydumper + myloader"
  reset_b
  rm -rf "$WORK/mydumper"
  # --rows splits the table into chunks, so both threads of each tool work on
  # the one table. --enable-binlog: myloader skips the target's binary log by
  # default; the engine and mariadb-dump are logged, so it is logged here too.
  t0=$(now)
  mydumper -h 127.0.0.1 -P "$PORT_A" -u root -p "$PW" --threads 2 --rows 100000 \
    -B sbtest --regex '^sbtest\.sbtest1$' -o "$WORK/mydumper" -v 1
  myloader -h 127.0.0.1 -P "$PORT_B" -u root -p "$PW" --threads 2 --overwrite-tables --enable-binlog \
    -d "$WORK/mydumper" -v 1
  T_MYDUMPER+=("$(elapsed "$t0" "$(now)")")
  check_count myloader "$PORT_B" sbtest.sbtest1

  log "1. cross-server copy, round $run/$RUNS: switchyard move --copy-only (under /usr/bin/time -v)"
  reset_b table
  rm -f "$CP"
  t0=$(now)
  /usr/bin/time -v -o "$WORK/copy.time" \
    "$BIN" move --source "$URL_A" --min-binlog-retention-hours 0 --target "$URL_B" \
    --table sbtest.sbtest1=sbtest.sbtest1 --checkpoint "$CP" --copy-only \
    >"$WORK/copy.json" 2>"$WORK/copy.err" || { cat "$WORK/copy.err" >&2; die "switchyard copy failed"; }
  T_SY+=("$(elapsed "$t0" "$(now)")")
  check_count "switchyard copy" "$PORT_B" sbtest.sbtest1
  RSS_COPY+=("$(awk -F: '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/copy.time")")
  log "   mariadb-dump ${T_DUMP[-1]} s, mydumper+myloader ${T_MYDUMPER[-1]} s, switchyard ${T_SY[-1]} s" \
    "(copySeconds $(json_field "$WORK/copy.json" copySeconds), peak RSS ${RSS_COPY[-1]} MB)"
done

# --- 3. apply under load ----------------------------------------------------

log "3. apply: switchyard move --then follow while sysbench writes for ${LOAD_SECONDS}s"
settle_both
# Not through move(): a function in the background runs in a subshell, and
# the SIGINT and the VmHWM below are for the engine itself.
"$BIN" move --source "$URL_A" --min-binlog-retention-hours 0 --target "$URL_B" \
  --table sbtest.sbtest1=sbtest.sbtest1 --checkpoint "$CP" --then follow \
  >"$WORK/follow.json" 2>"$WORK/follow.err" &
FOLLOWER=$!
lags() { grep -o '"lagSeconds":[0-9]*' "$WORK/follow.err" | cut -d: -f2; }
for i in $(seq 1 300); do
  [ -n "$(lags)" ] && break
  kill -0 "$FOLLOWER" 2>/dev/null || { cat "$WORK/follow.err" >&2; die "the follower exited"; }
  sleep 0.1
done
[ -n "$(lags)" ] || die "the follower reported no lag within 30 s"
before=$(lags | wc -l)
"${SB[@]}" --threads=2 --time="$LOAD_SECONDS" --report-interval=5 run >"$WORK/sysbench.log" &
SYSBENCH=$!
wait "$SYSBENCH" || die "sysbench run failed: $(tail -5 "$WORK/sysbench.log")"
SYSBENCH=""
t_end=$(now)
during=$(lags | tail -n +"$((before + 1))")
after=$(lags | wc -l)
LAG_MAX=$(echo "$during" | sort -n | tail -1)
LAG_FINAL=$(echo "$during" | tail -1)
LAG_SAMPLES=$(echo "$during" | wc -l)
TPS=$(sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$WORK/sysbench.log")
# Caught up: the first lag of 0 reported after the load stopped.
CATCHUP=""
for i in $(seq 1 3000); do
  # (awk reads to the end: with pipefail, grep -q would fail the pipeline.)
  if lags | awk -v n="$after" 'NR > n && $1 == 0 { found = 1 } END { exit !found }'; then
    CATCHUP=$(elapsed "$t_end" "$(now)")
    break
  fi
  kill -0 "$FOLLOWER" 2>/dev/null || { tail -5 "$WORK/follow.err" >&2; die "the follower exited"; }
  sleep 0.1
done
[ -n "$CATCHUP" ] || die "the follower did not catch up within 300 s of the load's end"
RSS_FOLLOW=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$FOLLOWER/status")
kill -INT "$FOLLOWER"
rc=0
wait "$FOLLOWER" || rc=$?
FOLLOWER=""
[ "$rc" = 0 ] || { tail -5 "$WORK/follow.err" >&2; die "the follower exited with $rc on SIGINT"; }
log "   lag max ${LAG_MAX}s, final ${LAG_FINAL}s over $LAG_SAMPLES samples, caught up ${CATCHUP}s after the load"

# --- 4. checksum ------------------------------------------------------------

# Each verify catches up (nothing to do) and compares the whole table again.
T_SUM_SY=() T_SUM_PEER=() EQUAL=true PEER_EQUAL=equal
for run in $(seq 1 "$RUNS"); do
  log "4. checksum, round $run/$RUNS: switchyard move --then verify, then CHECKSUM TABLE on a and b"
  settle_both
  rc=0
  move --target "$URL_B" --table sbtest.sbtest1=sbtest.sbtest1 --checkpoint "$CP" --then verify \
    >"$WORK/verify.json" 2>"$WORK/verify.err" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || { tail -5 "$WORK/verify.err" >&2; die "verify failed with $rc"; }
  [ "$(json_field "$WORK/verify.json" equal)" = true ] || { EQUAL=false; log "   verify: NOT equal: $(cat "$WORK/verify.json")"; }
  T_SUM_SY+=("$(printf '%.2f' "$(json_field "$WORK/verify.json" checksumSeconds)")")
  SUM_ROWS=$(json_field "$WORK/verify.json" rows)
  t0=$(now)
  SUM_A=$(sqla -e "CHECKSUM TABLE sbtest.sbtest1" | cut -f2)
  SUM_B=$(sqlb -e "CHECKSUM TABLE sbtest.sbtest1" | cut -f2)
  T_SUM_PEER+=("$(elapsed "$t0" "$(now)")")
  [ "$SUM_A" = "$SUM_B" ] || PEER_EQUAL="DIFFERENT ($SUM_A vs $SUM_B)"
  log "   switchyard ${T_SUM_SY[-1]} s, CHECKSUM TABLE ${T_SUM_PEER[-1]} s"
done

# --- 2. same-server copy ----------------------------------------------------

# Last: its writes on a would otherwise sit in the binary log the change
# apply reads. Each copy is dropped before the next one runs, to leave the
# buffer pool to the source table.
T_SAME_SY=() T_SAME_PEER=()
for run in $(seq 1 "$RUNS"); do
  log "2. same-server copy, round $run/$RUNS: switchyard move a -> a"
  sqla -e "DROP TABLE IF EXISTS sbtest.sbtest1_copy; CREATE TABLE sbtest.sbtest1_copy LIKE sbtest.sbtest1"
  settle_both
  rm -f "$WORK/same.checkpoint"
  t0=$(now)
  move --target "$URL_A" --table sbtest.sbtest1=sbtest.sbtest1_copy --checkpoint "$WORK/same.checkpoint" --copy-only \
    >"$WORK/same.json" 2>"$WORK/same.err" || { tail -5 "$WORK/same.err" >&2; die "switchyard same-server copy failed"; }
  T_SAME_SY+=("$(elapsed "$t0" "$(now)")")
  check_count "switchyard same-server copy" "$PORT_A" sbtest.sbtest1_copy
  sqla -e "DROP TABLE sbtest.sbtest1_copy"

  log "2. same-server copy, round $run/$RUNS: INSERT ... SELECT"
  sqla -e "DROP TABLE IF EXISTS sbtest.sbtest1_copy2; CREATE TABLE sbtest.sbtest1_copy2 LIKE sbtest.sbtest1"
  settle_both
  t0=$(now)
  sqla -e "INSERT INTO sbtest.sbtest1_copy2 SELECT * FROM sbtest.sbtest1"
  T_SAME_PEER+=("$(elapsed "$t0" "$(now)")")
  check_count "INSERT ... SELECT" "$PORT_A" sbtest.sbtest1_copy2
  sqla -e "DROP TABLE sbtest.sbtest1_copy2"
  log "   switchyard ${T_SAME_SY[-1]} s, INSERT ... SELECT ${T_SAME_PEER[-1]} s"
done

# --- report -----------------------------------------------------------------

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { printf '%s\n' "$@" | sort -n | tail -1; }
# "median s" and, with several runs, the runs in order.
cell() {
  if [ "$#" -gt 1 ]; then
    echo "$(median "$@") s ($(echo "$@" | sed 's/ /, /g'))"
  else
    echo "$1 s"
  fi
}

MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
RAM=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
VERSION=$(sqla -e "SELECT VERSION()")
M_SY=$(median "${T_SY[@]}")
R_SAME=$(ratio "$(median "${T_SAME_PEER[@]}")" "$(median "${T_SAME_SY[@]}")")
M_RSS=$(maximum "${RSS_COPY[@]}")
[ "$EQUAL" = true ] && SUM_MET=yes || SUM_MET=no

echo
echo "Machine: $(nproc) cores, $MODEL, $RAM RAM; MariaDB $VERSION (hack/local-mariadb.sh); $ROWS rows (sysbench sbtest1)"
echo "CPU busy just before the measurements (other work): ${BUSY}%"
echo "Switchyard: release build of $(date -r "$BIN" '+%F %T') (HEAD $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')), --workers 2"
echo "Times: median of $RUNS runs (the runs in order in brackets); ratios of medians."
echo
echo "| Measure | switchyard | Peer | Ratio (peer / switchyard) | Goal | Met? |"
echo "| --- | --- | --- | --- | --- | --- |"
R_CROSS=$(ratio "$(median "${T_MYDUMPER[@]}")" "$M_SY")
echo "| 1. cross-server copy, $ROWS rows | $(cell "${T_SY[@]}") | mydumper + myloader, 2 threads each: $(cell "${T_MYDUMPER[@]}") | $R_CROSS | ≥ 1.0 | $(holds "$R_CROSS" ">=" 1.0) |"
echo "| 1. cross-server copy, $ROWS rows | (same) | mariadb-dump \\| mariadb: $(cell "${T_DUMP[@]}") | $(ratio "$(median "${T_DUMP[@]}")" "$M_SY") | — | — |"
echo "| 2. same-server copy into a new table | $(cell "${T_SAME_SY[@]}") | INSERT … SELECT: $(cell "${T_SAME_PEER[@]}") | $R_SAME | ≥ 0.8 | $(holds "$R_SAME" ">=" 0.8) |"
echo "| 3. apply lag under sysbench oltp_write_only, 2 threads, ${LOAD_SECONDS} s ($TPS tx/s) | max $LAG_MAX s, final $LAG_FINAL s ($LAG_SAMPLES samples); caught up $CATCHUP s after the load | — | — | < 2 s | $(holds "$LAG_MAX" "<" 2) |"
echo "| 4. checksum source vs target, $SUM_ROWS rows | $(cell "${T_SUM_SY[@]}"), equal: $EQUAL | CHECKSUM TABLE on a + b: $(cell "${T_SUM_PEER[@]}"), $PEER_EQUAL | $(ratio "$(median "${T_SUM_PEER[@]}")" "$(median "${T_SUM_SY[@]}")") | equal | $SUM_MET |"
echo "| 5. engine peak RSS, cross-server copy (max of runs) | $M_RSS MB ($(echo "${RSS_COPY[@]}" | sed 's/ /, /g')) | — | — | ≤ 100 MB | $(holds "$M_RSS" "<=" 100) |"
echo "| engine peak RSS (VmHWM), apply under load | $RSS_FOLLOW MB | — | — | — | — |"

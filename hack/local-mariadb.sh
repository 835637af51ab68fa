#!/usr/bin/env bash
# Standalone MariaDB servers on 127.0.0.1, outside Kubernetes, for the data
# movement engine's integration tests and benchmarks (e2e/src/harness/servers.rs
# drives this script).
#
#   hack/local-mariadb.sh start NAME PORT [extra mariadbd args...]
#   hack/local-mariadb.sh stop NAME
#   hack/local-mariadb.sh wipe NAME
#   hack/local-mariadb.sh url NAME
#   hack/local-mariadb.sh stop-all
#
# Everything about NAME lives in $SWITCHYARD_MARIADB_DIR/NAME (default
# /var/lib/switchyard-mariadb): data/ (datadir and binlogs), mysqld.sock,
# mysqld.pid, error.log, and the port and args it was last started with.
# Every command is idempotent: `start` on a running server with the same
# arguments does nothing, with different arguments it restarts the server.
set -euo pipefail

BASE=${SWITCHYARD_MARIADB_DIR:-/var/lib/switchyard-mariadb}
PASSWORD=${SWITCHYARD_MARIADB_PASSWORD:-switchyard}
START_TIMEOUT=30
STOP_TIMEOUT=120
# mariadbd lives in /usr/sbin, which a non-login root shell may not have.
export PATH=$PATH:/usr/sbin

die() { echo "local-mariadb: $*" >&2; exit 1; }
log() { echo "local-mariadb: $*" >&2; }

usage() {
  sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

ensure_installed() {
  local missing=0 bin
  for bin in mariadbd mariadb-install-db mariadb mariadb-admin; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
  done
  if [ "$missing" = 1 ]; then
    log "installing mariadb-server and mariadb-client"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
}

valid_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad server name '$1' (letters, digits, _ . - only)"
}

# Per-server paths. The socket path must stay under the kernel's 108-byte
# sun_path limit, which a long SWITCHYARD_MARIADB_DIR could exceed.
paths() {
  DIR=$BASE/$1
  DATA=$DIR/data
  SOCK=$DIR/mysqld.sock
  PIDFILE=$DIR/mysqld.pid
  ERRLOG=$DIR/error.log
  [ "${#SOCK}" -lt 108 ] || die "socket path $SOCK is too long for a unix socket; use a shorter SWITCHYARD_MARIADB_DIR"
}

# Serialises commands on one server: tests in parallel may all ask for the
# same server at once. The lock sits beside the directory so `wipe` can
# remove the directory while holding it.
lock() {
  mkdir -p "$BASE"
  exec 9>"$BASE/.$1.lock"
  flock 9
}

# --no-defaults everywhere: /etc/mysql/my.cnf points clients at the system
# server's socket and would leak the distribution's server settings into ours.
client() { mariadb --no-defaults --protocol=socket --socket="$SOCK" -uroot "$@"; }
admin() { mariadb-admin --no-defaults --protocol=socket --socket="$SOCK" -uroot "$@"; }

# The pid of the running server, if any. The pid is checked against the
# process name because pids from an earlier boot of the machine get reused.
running_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = mariadbd ] || return 1
  echo "$pid"
}

answers() {
  # `ping` succeeds even when it is denied access: it only asks whether the
  # server accepts connections, which is the question here.
  admin --connect-timeout=2 ping >/dev/null 2>&1
}

is_up() {
  running_pid >/dev/null && answers
}

server_args() {
  local name=$1 port=$2
  shift 2
  SERVER_ARGS=(
    --datadir="$DATA"
    --socket="$SOCK"
    --pid-file="$PIDFILE"
    --log-error="$ERRLOG"
    --port="$port"
    --bind-address=127.0.0.1
    # Unique server ids keep the two ends of a replication stream apart; the
    # port is unique per host already. gtid_domain_id stays 0.
    --server-id="$port"
    --log-bin=mysql-bin
    --binlog-format=ROW
    --binlog-row-image=FULL
    --log-slave-updates
    --innodb-buffer-pool-size=512M
    --innodb-log-file-size=256M
    # Durability is not under test here; throughput is.
    --innodb-flush-log-at-trx-commit=2
    --sync-binlog=0
    --max-connections=300
    --character-set-server=utf8mb4
    --collation-server=utf8mb4_general_ci
    --skip-name-resolve
    --max-allowed-packet=256M
    "$@"
  )
}

# What this start attempt wrote, not what earlier runs left in the log.
startup_failure() {
  local from=$1
  shift
  echo "--- $ERRLOG (this start) ---" >&2
  tail -n +"$((from + 1))" "$ERRLOG" | tail -n 40 >&2 || true
  if [ -s "$DIR/stdout.log" ]; then
    echo "--- $DIR/stdout.log ---" >&2
    tail -n 20 "$DIR/stdout.log" >&2 || true
  fi
  die "$*"
}

# Alive and not a zombie waiting for this shell to reap it.
alive() {
  ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'
}

do_stop() {
  local pid waited=0
  pid=$(running_pid) || { rm -f "$PIDFILE"; return 0; }
  log "stopping $NAME (pid $pid)"
  admin --connect-timeout=5 --shutdown-timeout="$STOP_TIMEOUT" shutdown >/dev/null 2>&1 \
    || kill -TERM "$pid" 2>/dev/null || true
  while [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = mariadbd ]; do
    if [ "$waited" -ge $((STOP_TIMEOUT * 10)) ]; then
      log "$NAME did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      waited=0
    fi
    # A shutdown request lost to a server still starting up gets a signal.
    [ "$waited" = 50 ] && kill -TERM "$pid" 2>/dev/null || true
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$PIDFILE" "$SOCK"
}

set_up_users() {
  local host pw=${PASSWORD//\\/\\\\}
  pw=${pw//\'/\'\'}
  # sql_log_bin=0: the binlog then holds only what the tests write, so a
  # reader that starts at the first binlog does not replay account changes
  # onto the other server.
  {
    echo "SET sql_log_bin = 0;"
    # Anonymous accounts would win over root@'%' for some client hosts, and
    # the root@<hostname> accounts only fill the error log with warnings
    # under --skip-name-resolve.
    echo "DELETE FROM mysql.global_priv WHERE User = '' OR Host NOT IN ('localhost', '127.0.0.1', '::1', '%');"
    echo "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%');"
    for host in '%' '127.0.0.1'; do
      echo "CREATE USER IF NOT EXISTS 'root'@'$host' IDENTIFIED BY '$pw';"
      echo "ALTER USER 'root'@'$host' IDENTIFIED BY '$pw';"
      echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'$host' WITH GRANT OPTION;"
    done
    # mysql_async (prefer_socket, on by default) follows a TCP connection to
    # 127.0.0.1 with one over this socket, where it arrives as root@localhost.
    # Accepting the password there too lets that succeed instead of failing an
    # authentication per connection; unix_socket keeps this script password-free.
    echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$pw');"
    echo "FLUSH PRIVILEGES;"
  } | client
}

# These servers listen on ports inside Linux's ephemeral range (32768+), so
# a client connection elsewhere can hold one as its local port and the next
# start fails with "Address already in use". Reserving them keeps the kernel
# from handing them out. Best effort: it needs root.
reserve_port() {
  local f=/proc/sys/net/ipv4/ip_local_reserved_ports cur
  [ -w "$f" ] || return 0
  cur=$(cat "$f")
  case ",$cur," in *",$1,"*) return 0 ;; esac
  if [ -n "$cur" ]; then echo "$cur,$1" >"$f" 2>/dev/null || true; else echo "$1" >"$f" 2>/dev/null || true; fi
}

do_start() {
  local port=$1 waited=0 want have=""
  shift
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "bad port '$port'"
  reserve_port "$port"
  server_args "$NAME" "$port" "$@"
  want=$(printf '%s\n' "${SERVER_ARGS[@]}")
  [ -f "$DIR/args" ] && have=$(cat "$DIR/args")

  if is_up; then
    if [ "$want" = "$have" ]; then
      set_up_users
      return 0
    fi
    log "$NAME runs with other arguments; restarting it"
    do_stop
  elif running_pid >/dev/null; then
    # Alive but not answering: hung or half started. Start from a clean slate.
    do_stop
  fi

  mkdir -p "$DIR"
  if [ ! -d "$DATA/mysql" ]; then
    log "initialising $DATA"
    rm -rf "$DATA"
    if ! mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal \
      --skip-test-db --datadir="$DATA" >"$DIR/install.log" 2>&1; then
      cat "$DIR/install.log" >&2
      die "mariadb-install-db failed for $NAME"
    fi
  fi

  printf '%s\n' "$want" >"$DIR/args"
  echo "$port" >"$DIR/port"
  : >>"$ERRLOG"
  local errlog_start bgpid
  errlog_start=$(wc -l <"$ERRLOG")
  : >"$DIR/stdout.log"

  log "starting $NAME on 127.0.0.1:$port"
  # setsid + nohup + redirected stdio: the server must outlive this script and
  # the test process that ran it, and must not hold the caller's pipes open
  # (Command::output() would otherwise wait for the server to exit). 9>&-:
  # the server must not inherit the lock, or it holds it for its lifetime.
  setsid nohup mariadbd --no-defaults --user=root "${SERVER_ARGS[@]}" \
    </dev/null >>"$DIR/stdout.log" 2>&1 9>&- &
  # setsid does not fork here (a background job of a script is no process
  # group leader), so this is the server's own pid.
  bgpid=$!

  until answers; do
    if [ "$waited" -ge $((START_TIMEOUT * 10)) ]; then
      kill -TERM "$bgpid" 2>/dev/null || true
      startup_failure "$errlog_start" "$NAME did not answer on $SOCK within ${START_TIMEOUT}s"
    fi
    if ! alive "$bgpid"; then
      startup_failure "$errlog_start" "$NAME exited during startup"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  set_up_users
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift

case "$cmd" in
  start)
    [ $# -ge 2 ] || usage
    NAME=$1; shift
    valid_name "$NAME"
    ensure_installed
    paths "$NAME"
    lock "$NAME"
    do_start "$@"
    ;;
  stop)
    [ $# -eq 1 ] || usage
    NAME=$1
    valid_name "$NAME"
    paths "$NAME"
    lock "$NAME"
    do_stop
    ;;
  wipe)
    [ $# -eq 1 ] || usage
    NAME=$1
    valid_name "$NAME"
    paths "$NAME"
    lock "$NAME"
    do_stop
    rm -rf "$DIR"
    ;;
  url)
    [ $# -eq 1 ] || usage
    NAME=$1
    valid_name "$NAME"
    paths "$NAME"
    [ -f "$DIR/port" ] || die "$NAME has never been started (no $DIR/port)"
    echo "mysql://root:$PASSWORD@127.0.0.1:$(cat "$DIR/port")"
    ;;
  stop-all)
    [ $# -eq 0 ] || usage
    [ -d "$BASE" ] || exit 0
    for d in "$BASE"/*/; do
      [ -d "$d" ] || continue
      NAME=$(basename "$d")
      paths "$NAME"
      (lock "$NAME"; do_stop)
    done
    ;;
  *)
    usage
    ;;
esac

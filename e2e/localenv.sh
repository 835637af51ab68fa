#!/usr/bin/env bash
# Local Kubernetes for development and e2e: etcd + kube-apiserver +
# kube-controller-manager 1.20.2 built from Debian's source package, plus the
# project's node agent (the kubelet stand-in that runs pods as mariadbd, and
# mysql:* pods as Oracle MySQL 9.7 from a Debian sid root: hack/sid-root.sh).
#
#   e2e/localenv.sh up       install prerequisites, build (cached), start, wait
#   e2e/localenv.sh down     stop what `up` started (by pid); --wipe drops state
#   e2e/localenv.sh status   what runs, and how to use it
#   e2e/localenv.sh build    only install prerequisites and build the binaries
#   e2e/localenv.sh run      up, then install the CRDs and the chart's RBAC, start
#                            the operator as the chart's ServiceAccount, apply examples/
#   e2e/localenv.sh operator (re)start only the operator; stop-operator stops it
#   e2e/localenv.sh operator-objects   CRDs, RBAC and token kubeconfig, no operator
#
# Every step is idempotent: running `up` twice leaves one of each process.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_DIR=${SWITCHYARD_CACHE:-/var/cache/switchyard}
BIN_DIR=$CACHE_DIR/kubernetes-$K8S_VERSION/bin
STATE_DIR=${SWITCHYARD_STATE:-/var/lib/switchyard-localenv}
RUN_DIR=$STATE_DIR/run
KUBECONFIG_OUT=$STATE_DIR/kubeconfig
APISERVER_PORT=${SWITCHYARD_APISERVER_PORT:-6443}
ETCD_PORT=${SWITCHYARD_ETCD_PORT:-2379}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[localenv] %s\n' "$*" >&2; }
die() { printf '[localenv] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
APT_PACKAGES=(etcd-server golang-go golang-github-modern-go-reflect2-dev mariadb-server mariadb-client openssl rsync make)

have_all_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}

ensure_python_packages() {
  python3 -c 'import helm_python, yaml' 2>/dev/null && return 0
  log "installing Python packages from charts/requirements-test.txt"
  python3 -m pip install -q -r "$ROOT/charts/requirements-test.txt" >/dev/null \
    || die "pip install -r charts/requirements-test.txt failed (is PyPI reachable?)"
}

ensure_packages() {
  ensure_python_packages
  command -v cargo >/dev/null || die "cargo is missing: install a Rust toolchain (rustup)"
  if have_all_packages; then return 0; fi
  command -v apt-get >/dev/null || die "apt-get not found: install ${APT_PACKAGES[*]} by hand"
  log "installing Debian packages: ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null; }; then
    die "could not install ${APT_PACKAGES[*]} with apt-get (is a Debian mirror reachable?)"
  fi
  # mariadb-server's postinst may start a system-wide server; the node agent runs its own.
  if command -v systemctl >/dev/null && systemctl is-active -q mariadb 2>/dev/null; then systemctl stop mariadb || true; fi
  pkill -x mariadbd 2>/dev/null || true
  if ! command -v kubectl >/dev/null; then
    apt-get install -y -qq kubernetes-client >/dev/null || die "kubectl is missing and kubernetes-client could not be installed"
  fi
}

# ---------------------------------------------------------------- build
add_deb_src() {
  # A deb-src twin of each configured Debian entry, so `apt-get source` works.
  local f=/etc/apt/sources.list.d/debian.sources twin=/etc/apt/sources.list.d/switchyard-deb-src.sources
  [ -f "$twin" ] && return 0
  if [ -f "$f" ]; then
    sed 's/^Types: deb$/Types: deb-src/' "$f" > "$twin"
  elif [ -f /etc/apt/sources.list ]; then
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/switchyard-deb-src.list
  else
    die "no Debian apt source found to twin as deb-src"
  fi
  apt-get update -qq
}

build_kubernetes() {
  if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ]; then return 0; fi
  ensure_packages
  add_deb_src
  local src=$CACHE_DIR/src
  mkdir -p "$src" "$BIN_DIR"
  local tree
  tree=$(find "$src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  if [ -z "$tree" ]; then
    log "fetching Debian source package kubernetes"
    (cd "$src" && apt-get source -qq kubernetes >/dev/null 2>&1) || die "apt-get source kubernetes failed"
    tree=$(find "$src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  fi
  [ -n "$tree" ] || die "no kubernetes source tree under $src"
  # The vendored reflect2 1.0.1 segfaults under Go >= 1.18 on the first custom-resource write.
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$r2" ] || die "Debian's golang-github-modern-go-reflect2-dev is not installed"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r "$r2" "$tree/vendor/github.com/modern-go/reflect2"
  log "building kube-apiserver and kube-controller-manager $K8S_VERSION (cold: about 6 minutes)"
  (
    cd "$tree"
    export GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE=$CACHE_DIR/gocache
    # The Debian tree builds in GOPATH mode: place it at k8s.io/kubernetes.
    local gopath=$CACHE_DIR/gopath
    mkdir -p "$gopath/src/k8s.io"
    ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
    cd "$gopath/src/k8s.io/kubernetes"
    export GOPATH=$gopath
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" KUBE_BUILD_PLATFORMS=linux/amd64 > "$CACHE_DIR/build.log" 2>&1
  ) || die "kubernetes build failed; see $CACHE_DIR/build.log"
  local out
  out=$(find "$tree/_output" -type f -name kube-apiserver -path '*bin*' | head -1)
  [ -n "$out" ] || die "build produced no kube-apiserver; see $CACHE_DIR/build.log"
  cp "$(dirname "$out")/kube-apiserver" "$(dirname "$out")/kube-controller-manager" "$BIN_DIR/"
  log "cached binaries in $BIN_DIR"
}


# ---------------------------------------------------------------- processes
pidfile() { echo "$RUN_DIR/$1.pid"; }

running() {
  local pf; pf=$(pidfile "$1")
  [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

# start NAME CMD...: start a daemon once, recording its pid; logs go to $RUN_DIR/NAME.log
start() {
  local name=$1; shift
  if running "$name"; then return 0; fi
  mkdir -p "$RUN_DIR"
  setsid "$@" >>"$RUN_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
  log "started $name (pid $!, log $RUN_DIR/$name.log)"
}

stop() {
  local name=$1 pf pid i
  pf=$(pidfile "$name")
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pf"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2 i; shift 2
  for i in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${secs}s waiting for $what"
}

# ---------------------------------------------------------------- PKI
make_pki() {
  local pki=$STATE_DIR/pki
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/CN=switchyard-local-ca" 2>/dev/null
    cat > apiserver.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    # Always with an extension file: that makes X.509 v3 certificates, the only
    # version rustls (the operator's TLS stack) accepts.
    sign() { # sign NAME SUBJECT EXTFILE
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out "$1.crt" -extfile "$3" 2>/dev/null
      rm -f "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver" apiserver.ext
    sign controller-manager "/CN=system:kube-controller-manager" client.ext
    sign admin "/O=system:masters/CN=switchyard-admin" client.ext
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() { # write_kubeconfig FILE USER "USER FIELDS" [NAMESPACE]
  (
    umask 077 # it may hold a token
    cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: switchyard-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $STATE_DIR/pki/ca.crt
users:
- name: $2
  user: {$3}
contexts:
- name: $2
  context: {cluster: switchyard-local, user: $2${4:+, namespace: $4}}
current-context: $2
KC
  )
}

client_cert() { echo "client-certificate: $STATE_DIR/pki/$1.crt, client-key: $STATE_DIR/pki/$1.key"; }

# ---------------------------------------------------------------- control plane
start_control_plane() {
  local pki=$STATE_DIR/pki
  make_pki
  write_kubeconfig "$KUBECONFIG_OUT" admin "$(client_cert admin)"
  write_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" controller-manager "$(client_cert controller-manager)"
  mkdir -p "$STATE_DIR/etcd"
  start etcd etcd --name switchyard-local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster switchyard-local=http://127.0.0.1:2380
  wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" --insecure-port=0 \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota,NodeRestriction \
    --event-ttl=1h --v=1
  wait_for 90 kube-apiserver kubectl --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz
  start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --port=0 \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*' --leader-elect=false \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --v=1
  # The token controller must have issued the default ServiceAccount's token before pods can be created.
  wait_for 60 "the default ServiceAccount" kubectl --kubeconfig "$KUBECONFIG_OUT" -n default get serviceaccount default
}

# ---------------------------------------------------------------- node agent
NODE_AGENT=${SWITCHYARD_NODE_AGENT:-$ROOT/target/debug/node-agent}

# MySQL 9.7 stands in for every mysql:* image (8.0, 8.4, 9.x): the only Oracle
# MySQL Debian ships. SWITCHYARD_NO_MYSQL=1 skips it (mysql:* pods are refused).
MYSQL_PACKAGES=(mysql-server-core mysql-client-core)

mysql_root() {
  [ "${SWITCHYARD_NO_MYSQL:-}" = 1 ] && return 0
  "$ROOT/hack/sid-root.sh" ensure "${MYSQL_PACKAGES[@]}" >/dev/null || die "could not make the MySQL root (hack/sid-root.sh)"
  "$ROOT/hack/sid-root.sh" path
}

# The agent bind-mounts the state dir into the MySQL root; `down` undoes it,
# so nothing under the cache reaches into the state dir afterwards.
unshare_mysql_root() {
  local root m
  root=$("$ROOT/hack/sid-root.sh" path)
  for m in "$root$STATE_DIR/node" "$root/tmp/switchyard-sockets"; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" || umount -l "$m" || true; fi
  done
}

start_node_agent() {
  local mysql_args=() root
  root=$(mysql_root)
  [ -n "$root" ] && mysql_args=(--mysql-root "$root")
  if [ -z "${SWITCHYARD_NODE_AGENT:-}" ]; then
    log "building the node agent"
    (cd "$ROOT" && cargo build -q -p switchyard-e2e --bin node-agent) || die "cargo build of the node agent failed"
  fi
  [ -x "$NODE_AGENT" ] || die "no node agent binary at $NODE_AGENT"
  start node-agent "$NODE_AGENT" run --kubeconfig "$KUBECONFIG_OUT" --state-dir "$STATE_DIR/node" "${mysql_args[@]}"
  wait_for 60 "the local node to be Ready" \
    kubectl --kubeconfig "$KUBECONFIG_OUT" wait --for=condition=Ready node --all --timeout=1s
}

# ---------------------------------------------------------------- operator
OPERATOR_NAMESPACE=switchyard-system
OPERATOR_KUBECONFIG=$STATE_DIR/operator.kubeconfig
OPERATOR_METRICS=127.0.0.1:8080

kc() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }

# shop.orders with 1000 rows in the example cluster shop-db, once its
# primary takes writes (up to 5 minutes).
seed_example_table() {
  local ip="" ro pw
  for _ in $(seq 1 1500); do
    ip=$(kc get myc shop-db -o jsonpath='{.status.instances[?(@.role=="primary")].address}' 2>/dev/null || true)
    ro=$(kc get myc shop-db -o jsonpath='{.status.instances[?(@.role=="primary")].readOnly}' 2>/dev/null || true)
    [ -n "$ip" ] && [ "$ro" = false ] && break
    ip=""
    sleep 0.2
  done
  if [ -z "$ip" ]; then
    echo "shop-db has no writable primary yet; not applying examples/onlineddl.yaml and shardsplit.yaml" >&2
    return 1
  fi
  pw=$(kc get secret shop-db-credentials -o jsonpath='{.data.root-password}' | base64 -d)
  mariadb --no-defaults -h"$ip" -uroot -p"$pw" -e "
    CREATE DATABASE IF NOT EXISTS shop;
    CREATE TABLE IF NOT EXISTS shop.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, total DECIMAL(10,2));
    INSERT IGNORE INTO shop.orders SELECT seq, seq % 97, seq * 1.5 FROM shop.seq_1_to_1000;"
}

# The CRDs, and the chart's ServiceAccount and RBAC, so the local operator has
# exactly the permissions a Helm install grants.
install_operator_objects() {
  # --validate=false: Kubernetes 1.20's schema for CRDs predates
  # x-kubernetes-validations (CEL); the API server drops the rules, newer ones enforce them.
  kc apply --validate=false -f "$ROOT/crds/" >/dev/null
  kc wait --for=condition=Established crd --all --timeout=60s >/dev/null
  kc create namespace "$OPERATOR_NAMESPACE" --dry-run=client -o yaml | kc apply -f - >/dev/null
  python3 "$ROOT/e2e/chart-objects.py" --namespace "$OPERATOR_NAMESPACE" \
    ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding | kc apply -f - >/dev/null
  wait_for 60 "the operator ServiceAccount's token" \
    bash -c "kubectl --kubeconfig '$KUBECONFIG_OUT' -n $OPERATOR_NAMESPACE get sa switchyard -o jsonpath='{.secrets[0].name}' | grep -q ."
  local secret token
  secret=$(kc -n "$OPERATOR_NAMESPACE" get sa switchyard -o jsonpath='{.secrets[0].name}')
  token=$(kc -n "$OPERATOR_NAMESPACE" get secret "$secret" -o jsonpath='{.data.token}' | base64 -d)
  write_kubeconfig "$OPERATOR_KUBECONFIG" switchyard-operator "token: $token" "$OPERATOR_NAMESPACE"
}

start_operator() {
  install_operator_objects
  log "building the operator"
  (cd "$ROOT" && cargo build -q -p switchyard --bin switchyard) || die "cargo build of the operator failed"
  stop switchyard
  start switchyard env KUBECONFIG="$OPERATOR_KUBECONFIG" POD_NAMESPACE="$OPERATOR_NAMESPACE" \
    "$ROOT/target/debug/switchyard" run --metrics-addr "$OPERATOR_METRICS" --lease-name switchyard-leader
  wait_for 60 "the operator to become leader" \
    bash -c "curl -sf http://$OPERATOR_METRICS/metrics | grep -q '^switchyard_leader 1'"
  log "operator is leader (metrics on http://$OPERATOR_METRICS/metrics)"
}

status() {
  local name
  for name in etcd kube-apiserver kube-controller-manager node-agent switchyard; do
    if running "$name"; then printf '%-24s running (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"
    else printf '%-24s stopped\n' "$name"; fi
  done
  if running kube-apiserver; then
    printf '\nexport KUBECONFIG=%s\n' "$KUBECONFIG_OUT"
    kubectl --kubeconfig "$KUBECONFIG_OUT" get nodes 2>/dev/null || true
  fi
}

down() {
  local name i
  for name in switchyard node-agent kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  # The pods' servers outlive an agent restart on purpose (the next agent
  # adopts them); `down` means the node goes too. They are ours: their
  # command lines name this state directory.
  if pgrep -f -- "--datadir=$STATE_DIR/" >/dev/null; then
    pkill -TERM -f -- "--datadir=$STATE_DIR/" || true
    for i in $(seq 1 150); do pgrep -f -- "--datadir=$STATE_DIR/" >/dev/null || break; sleep 0.2; done
    pkill -KILL -f -- "--datadir=$STATE_DIR/" 2>/dev/null || true
    log "stopped the pods' database servers"
  fi
  unshare_mysql_root
  if [ "${1:-}" = "--wipe" ]; then
    rm -rf "$STATE_DIR"
    log "wiped $STATE_DIR"
  fi
}

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

cmd=${1:-}; shift || true
case "$cmd" in
  build) ensure_packages; build_kubernetes ;;
  up)
    ensure_packages
    build_kubernetes
    start_control_plane
    [ "${1:-}" = "--no-agent" ] || start_node_agent
    status
    ;;
  run)
    ensure_packages
    build_kubernetes
    start_control_plane
    start_node_agent
    start_operator
    # The OnlineDDL and ShardSplit examples work on shop.orders, so that
    # table is created in the example cluster first; an OnlineDDL of a
    # missing table fails.
    for f in "$ROOT"/examples/*.yaml; do
      case "$(basename "$f")" in
        onlineddl.yaml | shardsplit.yaml) ;;
        *) kc apply -f "$f" ;;
      esac
    done
    seed_example_table && kc apply -f "$ROOT/examples/onlineddl.yaml" -f "$ROOT/examples/shardsplit.yaml"
    status
    printf '\nTry: kubectl get switchyard -A    (operator log: %s)\n' "$RUN_DIR/switchyard.log"
    ;;
  operator) start_operator ;;
  operator-objects) install_operator_objects ;;
  stop-operator) stop switchyard ;;
  down) down "${1:-}" ;;
  status) status ;;
  *) usage ;;
esac

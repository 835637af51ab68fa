# Shared by the benchmarks that run against the local environment
# (bench/onlineddl.sh, bench/migration.sh). Source it; it defines functions
# only.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v p="$1" -v o="$2" 'BEGIN { if (o > 0) printf "%.2f", p / o; else print "-" }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# start_operator ROOT STATE LOG METRICS_PORT: the release build with the
# chart's ServiceAccount (as the e2e suite runs it), alone: the local
# environment's own operator is stopped first, since only one holds the
# Lease. Sets OP to its pid.
start_operator() {
  local root=$1 state=$2 logfile=$3 port=$4
  "$root/e2e/localenv.sh" operator-objects
  "$root/e2e/localenv.sh" stop-operator
  (cd "$root" && cargo build -q --release -p switchyard --bin switchyard)
  KUBECONFIG=$state/operator.kubeconfig POD_NAMESPACE=switchyard-system \
    "$root/target/release/switchyard" run --metrics-addr "127.0.0.1:$port" >"$logfile" 2>&1 &
  OP=$!
}

# one_instance_cluster NS NAME: applies a one-instance MySQLCluster sized
# for a 1M-row sysbench table and waits for its writable primary. Sets IP.
one_instance_cluster() {
  local ns=$1 name=$2
  kubectl create ns "$ns" >/dev/null 2>&1 || true
  kubectl apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: switchyard.io/v1alpha1
kind: MySQLCluster
metadata: {name: $name}
spec:
  replicas: 1
  storage: {size: 4Gi}
  config: {innodb_buffer_pool_size: "1G", innodb_log_file_size: "256M"}
YAML
  local ro
  IP=""
  for _ in $(seq 1 900); do
    IP=$(kubectl get myc "$name" -n "$ns" -o jsonpath='{.status.instances[?(@.role=="primary")].address}' 2>/dev/null || true)
    ro=$(kubectl get myc "$name" -n "$ns" -o jsonpath='{.status.instances[?(@.role=="primary")].readOnly}' 2>/dev/null || true)
    [ -n "$IP" ] && [ "$ro" = "false" ] && return 0
    sleep 0.2
  done
  echo "no writable primary for MySQLCluster $ns/$name" >&2
  return 1
}

#!/usr/bin/env bash
# The CRDs' CEL rules (x-kubernetes-validations) on a current API server.
#
# The local environment runs Kubernetes 1.20, which drops CEL rules, so nothing
# there refuses a change of an immutable field. This check runs the standalone
# apiextensions-apiserver 1.36 (built from Debian sid's
# golang-k8s-apiextensions-apiserver-dev in a sid root, cached) on a throwaway
# etcd, installs every CRD in $CRD_DIR, and then
#   1. creates every switchyard.io object of examples/*.yaml (other kinds, such
#      as the Migration example's Secret, are skipped with a note: the server
#      serves custom resources only);
#   2. runs every case in e2e/fixtures/crd-check/: valid/*.yaml must be accepted,
#      invalid/*.yaml must be refused with the message in its "# message:" header
#      (format and the list of rules covered: e2e/fixtures/crd-check/README.md);
#   3. checks that every CEL rule of every CRD is hit by at least one invalid case.
# It prints a summary and exits non-zero on any mismatch. etcd and the server
# are stopped on exit, whatever happens.
#
#   hack/crd-check.sh
#
# Environment:
#   CRD_DIR              CRDs to install (default crds/); a copy with a rule
#                        removed must make the check fail
#   CRD_CHECK_CASES      cases directory (default e2e/fixtures/crd-check)
#   CRD_CHECK_EXAMPLES   examples directory (default examples)
#   CRD_CHECK_PORT       server port (default 16443); CRD_CHECK_ETCD_PORT and
#                        CRD_CHECK_ETCD_PEER_PORT (default 23790, 23800): away
#                        from the local environment's 6443, 2379 and 2380
#   CRD_CHECK_REBUILD=1  build the server again even when one is cached
#   CRD_CHECK_KEEP=1     keep the temporary directory (logs, kubeconfig)
#   KUBECTL              kubectl to use (default: kubectl on PATH)
#   SWITCHYARD_CACHE     cache root (default /var/cache/switchyard)
#
# Cold (no sid root, no cached server): about 3 min debootstrap + 3 min of
# packages + 4 to 8 min of Go build. Warm: well under a minute.
#
# Notes on running the standalone server (see docs/crd-check.md):
# - authentication is by a client certificate (CN=crd-check, O=system:masters)
#   from a CA made for the run (--client-ca-file, --authentication-skip-lookup);
#   system:masters is always allowed, so no SubjectAccessReview is ever sent.
# - the server insists on a kubeconfig for its "core" API, token reviews and
#   access reviews; it gets one pointing at itself. Its Services informer then
#   never syncs, so readiness is read as /readyz?exclude=informer-sync, and
#   admission plugins and priority-and-fairness (which need the core API) are off.
# - the standalone server serves neither /apis nor CRDs' OpenAPI (that is the
#   aggregator's job in kube-apiserver), so kubectl gets a discovery cache
#   written from /apis/<group>/<version>, objects are created with
#   `kubectl create --raw ...?fieldValidation=Strict` (unknown fields refused),
#   and `kubectl patch` runs without client-side validation (unknown fields come
#   back as warnings, which fail the case).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${SWITCHYARD_CACHE:-/var/cache/switchyard}
CRD_DIR=${CRD_DIR:-$ROOT/crds}
CASES_DIR=${CRD_CHECK_CASES:-$ROOT/e2e/fixtures/crd-check}
EXAMPLES_DIR=${CRD_CHECK_EXAMPLES:-$ROOT/examples}
PORT=${CRD_CHECK_PORT:-16443}
ETCD_PORT=${CRD_CHECK_ETCD_PORT:-23790}
ETCD_PEER_PORT=${CRD_CHECK_ETCD_PEER_PORT:-23800}
KUBECTL=${KUBECTL:-kubectl}
DEB_PACKAGE=golang-k8s-apiextensions-apiserver-dev

log() { printf '[crd-check] %s\n' "$*" >&2; }
die() { printf '[crd-check] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- host tools
apt_install() {
  log "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } \
    || die "apt-get install $* failed (is a Debian mirror reachable?)"
}

ensure_host_tools() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v python3 >/dev/null || missing+=(python3)
  if [ "$KUBECTL" = kubectl ] && ! command -v kubectl >/dev/null; then missing+=(kubernetes-client); fi
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  command -v "$KUBECTL" >/dev/null || die "kubectl not found ($KUBECTL)"
  # etcd-server's postinst may start a system-wide etcd on 2379; ours uses its own ports.
}

# ---------------------------------------------------------------- the server
# The newest cached build, if any: a warm run does not touch the sid root.
cached_server() {
  local last
  last=$(ls -d "$CACHE_DIR"/apiextensions-apiserver-*/.complete 2>/dev/null | sort -V | tail -1)
  [ -n "$last" ] && [ -x "${last%/.complete}/apiextensions-apiserver" ] || return 1
  printf '%s' "${last%/.complete}"
}

build_server() {
  local sid ver upstream out gotmp t0 t1
  mkdir -p "$CACHE_DIR"
  exec 7> "$CACHE_DIR/apiextensions-apiserver.build.lock"
  flock 7
  if [ "${CRD_CHECK_REBUILD:-0}" != 1 ] && AEAS_DIR=$(cached_server); then
    exec 7>&-; return 0
  fi
  t0=$SECONDS
  log "making the sid root with Go and the k8s.io sources (cold: several minutes)"
  sid=$("$ROOT/hack/sid-root.sh" ensure golang-go "$DEB_PACKAGE" | tail -1)
  [ -d "$sid/usr/share/gocode/src/k8s.io/apiextensions-apiserver" ] || die "$DEB_PACKAGE has no sources in $sid"
  ver=$(chroot "$sid" dpkg-query -W -f='${Version}' "$DEB_PACKAGE")
  upstream=${ver%%-*}          # 0.36.4: k8s.io/* staging modules are 0.<minor>.<patch> of Kubernetes 1.<minor>.<patch>
  upstream=${upstream%%+*}
  out=$CACHE_DIR/apiextensions-apiserver-$ver
  log "building apiextensions-apiserver $ver (Kubernetes v1.${upstream#0.}) with $(chroot "$sid" env GOROOT=/usr/lib/go /usr/lib/go/bin/go version 2>/dev/null | awk '{print $3}'), GOPATH mode (cold: 4 to 8 minutes)"
  t1=$SECONDS
  gotmp=/tmp/crd-check-build.$$
  rm -rf "$sid$gotmp"; mkdir -p "$sid$gotmp"
  # No apt run inside the root while it compiles (hack/sid-root.sh takes this
  # lock exclusively; a shared hold here makes it wait for the build).
  exec 6< "$CACHE_DIR/sid-root.lock"
  flock -s 6
  # GOROOT and GOTELEMETRY are set because the root has no /proc (the go
  # command otherwise looks for itself through /proc/self/exe). CGO off: the
  # binary is static and runs on the host's older glibc.
  if ! chroot "$sid" env -i PATH=/usr/lib/go/bin:/usr/bin:/bin HOME=/root \
      GOROOT=/usr/lib/go GOTELEMETRY=off GOTOOLCHAIN=local GOFLAGS= \
      GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$gotmp/gocache" CGO_ENABLED=0 \
      go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=v1.${upstream#0.} \
        -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$(echo "$upstream" | cut -d. -f2)" \
      -o "$gotmp/apiextensions-apiserver" k8s.io/apiextensions-apiserver \
      > "$CACHE_DIR/apiextensions-apiserver-$ver.build.log" 2>&1; then
    tail -30 "$CACHE_DIR/apiextensions-apiserver-$ver.build.log" >&2
    grep -q 'cannot find package' "$CACHE_DIR/apiextensions-apiserver-$ver.build.log" \
      && log "a Go import is missing from the sid root: find its package with 'chroot $sid apt-file search' (or packages.debian.org) and add it to the ensure line in build_server"
    die "go build failed; log: $CACHE_DIR/apiextensions-apiserver-$ver.build.log"
  fi
  exec 6<&-
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  mv "$sid$gotmp/apiextensions-apiserver" "$out.tmp/"
  rm -rf "$sid$gotmp"    # the build cache (about 1.5 GB) is not kept
  printf 'apiextensions-apiserver from Debian sid %s %s, %s, built %s: go build %ss (sid root and packages %ss)\n' \
    "$DEB_PACKAGE" "$ver" "$(chroot "$sid" env GOROOT=/usr/lib/go /usr/lib/go/bin/go version 2>/dev/null)" "$(date -u +%FT%TZ)" "$((SECONDS - t1))" "$((t1 - t0))" \
    > "$out.tmp/BUILD-INFO"
  touch "$out.tmp/.complete"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built in $((SECONDS - t1))s (sid root and packages before it: $((t1 - t0))s): $out/apiextensions-apiserver"
  AEAS_DIR=$out
  exec 7>&-
}

ensure_server() {
  if [ "${CRD_CHECK_REBUILD:-0}" != 1 ] && AEAS_DIR=$(cached_server); then
    log "using cached $AEAS_DIR/apiextensions-apiserver"
  else
    build_server
  fi
  AEAS=$AEAS_DIR/apiextensions-apiserver
}

# ---------------------------------------------------------------- run etcd and the server
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PIDS=()
TMP=
cleanup() {
  local rc=$? pid i
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$TMP" ]; then
    if [ "${CRD_CHECK_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
      log "logs and kubeconfig kept in $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}

make_certs() {
  local d=$TMP/pki
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=crd-check-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=crd-check" \
    -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/client.ext" -out "$d/client.crt" 2>/dev/null
  KCFG=$TMP/kubeconfig
  cat > "$KCFG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: crd-check
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $d/ca.crt
users:
- name: crd-check
  user:
    client-certificate: $d/client.crt
    client-key: $d/client.key
contexts:
- name: crd-check
  context: {cluster: crd-check, user: crd-check, namespace: default}
current-context: crd-check
EOF
}

# kubectl, on this server only (never the caller's KUBECONFIG). The discovery
# cache is refreshed first: kubectl 1.20 trusts it for 10 minutes only.
DISCO=
kc() {
  [ -z "$DISCO" ] || find "$DISCO" -name '*.json' -exec touch {} +
  "$KUBECTL" --kubeconfig="$KCFG" --cache-dir="$TMP/kube-cache" --request-timeout=30s "$@"
}

start_etcd() {
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  etcd --name crd-check --data-dir "$TMP/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "crd-check=http://127.0.0.1:$ETCD_PEER_PORT" \
    > "$TMP/etcd.log" 2>&1 < /dev/null &
  PIDS+=($!)
  local i
  for i in $(seq 100); do
    curl -fsS "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$TMP/etcd.log" >&2; die "etcd exited"; }
    sleep 0.2
  done
  tail -20 "$TMP/etcd.log" >&2; die "etcd not healthy after 20s"
}

start_server() {
  log "starting $(basename "$AEAS_DIR") on https://127.0.0.1:$PORT"
  "$AEAS" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$PORT" \
    --cert-dir="$TMP/pki" --tls-cert-file="$TMP/pki/server.crt" --tls-private-key-file="$TMP/pki/server.key" \
    --client-ca-file="$TMP/pki/ca.crt" --authentication-skip-lookup \
    --kubeconfig="$KCFG" --authentication-kubeconfig="$KCFG" --authorization-kubeconfig="$KCFG" \
    --disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook \
    --enable-priority-and-fairness=false \
    > "$TMP/apiextensions-apiserver.log" 2>&1 < /dev/null &
  PIDS+=($!)
  local i
  for i in $(seq 150); do
    [ "$(kc get --raw '/readyz?exclude=informer-sync' 2>/dev/null)" = ok ] && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -30 "$TMP/apiextensions-apiserver.log" >&2; die "apiextensions-apiserver exited"; }
    sleep 0.2
  done
  tail -30 "$TMP/apiextensions-apiserver.log" >&2; die "apiextensions-apiserver not ready after 30s"
}

# Discovery for kubectl, from what the server does serve: /apis/<group> and
# /apis/<group>/<version>, for the CRD API and every group of installed CRDs.
write_discovery() {
  local g v groups
  DISCO=$TMP/kube-cache/discovery/127.0.0.1_$PORT
  mkdir -p "$DISCO"
  # Raw GETs need no discovery.
  groups=$(kc get --raw /apis/apiextensions.k8s.io/v1/customresourcedefinitions \
    | python3 -c 'import json,sys; print(" ".join(sorted({"apiextensions.k8s.io"} | {c["spec"]["group"] for c in json.load(sys.stdin)["items"]})))')
  : > "$TMP/groups.jsonl"
  for g in $groups; do
    kc get --raw "/apis/$g" > "$TMP/group.json"
    cat "$TMP/group.json" >> "$TMP/groups.jsonl"; echo >> "$TMP/groups.jsonl"
    for v in $(python3 -c 'import json,sys; print(" ".join(x["version"] for x in json.load(open(sys.argv[1]))["versions"]))' "$TMP/group.json"); do
      mkdir -p "$DISCO/$g/$v"
      kc get --raw "/apis/$g/$v" > "$DISCO/$g/$v/serverresources.json"
    done
  done
  python3 - "$TMP/groups.jsonl" > "$DISCO/servergroups.json" <<'EOF'
import json, sys
groups = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(json.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
EOF
}

install_crds() {
  local f n=0
  for f in "$CRD_DIR"/*.yaml; do
    [ -e "$f" ] || die "no CRDs in $CRD_DIR"
    create_object "$f" || die "installing $f failed: $OUT"
    n=$((n + 1))
  done
  kc wait --for=condition=Established crd --all --timeout=60s >/dev/null || die "CRDs not Established within 60s"
  log "$n CRDs from $CRD_DIR installed and Established"
}

# Every CEL rule of the installed CRDs: kind <TAB> path <TAB> rule <TAB> message.
list_rules() {
  kc get --raw /apis/apiextensions.k8s.io/v1/customresourcedefinitions | python3 -c '
import json, sys
def walk(kind, path, s):
    if not isinstance(s, dict):
        return
    for r in s.get("x-kubernetes-validations") or []:
        print("\t".join([kind, path or ".", r["rule"], r.get("message") or ("failed rule: " + r["rule"])]))
    for k, sub in (s.get("properties") or {}).items():
        walk(kind, path + "." + k, sub)
    if isinstance(s.get("items"), dict):
        walk(kind, path + "[*]", s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        walk(kind, path + "[*]", s["additionalProperties"])
for crd in json.load(sys.stdin)["items"]:
    for v in crd["spec"]["versions"]:
        walk(crd["spec"]["names"]["kind"], "", v.get("schema", {}).get("openAPIV3Schema", {}))
' | sort -u
}

# "plural namespaced" of KIND in group/version, from the discovery cache.
resource_of() { # apiVersion kind
  python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["resources"]:
    if r["kind"] == sys.argv[2] and "/" not in r["name"]:
        print(r["name"], "true" if r["namespaced"] else "false"); break
' "$DISCO/$1/serverresources.json" "$2"
}

# Create the one object in FILE (in namespace NS if it is namespaced) as a
# user would, refusing unknown fields: kubectl cannot validate on the client
# (the server has no OpenAPI for it), so the server does (fieldValidation=Strict).
# Sets OUT (kubectl's output) and OBJ (plural.version.group/name); returns
# kubectl's status.
create_object() { # file [ns]
  local json=$TMP/obj.json meta api kind name res plural namespaced path
  if ! OUT=$(kc create ${2:+-n "$2"} --dry-run=client --validate=false -o json -f "$1" 2>&1 > "$json"); then
    OBJ=; return 2
  fi
  meta=$(python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
if o.get("kind") == "List": sys.exit("one object per file, not a List")
print(o["apiVersion"], o["kind"], o["metadata"]["name"])' "$json") || { OUT="$meta"; OBJ=; return 2; }
  read -r api kind name <<< "$meta"
  res=$(resource_of "$api" "$kind")
  [ -n "$res" ] || { OUT="$kind is not served by $api"; OBJ=; return 2; }
  read -r plural namespaced <<< "$res"
  # plural.version.group: kubectl resolves that on its first try; plural.group
  # is first read as resource.version, misses, and drops the discovery cache.
  OBJ=$plural.${api#*/}.${api%%/*}/$name
  path=/apis/$api/$plural
  [ "$namespaced" = false ] || path=/apis/$api/namespaces/${2:-default}/$plural
  OUT=$(kc create --raw "$path?fieldValidation=Strict" -f "$json" 2>&1 >/dev/null)
}

# ---------------------------------------------------------------- examples
EXAMPLES_OK=0
EXAMPLES_SKIPPED=0
FAILURES=()
run_examples() {
  local f doc i api kind
  for f in "$EXAMPLES_DIR"/*.yaml; do
    [ -e "$f" ] || continue
    rm -rf "$TMP/docs"; mkdir -p "$TMP/docs"
    awk -v dir="$TMP/docs" 'BEGIN{n=0; out=sprintf("%s/%03d.yaml", dir, n)} /^---/ {n++; out=sprintf("%s/%03d.yaml", dir, n); next} {print > out}' "$f"
    for doc in "$TMP"/docs/*.yaml; do
      api=$(awk '/^apiVersion:/ {print $2; exit}' "$doc")
      kind=$(awk '/^kind:/ {print $2; exit}' "$doc")
      [ -n "$api$kind" ] || continue
      if [ "${api%%/*}" != switchyard.io ]; then
        printf '  skip     %s: %s %s (not a switchyard.io kind; the apiextensions-apiserver serves only custom resources)\n' "${f#"$ROOT"/}" "$api" "$kind"
        EXAMPLES_SKIPPED=$((EXAMPLES_SKIPPED + 1))
        continue
      fi
      if create_object "$doc" examples; then
        printf '  created  %s: %s %s\n' "${f#"$ROOT"/}" "$kind" "${OBJ#*/}"
        EXAMPLES_OK=$((EXAMPLES_OK + 1))
      else
        printf '  REFUSED  %s: %s\n%s\n' "${f#"$ROOT"/}" "$kind" "$(sed 's/^/           /' <<< "$OUT")"
        FAILURES+=("example ${f#"$ROOT"/} ($kind) refused: $OUT")
      fi
    done
  done
}

# ---------------------------------------------------------------- cases
VALID_OK=0
INVALID_OK=0
COVERED=()     # "Kind<TAB>message" of each invalid case that passed
CASE_NO=0

# One case. Prints one line; on a mismatch appends to FAILURES.
run_case() { # file expect(valid|invalid)
  local f=$1 expect=$2 rel=${1#"$CASES_DIR"/} message ns kind n i last rc patch
  local -a patches=()
  message=$(sed -n 's/^# message: *//p' "$f" | head -1)
  while IFS= read -r patch; do patches+=("$patch"); done < <(sed -n 's/^# patch: *//p' "$f")
  kind=$(awk '/^kind:/ {print $2; exit}' "$f")
  CASE_NO=$((CASE_NO + 1)); ns=case-$CASE_NO
  fail() { printf '  FAIL     %s: %s\n' "$rel" "$1"; [ -z "${2:-}" ] || sed 's/^/           /' <<< "$2"; FAILURES+=("$rel: $1${2:+: $2}"); }
  if [ "$expect" = invalid ]; then
    [ -n "$message" ] || { fail "no '# message:' header"; return; }
    grep -qxF "$kind"$'\t'"$message" "$TMP/rule-messages" \
      || fail "'$message' is the message of no CEL rule of $kind in $CRD_DIR"
  fi
  n=${#patches[@]}
  # The create: the step under test when there is no patch.
  create_object "$f" "$ns" && rc=0 || rc=$?
  if [ "$n" -gt 0 ] && [ "$rc" != 0 ]; then fail "the object to patch was refused" "$OUT"; return; fi
  if [ "$n" -eq 0 ]; then last=create; else
    for ((i = 0; i < n; i++)); do
      OUT=$(kc patch -n "$ns" "$OBJ" --type=merge -p "${patches[$i]}" 2>&1) && rc=0 || rc=$?
      if [ "$rc" = 0 ] && grep -q 'unknown field' <<< "$OUT"; then
        fail "patch $((i + 1)) names a field the schema does not have" "$OUT"; return
      fi
      if [ $((i + 1)) -lt "$n" ] || [ "$expect" = valid ]; then
        if [ "$rc" != 0 ]; then
          if [ "$expect" = invalid ]; then fail "patch $((i + 1)) of $n (a step before the one under test) was refused" "$OUT"
          else fail "patch $((i + 1)) of $n was refused" "$OUT"; fi
          return
        fi
        if grep -q '(no change)' <<< "$OUT"; then fail "patch $((i + 1)) changed nothing, so it tests nothing" "$OUT"; return; fi
      fi
    done
    last="patch $n"
  fi
  if [ "$expect" = valid ]; then
    if [ "$n" -eq 0 ] && [ "$rc" != 0 ]; then fail "create was refused" "$OUT"; return; fi
    printf '  ok       %s: accepted (%s)\n' "$rel" "$([ "$n" -eq 0 ] && echo create || echo "create + $n patches")"
    VALID_OK=$((VALID_OK + 1))
  else
    if [ "$rc" = 0 ]; then fail "$last was accepted; expected refusal with '$message'" "$OUT"; return; fi
    if ! grep -qF -- "$message" <<< "$OUT"; then fail "$last was refused, but not with '$message'" "$OUT"; return; fi
    printf '  ok       %s: %s refused: %s\n' "$rel" "$last" "$message"
    INVALID_OK=$((INVALID_OK + 1))
    COVERED+=("$kind"$'\t'"$message")
  fi
}

run_cases() {
  local f
  for f in "$CASES_DIR"/valid/*.yaml; do [ -e "$f" ] && run_case "$f" valid; done
  for f in "$CASES_DIR"/invalid/*.yaml; do [ -e "$f" ] && run_case "$f" invalid; done
}

check_coverage() {
  local kind path rule message c hit
  RULES_TOTAL=0; RULES_COVERED=0
  while IFS=$'\t' read -r kind path rule message; do
    RULES_TOTAL=$((RULES_TOTAL + 1)); hit=0
    for c in "${COVERED[@]}"; do [ "$c" = "$kind"$'\t'"$message" ] && { hit=1; break; }; done
    if [ "$hit" = 1 ]; then
      RULES_COVERED=$((RULES_COVERED + 1))
      printf '  covered  %s %s: %s (%s)\n' "$kind" "$path" "$rule" "$message"
    else
      printf '  MISSING  %s %s: %s (%s): no invalid case is refused with this message\n' "$kind" "$path" "$rule" "$message"
      FAILURES+=("rule $kind $path '$rule' ($message) is covered by no invalid case in $CASES_DIR/invalid")
    fi
  done < "$TMP/rules"
}

# ---------------------------------------------------------------- main
main() {
  local t0=$SECONDS
  [ -d "$CRD_DIR" ] || die "CRD_DIR $CRD_DIR is not a directory"
  [ -d "$CASES_DIR/valid" ] && [ -d "$CASES_DIR/invalid" ] || die "$CASES_DIR needs valid/ and invalid/"
  ensure_host_tools
  ensure_server
  local p
  for p in "$PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
    port_in_use "$p" && die "127.0.0.1:$p is in use (another crd-check?); set CRD_CHECK_PORT / CRD_CHECK_ETCD_PORT / CRD_CHECK_ETCD_PEER_PORT"
  done
  TMP=$(mktemp -d /tmp/crd-check.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  make_certs
  start_etcd
  start_server
  log "server $(kc version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), client $("$KUBECTL" version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
  write_discovery
  install_crds
  write_discovery
  list_rules > "$TMP/rules"
  cut -f1,4 "$TMP/rules" > "$TMP/rule-messages"
  log "$(wc -l < "$TMP/rules") CEL rules in the installed CRDs"

  echo "examples ($EXAMPLES_DIR):"
  run_examples
  echo "cases ($CASES_DIR):"
  run_cases
  echo "CEL rules:"
  check_coverage

  echo
  printf 'crd-check on apiextensions-apiserver %s (%ss):\n' "${AEAS_DIR##*/apiextensions-apiserver-}" "$((SECONDS - t0))"
  printf '  %d examples created (%d non-switchyard documents skipped)\n' "$EXAMPLES_OK" "$EXAMPLES_SKIPPED"
  printf '  %d valid accepted\n' "$VALID_OK"
  printf '  %d invalid refused with the expected message\n' "$INVALID_OK"
  printf '  %d of %d CEL rules covered\n' "$RULES_COVERED" "$RULES_TOTAL"
  if [ ${#FAILURES[@]} -gt 0 ]; then
    printf '  %d mismatches:\n' "${#FAILURES[@]}"
    local m
    for m in "${FAILURES[@]}"; do printf '    - %s\n' "$(head -1 <<< "$m")"; done
  fi
  printf 'crd-check: %d passed, %d failed\n' "$((EXAMPLES_OK + VALID_OK + INVALID_OK + RULES_COVERED))" "${#FAILURES[@]}"
  [ ${#FAILURES[@]} -eq 0 ]
}

main "$@"

#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls this) and what the README
# calls "the test command".
#
#   hack/test.sh           everything: lint, unit tests, CRD freshness, chart, e2e
#   hack/test.sh --no-e2e  everything but the e2e suite (no control plane needed)
#
# The e2e suite brings the local environment up itself (e2e/localenv.sh up) and
# takes it down afterwards if it started it. With KUBECONFIG pointing at a real
# cluster and SWITCHYARD_EXTERNAL_CLUSTER=1, the e2e tests run there instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
E2E=1
[ "${1:-}" = "--no-e2e" ] && E2E=0

step() { printf '\n==> %s\n' "$*"; }

step "prerequisites"
# Unit tests and lint need only cargo and Python; the e2e step installs the rest.
python3 -c 'import helm_python, yaml, pytest' 2>/dev/null \
  || python3 -m pip install -q -r charts/requirements-test.txt

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "unit tests"
cargo test --workspace --lib --bins

step "CRDs in crds/ and the chart match the Rust types"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run -q -p switchyard --bin switchyard -- crd --out-dir "$tmp"
for dir in crds charts/switchyard/files/crds; do
  if ! diff -r "$tmp" "$dir"; then
    echo "$dir is stale: run 'cargo run -p switchyard -- crd --out-dir crds --out-dir charts/switchyard/files/crds'" >&2
    exit 1
  fi
done

step "Helm chart lint and render tests"
python3 -m pytest -q charts/test_chart.py

# With the e2e suite only: it needs the sid root and ~10 min cold (docs/crd-check.md).
if [ "$E2E" = 1 ]; then
  step "CRDs' CEL rules on a current API server (apiextensions-apiserver 1.36)"
  hack/crd-check.sh
fi

if [ "$E2E" = 1 ]; then
  step "e2e suite"
  hack/e2e.sh
fi

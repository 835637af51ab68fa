#!/usr/bin/env bash
# A Debian unstable (sid) root file system, for the two things this machine's
# Debian (bookworm) cannot run: Oracle MySQL 9.7 (needs glibc >= 2.38) and a
# current apiextensions-apiserver (needs sid's Go and k8s.io sources).
#
#   hack/sid-root.sh ensure PKG...   make the root (cached), install PKG... in it
#   hack/sid-root.sh path            print the root's directory
#
# The root lives in $SWITCHYARD_CACHE (default /var/cache/switchyard)/sid-root
# and is made once; later calls only install what is missing. Two callers at
# once are serialised by a lock, so the local environment and the CRD check can
# both ask for it.
set -euo pipefail
CACHE_DIR=${SWITCHYARD_CACHE:-/var/cache/switchyard}
SID_ROOT=$CACHE_DIR/sid-root
LOCK=$CACHE_DIR/sid-root.lock

log() { printf '[sid-root] %s\n' "$*" >&2; }
die() { printf '[sid-root] error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror apt already uses: the machine reaches no other.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt"
  printf '%s' "$uri"
}

make_root() {
  [ -f "$SID_ROOT/.switchyard-complete" ] && return 0
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
      || die "could not install debootstrap"
  }
  # A half-made root (an interrupted debootstrap) is made again from scratch.
  rm -rf "$SID_ROOT"
  local m
  m=$(mirror)
  log "debootstrap sid from $m (cold: about 3 minutes)"
  debootstrap --variant=minbase --include=ca-certificates sid "$SID_ROOT" "$m" > "$CACHE_DIR/sid-root.debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $CACHE_DIR/sid-root.debootstrap.log"
  # The machine's apt settings (its mirror's Release file is past its
  # Valid-Until) are what lets apt inside the root use the mirror at all.
  # debootstrap wants an empty directory, so they are copied after it.
  cp /etc/apt/apt.conf.d/* "$SID_ROOT/etc/apt/apt.conf.d/"
  # No service may start inside the root when a package is installed.
  printf '#!/bin/sh\nexit 101\n' > "$SID_ROOT/usr/sbin/policy-rc.d"
  chmod +x "$SID_ROOT/usr/sbin/policy-rc.d"
  touch "$SID_ROOT/.switchyard-complete"
}

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    chroot "$SID_ROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing in the sid root: ${missing[*]}"
  cp /etc/resolv.conf "$SID_ROOT/etc/resolv.conf" 2>/dev/null || true
  chroot "$SID_ROOT" env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"' sh "${missing[@]}" \
    > "$CACHE_DIR/sid-root.apt.log" 2>&1 || die "apt-get install ${missing[*]} failed in the sid root; see $CACHE_DIR/sid-root.apt.log"
}

case "${1:-}" in
  ensure)
    shift
    mkdir -p "$CACHE_DIR"
    exec 9> "$LOCK"
    flock 9
    make_root
    ensure_packages "$@"
    echo "$SID_ROOT"
    ;;
  path) echo "$SID_ROOT" ;;
  *) echo "usage: $0 ensure PKG... | path" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs what alacarte needs on a fresh Debian machine, and nothing that is already there.
# Used by `npm start`, `npm test` (with --test), `npm run bench` and CI, so a fresh clone needs no
# other step.
set -euo pipefail
cd "$(dirname "$0")/.."

# bsdutils gives `script`, the terminal behind attach; lxcfs shows each sandbox its own memory and
# CPUs in /proc (the driver reuses a running one, such as Debian's service, or starts one).
debian_packages=(crun busybox-static uidmap iproute2 bsdutils lxcfs)
# `--test` (npm test, CI): also what the test suites need but a node does not: runc, against
# which the driver contract suite runs too, the browser the web page's end-to-end test drives, and
# openssl, which makes the simulated Lightning nodes' self-signed certificates.
if [ "${1:-}" = "--test" ]; then
  debian_packages+=(runc chromium openssl)
fi
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "alacarte setup: please install these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  echo "alacarte setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install: keeps `npm start` quick.
stamp=node_modules/.alacarte-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "alacarte setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

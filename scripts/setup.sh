#!/usr/bin/env bash
# Installs what alacarte needs on a fresh Debian machine, and nothing that is already there.
# Used by `npm start` (with --build), `npm test` (with --test), `npm run bench` and CI, so a fresh
# clone needs no other step. Each step says what it does and how long it took: the first run
# takes a couple of minutes and must not look stuck.
set -euo pipefail
cd "$(dirname "$0")/.."

test_too=
build=
for arg in "$@"; do
  case "$arg" in
    --test) test_too=1 ;;
    --build) build=1 ;;
    *) echo "alacarte setup: unknown option $arg (use --test, --build)" >&2; exit 2 ;;
  esac
done
steps=3
[ -n "$build" ] && steps=4

step_started=0
# step N "what": announces a step; done_step closes it with its time.
step() {
  step_started=$SECONDS
  printf 'alacarte setup [%s/%s] %s\n' "$1" "$steps" "$2" >&2
}
done_step() {
  printf 'alacarte setup       %s (%ss)\n' "${1:-done}" "$((SECONDS - step_started))" >&2
}

# bsdutils gives `script`, the terminal behind attach; lxcfs shows each sandbox its own memory and
# CPUs in /proc (the driver reuses a running one, such as Debian's service, or starts one).
# curl: the files benchmark's HTTP client (npm run bench runs this without --test), and the README's
# examples. mmdebstrap builds the debian image; skopeo and umoci pull and unpack OCI images;
# openssh-sftp-server is the sftp-server SSH leases run inside their sandboxes (sftp, scp); passt
# (pasta) and nftables the egress network; gcc and libc6-dev build the sandboxes' exec agent.
debian_packages=(crun busybox-static uidmap iproute2 bsdutils lxcfs curl mmdebstrap skopeo umoci
  openssh-sftp-server passt nftables gcc libc6-dev)
# `--test` (npm test, CI): also what the test suites need but a node does not: runc, against
# which the driver contract suite runs too, the browser the web page's end-to-end test drives, and
# the registry the image tests pull from, the stock OpenSSH client the SSH tests log in with, and
# dnsmasq-base, the DNS server of the egress tests' stand-in internet, and openssl, which makes the
# simulated Lightning nodes' self-signed certificates; lxd, the daemon the LXD driver's suites
# start in a state directory of their own (never initialised with a network bridge), and
# btrfs-progs, with which LXD makes their storage pool a btrfs file on a loop device (a pool that
# enforces each instance's disk size, where `dir` cannot); postgresql-15, the server the store tests
# start on their own (initdb in a temp dir; no systemd unit needed).
if [ -n "$test_too" ]; then
  debian_packages+=(runc chromium docker-registry openssh-client dnsmasq-base openssl lxd btrfs-progs
    postgresql-15)
fi
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
step 1 "Debian packages: ${debian_packages[*]}"
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "alacarte setup: please install these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  echo "alacarte setup       installing ${missing[*]} with apt-get (a minute or two the first time)" >&2
  echo "alacarte setup       apt-get update…" >&2
  apt-get update -qq
  # One line per package as it is set up, instead of apt's screenfuls (or nothing at all).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Use-Pty=0 "${missing[@]}" 2>&1 |
    { grep --line-buffered -E '^(Need to get|Setting up) ' || true; } |
    sed -u 's/^/alacarte setup         /' >&2
  # Where systemd runs, the package starts a registry on :5000 of its own; the tests start theirs.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  done_step 'installed'
else
  done_step 'all there'
fi

# npm ci only when the lock file changed since the last install: keeps `npm start` quick.
stamp=node_modules/.alacarte-lock-stamp
step 2 'npm packages'
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "alacarte setup       npm ci (one to three minutes the first time: it compiles native modules; quiet until done)…" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
  done_step 'installed'
else
  done_step 'up to date'
fi

# What every crun sandbox runs of its own: its init (native/sandbox-init.c, with the exec agent
# linked in) and the exec agent alone (native/exec-agent.c, under the shell init). Static
# programs, so that they run whatever the image holds; rebuilt when a source changes. Without them
# sandboxes run busybox shell scripts instead (slower), and the node says so.
agent=native/build/exec-agent
init=native/build/sandbox-init
step 3 'the init and exec agent of the sandboxes (native/)'
stale() { [ ! -x "$1" ] || [ -n "$(find native -maxdepth 1 -name '*.[ch]' -newer "$1")" ]; }
if stale "$agent" || stale "$init"; then
  mkdir -p native/build
  cc -O2 -Wall -Wextra -static -o "$agent.tmp" native/exec-agent.c
  cc -O2 -Wall -Wextra -static -DEXEC_AGENT_NO_MAIN -o "$init.tmp" native/sandbox-init.c native/exec-agent.c
  mv "$agent.tmp" "$agent"
  mv "$init.tmp" "$init"
  done_step 'built'
else
  done_step 'up to date'
fi

# `--build` (npm start): the TypeScript and the web page, said as a step of its own; skipped when
# nothing they are built from changed since the last build (dist/.built, stamped with the time the
# build began, so that an edit made during it builds again next time; a file added, removed or
# renamed changes its directory's time, which counts too).
if [ -n "$build" ]; then
  stamp=dist/.built
  sources=(src web package.json package-lock.json tsconfig.json tsconfig.build.json)
  if [ -f "$stamp" ] && [ -f dist/cli/main.js ] &&
    [ -z "$(find "${sources[@]}" -path web/node_modules -prune -o -newer "$stamp" -print -quit 2>/dev/null)" ]; then
    step 4 'building: TypeScript to dist/, then the web page'
    done_step 'up to date'
  else
    step 4 'building: TypeScript to dist/, then the web page (half a minute or so)'
    began=$(mktemp)
    trap 'rm -f "$began"' EXIT
    npm run --silent build
    mkdir -p dist
    mv "$began" "$stamp"
    done_step 'built'
  fi
  echo "alacarte setup       next: the debian image if it is missing (first start only, its progress shown), then the node" >&2
fi

#!/bin/sh
# Sets up a fresh machine for pharos: system packages, npm packages, the
# build (TypeScript, BPF objects, native addon) and the BPF filesystems.
# Idempotent and quick when everything is already in place; used by
# `npm test`, `npm run demo` and .ci/run.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="clang llvm libbpf-dev bpftool iproute2 iputils-ping tcpdump ethtool
  arping ndisc6 iptables nftables conntrack bird2 gobgpd frr curl make g++ python3
  prometheus"

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "pharos needs root (BPF, network namespaces); run as root"
  exit 1
fi

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Debian's prometheus (for test/monitoring: promtool and a server the test
  # starts on its own address) starts a server on :9090 from its postinst
  # (init script through invoke-rc.d, or the systemd unit). A policy-rc.d
  # that refuses only it, where none exists, keeps that from happening; the
  # unit enabled for the next boot is disabled.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  case " $missing " in
    *" prometheus "*)
      if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# written by pharos deploy/setup.sh for the length of an apt-get install\n[ "$1" = prometheus ] && exit 101\nexit 0\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
        trap 'rm -f "$policy"' EXIT
      fi ;;
  esac
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if [ -n "$own_policy" ]; then rm -f "$policy"; trap - EXIT; fi
  case " $missing " in
    *" prometheus "*)
      if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
      elif [ -x /etc/init.d/prometheus ]; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
      fi ;;
  esac
fi

# bpffs: the default pin root, and one outside /sys that stays visible
# inside `ip netns exec` (which remounts /sys; see LAB-FACTS).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mkdir -p /run/pharos/bpffs
mountpoint -q /run/pharos/bpffs || mount -t bpf bpf /run/pharos/bpffs

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund
fi

log "build"
npm run --silent build:ts
npm run --silent build:bpf
# `pharos` on the PATH: a link to this checkout's CLI (an existing file that is not such a link is left alone).
link=/usr/local/bin/pharos
if [ ! -e "$link" ] || [ -L "$link" ]; then
  ln -sfn "$(pwd)/dist/cli/main.js" "$link"
else
  log "$link exists and is not a link: left alone (use node dist/cli/main.js)"
fi
addon=native/build/Release/pharos_native.node
if [ -f native/binding.gyp ] && { [ ! -f "$addon" ] || [ -n "$(find native -path native/build -prune -o -newer "$addon" -type f -print | head -1)" ]; }; then
  npm run --silent build:native >/dev/null
fi

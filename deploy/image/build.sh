#!/bin/sh
# Builds the pharos OCI image from Debian packages and the built product,
# with mmdebstrap and umoci: no container engine and no registry other than
# Debian's mirrors. Needs root and `npm run build` done first (the BPF
# objects and the native addon are prebuilt: the image has no compiler).
#
#   sh deploy/image/build.sh [--out DIR] [--cache DIR]
#
# Writes DIR/oci (an OCI image layout) and DIR/pharos-<tag>.oci.tar (the
# same as an archive, for `podman load`, `ctr images import`, `skopeo copy`),
# named as deploy/kubernetes/daemonset.yaml names the image, and
# DIR/context (the Containerfile's build context). Defaults:
# --out build/image, --cache /var/cache/pharos-image.
#
# Two layers: the Debian root filesystem (rootfs.sh), cached under the cache
# directory by the hash of its recipe, and the product under /opt/pharos.
# When the inputs' hash matches DIR/inputs.sha256 nothing is rebuilt.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/build/image
cache=/var/cache/pharos-image
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
    *) echo "usage: build.sh [--out DIR] [--cache DIR]" >&2; exit 2 ;;
  esac
done

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
sha() { sha256sum | cut -c1-64; }

[ "$(id -u)" = 0 ] || die "needs root (the image's files are owned by root)"
missing=""
command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
command -v umoci >/dev/null || missing="$missing umoci"
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }
fi

# The name and tag the DaemonSet pulls.
image=$(sed -n 's/^ *image: *\([^ #]*\).*/\1/p' "$root/deploy/kubernetes/daemonset.yaml" | head -1)
[ -n "$image" ] || die "no image: line in deploy/kubernetes/daemonset.yaml"
tag=${image##*:}

# The built product must be there and current: nothing compiles in the image.
cd "$root"
for f in dist/cli/main.js native/build/Release/pharos_native.node; do
  [ -f "$f" ] || die "$f missing: run npm run build"
done
for src in bpf/*.bpf.c; do
  obj=build/bpf/$(basename "$src" .bpf.c).o
  [ -f "$obj" ] || die "$obj missing: run npm run build:bpf"
  [ -z "$(find bpf -name '*.[ch]' -newer "$obj" | head -1)" ] || die "$obj is older than bpf/: run npm run build:bpf"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/pharos-image.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# The product tree: package.json (ESM), the compiled JavaScript, the
# production dependencies without types, source maps and docs, the addon,
# the BPF objects. The agent checks each object against bpf/ and would try to
# recompile an older one, so the sources go along dated before the objects.
context=$out/context
rm -rf "$context"
stage=$context/opt/pharos
mkdir -p "$stage/native/build/Release" "$stage/build"
cp package.json "$stage/"
tar -cf - --exclude='*.map' --exclude='*.d.ts' dist | tar -C "$stage" -xf -
cp native/build/Release/pharos_native.node "$stage/native/build/Release/"
cp -r build/bpf "$stage/build/"
find bpf -name '*.[ch]' | tar -cf - -T - | tar -C "$stage" -xf -
# Each package once: a directory nested in one already listed comes along with it.
deps=$(npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$root/||p" | grep '^node_modules/' | sort |
  awk 'p == "" || index($0, p "/") != 1 { print; p = $0 }' || true)
[ -n "$deps" ] || die "npm ls found no production dependencies: run npm ci"
printf '%s\n' "$deps" | tar -cf - --exclude='*.map' --exclude='*.ts' --exclude='*.mts' --exclude='*.cts' \
  --exclude='*.md' --exclude='@types' -T - | tar -C "$stage" -xf -
# Fixed dates: the same product gives the same layer.
find "$context/opt" -exec touch -h -d @946684800 {} +
find "$stage/bpf" -exec touch -h -d @946684799 {} +
cp "$here/rootfs.sh" "$context/"

stage_key=$(cd "$context" && tar -cf - --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 . | sha)
base_key=$(cat "$here/rootfs.sh" | sha)
key=$(printf '%s %s %s %s\n' "$base_key" "$stage_key" "$(sha < "$here/build.sh")" "$image" | sha)
if [ -f "$out/inputs.sha256" ] && [ "$(cat "$out/inputs.sha256")" = "$key" ] && [ -d "$out/oci" ]; then
  log "$image up to date in $out/oci"
  exit 0
fi

# A layer from DIR's PATH, written by GNU tar (umoci 0.4.7's `insert` cut the
# end of a layer off: its last file came out short) and added as it is.
layer() {
  tar -C "$1" --sort=name --numeric-owner -cf "$work/layer.tar" "$2"
  umoci raw add-layer --image "$3" --history.created_by "$4" "$work/layer.tar"
  rm -f "$work/layer.tar"
}

# The Debian layer, built once per recipe.
base=$cache/base-$base_key
if [ ! -d "$base/oci" ]; then
  start=$(date +%s)
  log "root filesystem (Debian trixie: nodejs, libbpf1)"
  sh "$here/rootfs.sh" "$work/rootfs"
  mkdir -p "$cache"
  rm -rf "$base.tmp" && mkdir -p "$base.tmp"
  umoci init --layout "$base.tmp/oci"
  umoci new --image "$base.tmp/oci:base"
  layer "$work/rootfs" . "$base.tmp/oci:base" 'deploy/image/rootfs.sh: Debian trixie nodejs, libbpf1'
  # Only the current recipe's layer is kept.
  find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key*" -exec rm -rf {} +
  mv "$base.tmp" "$base"
  log "root filesystem in $(($(date +%s) - start)) s"
fi

mkdir -p "$out"
rm -rf "$out/oci" "$out/oci.tmp" "$out/inputs.sha256"
cp -a "$base/oci" "$out/oci.tmp"
layout=$out/oci.tmp
layer "$context" opt "$layout:base" 'deploy/image/build.sh: the built product in /opt/pharos'
umoci config --image "$layout:base" --tag "$image" \
  --config.entrypoint /usr/bin/node --config.entrypoint /opt/pharos/dist/cli/main.js \
  --config.cmd agent \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir /opt/pharos \
  --config.label org.opencontainers.image.title=pharos \
  --config.label org.opencontainers.image.licenses=Apache-2.0 \
  --history.created_by 'deploy/image/build.sh: entrypoint and labels'
umoci rm --image "$layout:base"
umoci gc --layout "$layout"
mv "$layout" "$out/oci"
rm -f "$out"/pharos-*.oci.tar
tar -C "$out/oci" -cf "$out/pharos-$tag.oci.tar" .
printf '%s\n' "$key" > "$out/inputs.sha256"

packed=$(du -sb "$out/oci/blobs" | cut -f1)
log "$image: $((packed / 1048576)) MiB compressed, in $out/oci and $out/pharos-$tag.oci.tar"

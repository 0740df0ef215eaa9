#!/bin/sh
# Builds the pharos OCI image from Debian packages and the built product,
# with mmdebstrap, tar and gzip: no container engine and no registry other
# than Debian's mirrors. Needs root and `npm run build` done first (the BPF
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
# When the inputs' hash matches DIR/inputs.sha256 nothing is rebuilt. The
# layout's few JSON files are written here: Debian's umoci (0.4.7) cut the
# last file of a layer short in `umoci insert`, and its gzip took twice as
# long as `gzip -3` for the same size.
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
if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
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

# A gzip layer of DIR's PATH, written by GNU tar: $work/NAME.gz, and the
# digest of the uncompressed tar (the image config's diff_id) in $work/NAME.diff.
layer() {
  tar -C "$1" --sort=name --numeric-owner -cf "$work/$3.tar" "$2"
  sha < "$work/$3.tar" > "$work/$3.diff"
  gzip -3 -n < "$work/$3.tar" > "$work/$3.gz"
  rm -f "$work/$3.tar"
}

# The Debian layer, built once per recipe.
base=$cache/base-$base_key
if [ ! -f "$base/layer.gz" ]; then
  start=$(date +%s)
  log "root filesystem (Debian trixie: nodejs, libbpf1)"
  sh "$here/rootfs.sh" "$work/rootfs"
  layer "$work/rootfs" . base
  rm -rf "$work/rootfs"
  mkdir -p "$cache"
  rm -rf "$base.tmp" && mkdir -p "$base.tmp"
  mv "$work/base.gz" "$base.tmp/layer.gz" && mv "$work/base.diff" "$base.tmp/diff"
  # Only the current recipe's layer is kept.
  find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key*" -exec rm -rf {} +
  rm -rf "$base" && mv "$base.tmp" "$base"
  log "root filesystem in $(($(date +%s) - start)) s"
fi
layer "$context" opt product

# The OCI image layout (image-spec 1.0): content-addressed blobs, the
# config, the manifest, and an index naming the manifest by the image name.
# No creation time, so the same inputs give the same digests.
mkdir -p "$out"
rm -rf "$out/oci" "$out/oci.tmp" "$out/inputs.sha256"
layout=$out/oci.tmp
mkdir -p "$layout/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}\n' > "$layout/oci-layout"
# Copies FILE in as a blob; prints `"digest":"sha256:…","size":N`.
blob() {
  digest=$(sha < "$1")
  cp "$1" "$layout/blobs/sha256/$digest"
  printf '"digest":"sha256:%s","size":%s' "$digest" "$(wc -c < "$1" | tr -d ' ')"
}
base_blob=$(blob "$base/layer.gz")
product_blob=$(blob "$work/product.gz")
cat > "$work/config.json" <<EOF
{"architecture":"$(dpkg --print-architecture)","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/usr/bin/node","/opt/pharos/dist/cli/main.js"],"Cmd":["agent"],"WorkingDir":"/opt/pharos","Labels":{"org.opencontainers.image.title":"pharos","org.opencontainers.image.licenses":"Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["sha256:$(cat "$base/diff")","sha256:$(cat "$work/product.diff")"]},"history":[{"created_by":"deploy/image/rootfs.sh: Debian trixie nodejs, libbpf1"},{"created_by":"deploy/image/build.sh: the built product in /opt/pharos"}]}
EOF
layer_type=application/vnd.oci.image.layer.v1.tar+gzip
cat > "$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json",$(blob "$work/config.json")},"layers":[{"mediaType":"$layer_type",$base_blob},{"mediaType":"$layer_type",$product_blob}]}
EOF
cat > "$layout/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",$(blob "$work/manifest.json"),"annotations":{"org.opencontainers.image.ref.name":"$image"}}]}
EOF
mv "$layout" "$out/oci"
rm -f "$out"/pharos-*.oci.tar
tar -C "$out/oci" -cf "$out/pharos-$tag.oci.tar" .
printf '%s\n' "$key" > "$out/inputs.sha256"

packed=$(du -sb "$out/oci/blobs" | cut -f1)
log "$image: $((packed / 1048576)) MiB compressed, in $out/oci and $out/pharos-$tag.oci.tar"

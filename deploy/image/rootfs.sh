#!/bin/sh
# The image's root filesystem: Node 20 and libbpf from Debian trixie, and
# nothing else (no shell, no package manager, no compiler). Used by build.sh
# and by the Containerfile, so both images carry the same packages.
#
#   sh deploy/image/rootfs.sh DIR      (needs mmdebstrap; DIR must not exist or be empty)
#
# Why trixie: pharos needs Node >= 20.18; bookworm's nodejs is 18, trixie's is
# 20.19 (with libbpf 1.5, which keeps the ABI the addon was linked against
# with bookworm's libbpf 1.1). Taking both from one release keeps the image
# built from Debian packages alone, with Debian's security updates.
#
# --variant=extract unpacks the packages and their dependencies without
# running maintainer scripts (nothing in them matters to a Node program), so
# no essential set (shell, dpkg, coreutils) is pulled in; base-files brings
# the merged-/usr links (/lib64 holds the ELF interpreter). chrootless needs
# no mounts, so it also runs inside an unprivileged `docker build`.
set -eu
target=${1:?usage: rootfs.sh DIR}
suite=trixie
mirror=${PHAROS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${PHAROS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

mmdebstrap --quiet --mode=chrootless --variant=extract \
  --include=base-files,nodejs,libbpf1 \
  "$suite" "$target" \
  "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main"

# The build host's resolver and name, and device nodes, must not ship in the
# image (the runtime mounts its own); neither does the extract variant's
# empty apt state.
: > "$target/etc/resolv.conf"
: > "$target/etc/hostname"
find "$target/dev" -mindepth 1 -delete
rm -rf "$target/var/lib/apt/lists" "$target/var/cache/apt"

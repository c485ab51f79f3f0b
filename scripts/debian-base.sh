#!/bin/sh
# debian-base.sh: a minimal Debian 12 (bookworm) root tree, made once with
# debootstrap from this machine's configured Debian mirror and cached.
#
# scripts/docker-test.sh imports it as the debian:bookworm-slim image when
# no registry is reachable, and scripts/systemd-test.sh boots a copy of it
# with systemd-nspawn, so the minutes debootstrap takes are spent once for
# both.  Prints the path of the tarball of the tree.
#
# Usage: scripts/debian-base.sh
# Environment:
#   ROSIM_TEST_CACHE  cache directory (default /var/cache/rosim-test)
#   DEBIAN_MIRROR     mirror to use (default: the first Debian archive
#                     configured for apt on this machine)
set -eu

cache=${ROSIM_TEST_CACHE:-/var/cache/rosim-test}
tarball="$cache/bookworm-minbase.tar"

if [ -f "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

# The mirror apt uses here (deb822 .sources files or one-line lists), not
# the security archive.
mirror=${DEBIAN_MIRROR:-$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          | sed 's/\[[^]]*\]//' | awk '{print $2}'
    } | grep '/debian/\?$' | head -n 1)}
if [ -z "$mirror" ]; then
    echo "debian-base: no Debian mirror configured for apt; set DEBIAN_MIRROR" >&2
    exit 1
fi
command -v debootstrap >/dev/null 2>&1 || {
    echo "debian-base: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

mkdir -p "$cache"
tree="$cache/bookworm-minbase.tmp"
rm -rf "$tree"
echo "debian-base: debootstrap --variant=minbase bookworm from $mirror (once; cached in $cache)" >&2
start=$(date +%s)
debootstrap --variant=minbase bookworm "$tree" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
}
# What debian:bookworm-slim has and a plain debootstrap lacks: the mirror in
# apt's sources, no package caches.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
    > "$tree/etc/apt/sources.list"
rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
tar -C "$tree" --numeric-owner -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
rm -rf "$tree"
echo "debian-base: made $tarball in $(( $(date +%s) - start )) s" >&2
echo "$tarball"

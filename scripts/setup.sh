#!/bin/sh
# setup.sh: install what rosim needs on Debian 12 and build the FAISS C API.
#
# Idempotent and fast when everything is already there: packages are
# installed only when one is missing, and the FAISS C API library is built
# only when build/faiss/libfaiss_c.a is absent.  On success it touches
# build/.setup-done, the stamp the Makefile's build rules depend on, so
# `sh scripts/setup.sh && make` runs it once (and so does a Docker build,
# whose context has no build/).  Debian's libfaiss-dev ships
# the C API headers but not their code, so the code is compiled here from
# Debian's own faiss source package (same version as the headers).
#
# Usage: scripts/setup.sh [--bench | --build-only]
#   --bench       also what the benchmarks use (python3-numpy, fortunes-zh)
#   --build-only  only what building needs (no test tools: Docker's build stage)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"

packages="build-essential pkg-config dpkg-dev ca-certificates
libmicrohttpd-dev libjansson-dev libfaiss-dev libopenblas-dev libdnnl-dev check
libsqlite3-dev libpq-dev libinih-dev libsystemd-dev libutf8proc-dev libcurl4-openssl-dev"
mode=${1:-}
# postgresql-15: the storage suite runs its own throw-away server (tests/pgserver.c);
# haproxy, python3-yaml: scripts/haproxy-test.sh runs and checks deploy/
if [ "$mode" != "--build-only" ]; then
    packages="$packages python3 python3-prometheus-client systemd clang libclang-rt-14-dev
chromium fonts-wqy-microhei postgresql-15 haproxy python3-yaml"
fi
if [ "$mode" = "--bench" ]; then
    packages="$packages python3-numpy fortunes-zh bc wrk"
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $missing
fi

# --- npm packages of the tests ---------------------------------------------
# tests/openai: the OpenAI clients (openai, @langchain/openai);
# tests/web: the OpenAPI validator, ajv and puppeteer-core.
# npm writes node_modules/.package-lock.json on every install: reinstall
# when it is missing or older than the lock file (packages added or moved).

npm_install() {   # npm_install DIR
    if [ -f "$1/node_modules/.package-lock.json" ] &&
       ! [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup: installing nodejs and npm" >&2
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends nodejs npm
    fi
    echo "setup: installing the npm packages of ${1#"$root"/}" >&2
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

if [ "$mode" != "--build-only" ]; then
    npm_install "$root/tests/openai"
    npm_install "$root/tests/web"
fi

# --- FAISS C API ----------------------------------------------------------

lib="$build/faiss/libfaiss_c.a"
stamp="$build/.setup-done"
if [ -f "$lib" ]; then
    touch "$stamp"
    exit 0
fi

# A deb-src entry for the suite this machine runs, so `apt-get source` works.
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding a deb-src entry for the faiss source package" >&2
    src=/etc/apt/sources.list.d/rosim-deb-src.sources
    tmp=$(mktemp)
    cat > "$tmp" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    as_root install -m 0644 "$tmp" "$src"
    rm -f "$tmp"
    as_root apt-get update -q
fi

# The source version is the binary's without a binNMU suffix (+bN).
version=$(dpkg-query -W -f='${Version}' libfaiss-dev | sed 's/+b[0-9]*$//')
work="$build/faiss/src"
rm -rf "$work"
mkdir -p "$work"
echo "setup: fetching faiss $version source" >&2
(cd "$work" && apt-get source -q --download-only "faiss=$version" >/dev/null \
    && dpkg-source -x faiss_*.dsc tree >/dev/null)

echo "setup: building the FAISS C API" >&2
objs=""
for f in "$work"/tree/c_api/*.cpp "$work"/tree/c_api/impl/*.cpp \
         "$work"/tree/c_api/utils/*.cpp; do
    [ -f "$f" ] || continue
    o="$build/faiss/$(basename "$f" .cpp).o"
    g++ -std=c++17 -O2 -fPIC -fopenmp -I"$work/tree" -c "$f" -o "$o" &
    objs="$objs $o"
done
wait
ar rcs "$lib.tmp" $objs
mv "$lib.tmp" "$lib"
rm -f $objs
rm -rf "$work"
touch "$stamp"
echo "setup: built $lib" >&2

#!/bin/sh
# docker-test.sh: build the Docker image and run it for real.
#
# Builds the image (timed, and checked to have run the setup once, with its
# labels, stop signal and volumes), then runs it with named volumes and
# checks: rosimd -t finds its configuration, the environment and the CPU
# quota (--cpus 1) reach it, every API route answers, health probes are not
# in the log, a stop during a generation lets the generation finish and
# exits 0, a new container on the same volumes finds the documents, and
# bind mounts owned by root are refused with the chown to run.
#
# Needs root, the docker client and a Docker engine (started here from
# Debian's docker.io when it is installed and not running, and stopped
# again).  Where no registry is reachable, the debian:bookworm-slim base is
# made with debootstrap from the configured Debian mirror (scripts/
# debian-base.sh, cached in /var/cache/rosim-test) and imported under that
# name.  Exit status 0 when every check passed, 1 otherwise, 77 when it
# cannot run here.
#
# Environment: ROSIM_TEST_IMAGE (default rosim:test), ROSIM_TEST_CACHE.
set -eu
cd "$(dirname "$0")/.."
name=docker-test
curl_cmd=curl
base=
. scripts/test-lib.sh

image=${ROSIM_TEST_IMAGE:-rosim:test}
tag=rosim-test-$$
work=$(mktemp -d /tmp/rosim-docker-test.XXXXXX)
dockerd_pid=

[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v docker >/dev/null 2>&1 || skip "no docker client"
command -v curl >/dev/null 2>&1 || skip "no curl"

cleanup() {
    for c in $(docker ps -aq --filter "name=$tag" 2>/dev/null); do
        docker rm -f "$c" >/dev/null 2>&1 || true
    done
    for v in $(docker volume ls -q --filter "name=$tag" 2>/dev/null); do
        docker volume rm "$v" >/dev/null 2>&1 || true
    done
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null 2>&1 || skip "no Docker engine (apt-get install docker.io)"
    say "starting dockerd (log in $work/dockerd.log)"
    dockerd >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    wait_for 60 docker info || skip "dockerd did not start here: $(tail -3 "$work/dockerd.log")"
fi

# --- the base image ------------------------------------------------------

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    if timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
        say "pulled debian:bookworm-slim"
    else
        say "no registry reachable: making debian:bookworm-slim with debootstrap" \
            "(minbase, from the configured Debian mirror; cached)"
        tarball=$(sh scripts/debian-base.sh) || die "debootstrap failed"
        docker import --change 'CMD ["bash"]' "$tarball" debian:bookworm-slim >/dev/null \
            || die "docker import failed"
        say "imported $tarball as debian:bookworm-slim"
    fi
fi

# --- build ---------------------------------------------------------------

t0=$(ms)
docker build -t "$image" . >"$work/build.log" 2>&1 || {
    tail -30 "$work/build.log"
    die "docker build failed"
}
secs=$(( ($(ms) - t0) / 1000 ))
size=$(docker image inspect -f '{{.Size}}' "$image")
say "built $image in $secs s; image size $((size / 1000000)) MB"
# The build stage's make must not run setup.sh again (its stamp is not in
# the build context).
check "make did not run scripts/setup.sh again" \
    sh -c "! grep -qx 'sh scripts/setup.sh' '$work/build.log'"

inspect() { docker image inspect -f "$1" "$image"; }
check "OCI labels" sh -c \
    "[ \"\$(docker image inspect -f '{{index .Config.Labels \"org.opencontainers.image.title\"}}' $image)\" = rosim ]"
check "STOPSIGNAL SIGTERM" [ "$(inspect '{{.Config.StopSignal}}')" = SIGTERM ]
check "one volume, for the data" [ "$(inspect '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}')" = "/var/lib/rosim/data " ]
check "runs as uid 999" [ "$(inspect '{{.Config.User}}')" = "999:999" ]

# --- configuration -------------------------------------------------------

# No checkpoint in these tests: the random demo model, chosen explicitly.
demo="-e ROSIM_MODEL_DEMO_IF_MISSING=yes"
docker run --rm "$image" -t >"$work/t.out" 2>&1 || true
check "without a model (and no demo chosen) rosimd -t fails, saying how to get one" \
    grep -q "demo_if_missing = yes" "$work/t.out"
# shellcheck disable=SC2086
docker run --rm $demo "$image" -t >"$work/t.out" 2>&1 || true
check "rosimd -t finds /opt/rosim/etc/rosim/rosimd.conf" \
    grep -q "configuration /opt/rosim/etc/rosim/rosimd.conf is valid" "$work/t.out"
# shellcheck disable=SC2086
docker run --rm $demo -e ROSIM_LIMITS_MAX_K=7 "$image" -t -o limits.max_n=9 >"$work/t.out" 2>&1 || true
check "ROSIM_LIMITS_MAX_K=7 is taken" grep -Eq "^max_k = 7 +; environment ROSIM_LIMITS_MAX_K" "$work/t.out"
check "-o wins over the environment" grep -Eq "^max_n = 9 +; command line" "$work/t.out"
# shellcheck disable=SC2086
docker run --rm $demo --cpus 1 "$image" -t >"$work/t.out" 2>&1 || true
check "threads = auto under --cpus 1 is 1" grep -Eq "^threads = 1 +; auto" "$work/t.out"

# --- serving with named volumes -------------------------------------------

run() {   # run NAME [docker run options]: start a container, wait until ready
    n=$1
    shift
    # shellcheck disable=SC2086
    docker run -d --name "$n" -p 127.0.0.1::8080 --health-interval 2s $demo "$@" "$image" >/dev/null \
        || return 1
    port=$(docker port "$n" 8080/tcp | head -n 1 | sed 's/.*://')
    base=http://127.0.0.1:$port
    wait_for 300 curl -fsS "$base/readyz"
}
vols="-v $tag-data:/var/lib/rosim/data -v $tag-models:/var/lib/rosim/models"

t0=$(ms)
# shellcheck disable=SC2086
run "$tag-a" $vols || die "the container did not become ready: $(docker logs "$tag-a" 2>&1 | tail -5)"
say "ready in $(( ($(ms) - t0) / 1000 )) s (first start: the demo model is created)"
exercise_api docker
docker exec "$tag-a" rosimd -t >"$work/t.out" 2>&1 || true
check "docker exec rosimd -t shows the container's configuration" \
    grep -Eq "^data = /var/lib/rosim/data +; environment ROSIM_STORAGE_DATA" "$work/t.out"
check "Docker reports the container healthy" \
    wait_for 30 sh -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $tag-a)\" = healthy ]"
check "health probes are not logged at info level" \
    sh -c "! docker logs $tag-a 2>&1 | grep -q 'GET /healthz'"
check "other requests are" sh -c "docker logs $tag-a 2>&1 | grep -q 'POST /v1/generate'"

# A stop during a generation: the generation finishes, rosimd exits 0
# within Docker's default 10 s.
( req POST /v1/generate '{"text":"今天天气不错，我们去公园散步吧","n":8,"k":3,"seed":7}'
  echo "$status" >"$work/gen.status" ) &
gen=$!
sleep 1
t0=$(ms)
docker stop "$tag-a" >/dev/null
stop_ms=$(( $(ms) - t0 ))
wait "$gen" || true
say "docker stop took $stop_ms ms during a generation"
check "the generation in flight finished (200)" [ "$(cat "$work/gen.status")" = 200 ]
check "rosimd exited 0" [ "$(docker inspect -f '{{.State.ExitCode}}' "$tag-a")" = 0 ]
check "it said it stopped" sh -c "docker logs $tag-a 2>&1 | grep -q 'INFO stopped'"
check "stopped within Docker's 10 s grace" [ "$stop_ms" -lt 10000 ]
named_only() {   # every volume of container $1 is one we named
    for v in $(docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}' "$1"); do
        case $v in "$tag"-*) ;; *) return 1 ;; esac
    done
}
check "no anonymous volume" named_only "$tag-a"
docker rm "$tag-a" >/dev/null

# A new container on the same volumes finds the documents.
# shellcheck disable=SC2086
run "$tag-b" $vols || die "the second container did not become ready"
expect 200 GET /v1/collections/docker-docs/documents/q1 "" '"怎么开通花呗"'
expect 200 POST /v1/collections/docker-docs/search '{"text":"花呗怎么还款","k":1}' '"q2"'
t0=$(ms)
docker stop "$tag-b" >/dev/null
say "docker stop took $(( $(ms) - t0 )) ms idle"
docker rm "$tag-b" >/dev/null

# --- bind mounts owned by root ---------------------------------------------

mkdir -p "$work/models" "$work/data"
# shellcheck disable=SC2086
docker run --name "$tag-c" $demo -v "$work/models:/var/lib/rosim/models" "$image" >"$work/c.log" 2>&1 || true
check "a root-owned models mount is refused, naming uid 999 and the chown" \
    grep -q "cannot create the demo model: /var/lib/rosim/models is not writable by uid 999 .*chown -R 999:999 /var/lib/rosim/models" "$work/c.log"
check "with exit status 1" [ "$(docker inspect -f '{{.State.ExitCode}}' "$tag-c")" = 1 ]
docker rm "$tag-c" >/dev/null
# shellcheck disable=SC2086
docker run --name "$tag-d" $demo -v "$work/data:/var/lib/rosim/data" "$image" >"$work/d.log" 2>&1 || true
check "a root-owned data mount is refused before ready" \
    grep -q "ERROR \[storage\] data: /var/lib/rosim/data is not writable by uid 999" "$work/d.log"
docker rm "$tag-d" >/dev/null
chown 999:999 "$work/models" "$work/data"
check "after chown 999:999 both mounts work" \
    run "$tag-e" -v "$work/models:/var/lib/rosim/models" -v "$work/data:/var/lib/rosim/data"
expect 201 PUT /v1/collections/bind '{}'
docker stop "$tag-e" >/dev/null

summary

#!/bin/sh
# systemd-test.sh: install rosim with `make install PREFIX=/usr` into a
# Debian 12 tree and boot its rosimd.service for real in systemd-nspawn.
#
# Checks: the install layout (config in /etc, never overwritten, .dist
# beside it, unit paths for /usr and /usr/local); the unit starts with
# READY=1 under a dynamic user; the API answers; STOPPING=1 and the stop
# time (under 2 s); warnings reach journald as warnings; documents written
# through the API and through `rosim import` run as the service's dynamic
# user (systemd-run) survive restarts in the StateDirectory;
# `systemd-analyze security` exposure at most 1.3; systemd-analyze verify.
#
# Needs root, systemd-nspawn (systemd-container) and debootstrap.  The tree
# is made once from scripts/debian-base.sh's debootstrap (shared with
# scripts/docker-test.sh) plus systemd and scripts/runtime-packages, and
# cached in /var/cache/rosim-test; each run unpacks a fresh copy under
# build/systemd-test.  PID 1 need not be systemd: the container is booted
# with --keep-unit --register=no and entered with nsenter.  Exit status 0
# when every check passed, 1 otherwise, 77 when it cannot run here.
set -eu
cd "$(dirname "$0")/.."
name=systemd-test
curl_cmd="inside curl"
base=http://127.0.0.1:8080
. scripts/test-lib.sh

cache=${ROSIM_TEST_CACHE:-/var/cache/rosim-test}
work=$(pwd)/build/systemd-test
root=$work/root
nspawn_pid=
leader=

[ "$(id -u)" -eq 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null 2>&1 || skip "no systemd-nspawn (apt-get install systemd-container)"
command -v debootstrap >/dev/null 2>&1 || skip "no debootstrap (apt-get install debootstrap)"
command -v nsenter >/dev/null 2>&1 || skip "no nsenter"

inside() { nsenter -t "$leader" -a "$@"; }

poweroff() {
    [ -n "$nspawn_pid" ] || return 0
    kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn asks the container's systemd to power off
    for _ in $(seq 120); do
        kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
    nspawn_pid=
}
trap poweroff EXIT

# --- the tree: debootstrap + systemd + the runtime libraries, cached --------

nspawn() { systemd-nspawn -q --register=no --keep-unit "$@"; }
sum=$(cat scripts/runtime-packages | cksum | cut -d' ' -f1)
tree_tar="$cache/bookworm-systemd-$sum.tar"
if [ ! -f "$tree_tar" ]; then
    base_tar=$(sh scripts/debian-base.sh) || die "debootstrap failed"
    say "adding systemd and the runtime libraries to the debootstrap tree (once; cached in $cache)"
    rm -rf "$root" && mkdir -p "$root"
    tar -C "$root" -xf "$base_tar"
    nspawn -D "$root" --pipe sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus \
        $(tr '\n' ' ' < scripts/runtime-packages) && apt-get clean && rm -rf /var/lib/apt/lists/*" \
        >"$cache/systemd-tree.log" 2>&1 || die "apt-get in the tree failed: $(tail -5 "$cache/systemd-tree.log")"
    tar -C "$root" --numeric-owner -cf "$tree_tar.tmp" . && mv "$tree_tar.tmp" "$tree_tar"
fi
rm -rf "$work" && mkdir -p "$root"
tar -C "$root" -xf "$tree_tar"

# --- make install ----------------------------------------------------------

make -s -j2 >/dev/null || die "make failed"
make -s install PREFIX=/usr/local DESTDIR="$work/local" >/dev/null || die "make install PREFIX=/usr/local failed"
check "PREFIX=/usr/local: config in /usr/local/etc" test -f "$work/local/usr/local/etc/rosim/rosimd.conf"
check "PREFIX=/usr/local: unit in /usr/local/lib/systemd/system, with its paths" \
    grep -qx "ExecStart=/usr/local/bin/rosimd -c /usr/local/etc/rosim/rosimd.conf" \
    "$work/local/usr/local/lib/systemd/system/rosimd.service"

make -s install PREFIX=/usr DESTDIR="$root" >/dev/null || die "make install PREFIX=/usr failed"
unit=$root/usr/lib/systemd/system/rosimd.service
check "PREFIX=/usr: config in /etc" test -f "$root/etc/rosim/rosimd.conf"
check "PREFIX=/usr: no /usr/etc" test ! -e "$root/usr/etc"
check "PREFIX=/usr: unit in /usr/lib/systemd/system, with its paths" \
    grep -qx "ExecStart=/usr/bin/rosimd -c /etc/rosim/rosimd.conf" "$unit"
check "Documentation= is the installed README" sh -c \
    "grep -qx 'Documentation=file:///usr/share/doc/rosim/README.md' '$unit' && test -f '$root/usr/share/doc/rosim/README.md'"
check "the unit does not wait for network-online" sh -c "! grep -q '^[^#]*network-online' '$unit'"
check "the binary's default configuration is /etc/rosim/rosimd.conf" \
    sh -c "'$root/usr/bin/rosimd' -h | grep -q 'else /etc/rosim/rosimd.conf'"
# An edited configuration survives a second install.
sed -i 's/^snapshot_every = .*/snapshot_every = 5/' "$root/etc/rosim/rosimd.conf"
make -s install PREFIX=/usr DESTDIR="$root" >/dev/null
check "a second make install keeps the edited rosimd.conf" \
    grep -qx "snapshot_every = 5" "$root/etc/rosim/rosimd.conf"
check "and puts the shipped one beside it as rosimd.conf.dist" \
    grep -qx "snapshot_every = 10000" "$root/etc/rosim/rosimd.conf.dist"
make -s >/dev/null   # the host's build/rosimd back to the default PREFIX

# --- boot ------------------------------------------------------------------

ln -sf /usr/lib/systemd/system/rosimd.service "$root/etc/systemd/system/multi-user.target.wants/"
# No checkpoint here: the random demo model, chosen explicitly in a drop-in.
mkdir -p "$root/etc/systemd/system/rosimd.service.d"
printf '[Service]\nEnvironment=ROSIM_MODEL_DEMO_IF_MISSING=yes\n' \
    >"$root/etc/systemd/system/rosimd.service.d/demo.conf"
# systemd's own debug messages show the sd_notify messages it gets.
mkdir -p "$root/etc/systemd/system.conf.d"
printf '[Manager]\nLogLevel=debug\n' >"$root/etc/systemd/system.conf.d/debug.conf"
printf 'rosim-test\n' >"$root/etc/hostname"

systemd-nspawn -q --register=no --keep-unit --private-network -D "$root" -b \
    >"$work/boot.log" 2>&1 </dev/null &
nspawn_pid=$!
find_leader() { leader=$(ps -o pid= --ppid "$nspawn_pid" | head -n 1 | tr -d ' '); [ -n "$leader" ]; }
wait_for 30 find_leader || die "systemd-nspawn did not start: $(tail -5 "$work/boot.log")"
find_leader
t0=$(ms)
is_active() { [ "$(inside systemctl is-active rosimd)" = active ]; }
wait_for 300 is_active || die "rosimd.service did not become active: $(inside journalctl -u rosimd --no-pager | tail -5)"
say "booted; rosimd.service active $(( ($(ms) - t0) / 1000 )) s after systemd started"

journal() { inside journalctl --no-pager -o cat "$@"; }
notified() { journal -u rosimd | grep -q "notification message.*$1"; }
check "READY=1 reached systemd" notified READY=1

uid=$(inside sh -c 'stat -c %u /proc/$(systemctl show -P MainPID rosimd)')
dynamic() { [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ]; }
check "runs as a dynamic user (uid $uid)" dynamic
check "the StateDirectory is /var/lib/private/rosim, owned by it" \
    [ "$(inside stat -c %u /var/lib/private/rosim)" = "$uid" ]

exercise_api systemd

# --- stop ------------------------------------------------------------------

t0=$(ms)
inside systemctl stop rosimd
stop_ms=$(( $(ms) - t0 ))
say "systemctl stop rosimd took $stop_ms ms"
check "stopped in under 2 s" [ "$stop_ms" -lt 2000 ]
check "STOPPING=1 reached systemd" notified STOPPING=1
check "exited cleanly" [ "$(inside systemctl show -P Result rosimd)" = success ]
journal -u rosimd -p warning >"$work/warnings" 2>&1 || true
check "journalctl -p warning shows rosimd's warnings" grep -q "RANDOM DEMO MODEL" "$work/warnings"
check "and not its info lines" sh -c "! grep -q 'listening on' '$work/warnings'"

# --- rosim import as the service's user ------------------------------------

printf '%s\n' '{"id":"i1","text":"信用卡怎么办理","meta":{"src":"import"}}' \
    '{"id":"i2","text":"如何申请信用卡"}' >"$root/tmp/docs.jsonl"
import() {
    inside systemd-run --quiet --wait --pipe -p DynamicUser=yes -p User=rosimd \
        -p StateDirectory=rosim -p WorkingDirectory=/var/lib/rosim \
        rosim import --model models/roformer-sim --data data --collection imported \
        <"$root/tmp/docs.jsonl" >"$work/import.log" 2>&1
}
check "rosim import under systemd-run as user rosimd" import
foreign() { inside find /var/lib/private/rosim ! -uid "$uid"; }
check "its files belong to the service's user" [ -z "$(foreign)" ]

# --- persistence -----------------------------------------------------------

inside systemctl start rosimd
wait_for 120 is_active || die "rosimd.service did not start again"
expect 200 GET /v1/collections/systemd-docs/documents/q1 "" '"怎么开通花呗"'
expect 200 GET /v1/collections/imported/documents/i1 "" '"import"'
expect 200 POST /v1/collections/imported/search '{"text":"信用卡怎么申请","k":2}' '"i2"'
inside systemctl restart rosimd
wait_for 120 is_active || die "rosimd.service did not restart"
expect 200 GET /v1/collections/systemd-docs/documents/q2

# --- hardening -------------------------------------------------------------

exposure=$(inside systemd-analyze security rosimd 2>/dev/null | sed -n 's/.*Overall exposure level for rosimd.service: \([0-9.]*\).*/\1/p')
say "systemd-analyze security: exposure $exposure"
check "exposure at most 1.3" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.3) }'
check "systemd-analyze verify" inside systemd-analyze verify /usr/lib/systemd/system/rosimd.service

t0=$(ms)
inside systemctl stop rosimd
say "systemctl stop rosimd took $(( $(ms) - t0 )) ms (second time)"

poweroff
summary

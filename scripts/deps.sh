#!/usr/bin/env bash
# deps.sh - install the build/test dependencies of coord on Debian 12 (as root when some
# are missing; with everything installed any user may run it).
#
# Usage: scripts/deps.sh [--no-servers]
#   --no-servers   skip the server/tooling packages (zookeeperd etcd-server etcd-client
#                  docker-compose, and the interop peers: a JDK, Curator, kazoo), e.g.
#                  inside a container that only builds the library.
#
# Idempotent: asks dpkg-query which packages are missing and only then runs
# `apt-get update` once and `apt-get install --no-install-recommends` for those.
# While installing, a temporary /usr/sbin/policy-rc.d (exit 101) keeps the package
# scripts from starting the system zookeeper/etcd services; it is removed afterwards
# (an existing policy-rc.d that does not deny starts is moved aside and put back).
# System services that run anyway are left alone: they use 2181/2379/2380, while
# scripts/servers.sh uses the ports of scripts/ports.env (or the COORD_SERVERS_*PORT*
# overrides in the environment); the script warns if any of those ports is taken.
#
# Output goes to ${COORD_DEPS_LOG:-/tmp/coord-deps.log}; its tail is printed on failure.
set -euo pipefail

PROG=${0##*/}
LOG=${COORD_DEPS_LOG:-/tmp/coord-deps.log}
POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP="$POLICY.coord-deps-backup"

BASE_PKGS=(
    build-essential cmake pkg-config git ca-certificates curl
    libzookeeper-mt-dev libcurl4-openssl-dev libcjson-dev libwslay-dev libcmocka-dev libssl-dev
    libxxhash-dev libmemcached-dev libuv1-dev libevent-dev valgrind clang-format openssl procps
    netcat-openbsd doxygen
    clang libclang-rt-dev
)
SERVER_PKGS=(zookeeperd etcd-server etcd-client docker-compose)
# interop peers of tests/conformance/test_interop.c: Apache Curator (compiled against with javac)
# and kazoo
SERVER_PKGS+=(default-jdk-headless libcurator-recipes-java python3-kazoo)
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# ports used by scripts/servers.sh: scripts/ports.env with the environment's overrides
# shellcheck source=lib/ports.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib/ports.sh"
load_ports
mapfile -t OUR_PORTS < <(all_ports)

with_servers=1
for arg in "$@"; do
    case $arg in
        --no-servers) with_servers=0 ;;
        -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    die "apt-get/dpkg-query not found: this script is for Debian (12)"
fi

pkgs=("${BASE_PKGS[@]}")
((with_servers)) && pkgs+=("${SERVER_PKGS[@]}")

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

missing=()
for p in "${pkgs[@]}"; do
    is_installed "$p" || missing+=("$p")
done

policy_created=0
policy_moved=0
restore_policy() {
    if ((policy_created)); then
        rm -f -- "$POLICY"
        policy_created=0
    fi
    if ((policy_moved)); then
        mv -f -- "$POLICY_BACKUP" "$POLICY"
        policy_moved=0
    fi
}

run_logged() { # description cmd...
    local what=$1
    shift
    printf '\n==== %s: %s\n' "$(date '+%F %T')" "$*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        log "$what failed; last lines of $LOG:"
        tail -n 40 -- "$LOG" >&2 || true
        return 1
    fi
}

if ((${#missing[@]} == 0)); then
    log "all ${#pkgs[@]} packages already installed"
else
    [[ $(id -u) -eq 0 ]] || die "missing package(s): ${missing[*]}; installing them needs root (e.g. sudo $0 $*)"
    log "installing ${#missing[@]} missing package(s): ${missing[*]} (log: $LOG)"
    : >>"$LOG"
    trap restore_policy EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # keep package scripts from starting services (zookeeperd, etcd-server)
    if [[ -e $POLICY || -L $POLICY ]]; then
        rc=0
        "$POLICY" zookeeper start >/dev/null 2>&1 || rc=$?
        if [[ $rc != 101 ]]; then
            mv -f -- "$POLICY" "$POLICY_BACKUP"
            policy_moved=1
        fi
    fi
    if [[ ! -e $POLICY ]]; then
        printf '#!/bin/sh\n# temporary, created by coord scripts/deps.sh\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        policy_created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run_logged "apt-get update" apt-get -q update || exit 1
    run_logged "apt-get install" apt-get -q -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        -o Dpkg::Use-Pty=0 install "${missing[@]}" || exit 1
    restore_policy
    trap - EXIT INT TERM
    still=()
    for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
    ((${#still[@]} == 0)) || die "still not installed after apt-get: ${still[*]} (see $LOG)"
    log "installed: ${missing[*]}"
fi

# System services are not ours to stop; just make sure they do not sit on our ports.
if command -v pgrep >/dev/null 2>&1; then
    if pgrep -f 'org\.apache\.zookeeper\.server\.quorum\.QuorumPeerMain .*/etc/zookeeper' >/dev/null 2>&1; then
        log "note: the system ZooKeeper service is running (left alone; it listens on 2181)"
    fi
    if pgrep -x etcd >/dev/null 2>&1 && ! pgrep -f 'etcd .*coord-servers\.' >/dev/null 2>&1; then
        log "note: an etcd process is running (left alone; the system service listens on 2379/2380)"
    fi
fi
taken=()
for port in "${OUR_PORTS[@]}"; do
    if port_listening "$port"; then taken+=("$port"); fi
done
if ((${#taken[@]})); then
    log "warning: ports used by scripts/servers.sh are in use: ${taken[*]}" \
        "(a running scripts/servers.sh? otherwise override them, see scripts/servers.sh)"
fi
exit 0

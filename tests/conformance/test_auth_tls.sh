#!/usr/bin/env bash
# Credentials and TLS, against real servers of scripts/servers.sh: the auth layout (an etcd with
# authentication enabled, simple tokens living 2 s, to exercise re-authentication), the tls
# layout (an etcd serving TLS with client certificates required; certificates made with openssl)
# and the single-node ZooKeeper (COORD_TEST_ZK) for digest ACLs. Runs the test_auth executable,
# optionally under a wrapper (e.g. `test_auth_tls.sh build/tests/test_auth valgrind -q`).
#
# The servers come from the environment (COORD_TEST_ETCD_AUTH, COORD_TEST_ETCD_TLS, ... as set by
# `servers.sh run` or the ctest fixture); when they are not there, this script starts the auth
# and tls layouts for its own run (`servers.sh run auth,tls`), which stops them afterwards.
#
# Users of the authenticated etcd (servers.sh sets them up): root; alice (read-write on
# /coordtest/); bob (read-only on /coordtest/); carol (read-write on /other/ only). The test
# restarts that etcd through $COORD_TEST_ETCD_AUTH_RESTART (a restart drops every simple token)
# and changes passwords with etcdctl. The test's stderr, with the ZooKeeper client's log on
# (COORD_ZK_DEBUG), is checked for the passwords afterwards.
set -euo pipefail
self=$(readlink -f -- "$0")
bin=$1 # the test_auth executable
shift
wrapper=("$@")
if [[ -z ${COORD_TEST_ETCD_AUTH:-} || -z ${COORD_TEST_ETCD_TLS:-} ]]; then
    exec bash "${self%/*}/../../scripts/servers.sh" run auth,tls -- bash "$self" "$bin" "${wrapper[@]}"
fi
dir=$(mktemp -d /tmp/coord-auth.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# stderr is kept for the check below and shown without the ZooKeeper client's log lines.
set +e
{
    COORD_ZK_DEBUG=1 "${wrapper[@]}" "$bin" 2>&1 1>&3 3>&- |
        tee "$dir/stderr.log" | grep -a -v -e '^zookeeper: ' -e '^$' >&2
} 3>&1
rc=${PIPESTATUS[0]}
set -e
# Credentials never reach a log: the passwords the test uses must not be in its stderr.
leak=$(grep -a -o -E 'alicepw|rootpw|bobpw-8d2|carolpw-5e1|wrong-pw-4c7|Zq9se.?cretpw' \
    "$dir/stderr.log" | sort -u || true)
if [[ -n $leak ]]; then
    echo "test_auth_tls: password(s) found in the test's stderr: $leak" >&2
    exit 1
fi
# ...and that check saw the ZooKeeper client's log (when its tests ran).
if [[ -n ${COORD_TEST_ZK:-} ]] && ! grep -q '^zookeeper: ' "$dir/stderr.log"; then
    echo "test_auth_tls: the ZooKeeper client logged nothing (COORD_ZK_DEBUG)" >&2
    exit 1
fi
exit "$rc"

#!/usr/bin/env bash
# Credentials and TLS, against real servers started here: an etcd with authentication enabled
# (simple tokens living 2 s, to exercise re-authentication), an etcd serving TLS with client
# certificates required (certificates made with openssl), and the single-node ZooKeeper of
# scripts/servers.sh (COORD_TEST_ZK) for digest ACLs. Runs the test_auth executable with their
# addresses, optionally under a wrapper (e.g. `test_auth_tls.sh build/tests/test_auth valgrind -q`).
# Everything is stopped and removed on exit.
#
# Users of the authenticated etcd: root; alice (read-write on /coordtest/); bob (read-only on
# /coordtest/); carol (read-write on /other/ only). The test restarts that etcd through
# $COORD_TEST_ETCD_AUTH_RESTART (a restart drops every simple token) and changes passwords with
# etcdctl. The test's stderr, with the ZooKeeper client's log on (COORD_ZK_DEBUG), is checked for
# the passwords afterwards.
set -euo pipefail
bin=$1 # the test_auth executable
shift
wrapper=("$@")
dir=$(mktemp -d /tmp/coord-auth.XXXXXX)
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    local f p
    for f in "$dir"/*.pid; do
        [[ -f $f ]] || continue
        p=$(cat "$f")
        kill "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
AUTH_PORT=${COORD_TEST_AUTH_PORT:-23796}
TLS_PORT=${COORD_TEST_TLS_PORT:-23798}

# Certificates: a CA, a server certificate for 127.0.0.1, a client certificate, another CA.
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=coord-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out client.pem 2>/dev/null

# Each etcd runs from "$dir/<name>.run", detached (so a restart can replace it and init reaps
# it), its pid in "$dir/<name>.pid".
start_etcd() { # name client-url peer-port extra-args...
    local name=$1 url=$2 peer=$3
    shift 3
    printf 'exec etcd' >"$dir/$name.run"
    printf ' %q' --name "$name" --data-dir "$dir/$name" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" "$@" >>"$dir/$name.run"
    (setsid bash "$dir/$name.run" >>"$dir/$name.log" 2>&1 </dev/null & echo $! >"$dir/$name.pid")
}
start_etcd auth "http://127.0.0.1:$AUTH_PORT" $((AUTH_PORT + 1)) --auth-token-ttl 2
start_etcd tls "https://127.0.0.1:$TLS_PORT" $((TLS_PORT + 1)) --cert-file server.pem \
    --key-file server.key --trusted-ca-file ca.pem --client-cert-auth
ctl() { etcdctl --endpoints "http://127.0.0.1:$AUTH_PORT" --dial-timeout 2s "$@" >/dev/null; }
for _ in $(seq 100); do ctl endpoint health 2>/dev/null && break; sleep 0.1; done
ctl user add root:rootpw
ctl user add alice:alicepw
ctl user add bob:bobpw-8d2
ctl user add carol:carolpw-5e1
ctl role add app
ctl role grant-permission app --prefix=true readwrite /coordtest/
ctl role add reader
ctl role grant-permission reader --prefix=true read /coordtest/
ctl role grant-permission reader --prefix=true readwrite /other/
ctl role add other
ctl role grant-permission other --prefix=true readwrite /other/
ctl user grant-role alice app
ctl user grant-role bob reader
ctl user grant-role carol other
ctl user grant-role root root
ctl auth enable
for _ in $(seq 100); do
    etcdctl --endpoints "https://127.0.0.1:$TLS_PORT" --cacert ca.pem --cert client.pem \
        --key client.key endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done

# Restart one etcd (same data: users, roles and leases stay; simple tokens do not). Bounded.
cat >"$dir/restart-etcd" <<EOF
#!/usr/bin/env bash
set -euo pipefail
d=$(printf %q "$dir")
p=\$(cat "\$d/\$1.pid")
kill "\$p" 2>/dev/null || true
for _ in \$(seq 100); do kill -0 "\$p" 2>/dev/null || break; sleep 0.1; done
kill -9 "\$p" 2>/dev/null || true
(setsid bash "\$d/\$1.run" >>"\$d/\$1.log" 2>&1 </dev/null & echo \$! >"\$d/\$1.pid")
for _ in \$(seq 150); do
    etcdctl --endpoints "http://127.0.0.1:$AUTH_PORT" --dial-timeout 1s --user root:rootpw \
        endpoint health >/dev/null 2>&1 && exit 0
    sleep 0.1
done
echo "restart-etcd: \$1 did not come back" >&2
exit 1
EOF
chmod +x "$dir/restart-etcd"
cd - >/dev/null

# stderr is kept for the check below and shown without the ZooKeeper client's log lines.
set +e
{
    COORD_TEST_ETCD_AUTH=127.0.0.1:$AUTH_PORT COORD_TEST_ETCD_TLS=127.0.0.1:$TLS_PORT \
        COORD_TEST_TLS_DIR=$dir COORD_TEST_ETCD_AUTH_RESTART="$dir/restart-etcd auth" \
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

#!/usr/bin/env bash
# Credentials and TLS, against real servers started here: an etcd with authentication enabled
# (simple tokens living 2 s, to exercise re-authentication), an etcd serving TLS with client
# certificates required (certificates made with openssl), and the single-node ZooKeeper of
# scripts/servers.sh (COORD_TEST_ZK) for digest ACLs. Runs build/tests/test_auth with their
# addresses. Everything is stopped and removed on exit.
set -euo pipefail
bin=$1 # the test_auth executable
dir=$(mktemp -d /tmp/coord-auth.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
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

start_etcd() { # name client-url peer-port extra-args...
    local name=$1 url=$2 peer=$3
    shift 3
    setsid etcd --name "$name" --data-dir "$dir/$name" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$name=http://127.0.0.1:$peer" "$@" >"$dir/$name.log" 2>&1 </dev/null &
    pids+=($!)
}
start_etcd auth "http://127.0.0.1:$AUTH_PORT" $((AUTH_PORT + 1)) --auth-token-ttl 2
start_etcd tls "https://127.0.0.1:$TLS_PORT" $((TLS_PORT + 1)) --cert-file server.pem \
    --key-file server.key --trusted-ca-file ca.pem --client-cert-auth
ctl() { etcdctl --endpoints "http://127.0.0.1:$AUTH_PORT" --dial-timeout 2s "$@" >/dev/null; }
for _ in $(seq 100); do ctl endpoint health 2>/dev/null && break; sleep 0.1; done
ctl user add root:rootpw
ctl user add alice:alicepw
ctl role add app
ctl role grant-permission app --prefix=true readwrite /coordtest/
ctl user grant-role alice app
ctl user grant-role root root
ctl auth enable
for _ in $(seq 100); do
    etcdctl --endpoints "https://127.0.0.1:$TLS_PORT" --cacert ca.pem --cert client.pem \
        --key client.key endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done
cd - >/dev/null
COORD_TEST_ETCD_AUTH=127.0.0.1:$AUTH_PORT COORD_TEST_ETCD_TLS=127.0.0.1:$TLS_PORT \
    COORD_TEST_TLS_DIR=$dir "$bin"

#!/usr/bin/env bash
# The demo, from a clean clone on Debian, as root: install what is missing, build, start local
# ZooKeeper and etcd servers, run the examples against both backends, stop the servers.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
if [ "${1:-}" != "--inner" ]; then
    bash scripts/deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build build -j"$(nproc)" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    exec bash scripts/servers.sh run single -- bash "$0" --inner
fi
for uri in "zk://$COORD_TEST_ZK/coord-demo" "etcd://$COORD_TEST_ETCD/coord-demo"; do
    echo "== $uri"
    build/examples/hello --uri "$uri"
    build/examples/lock_demo --uri "$uri" --workers 3 --rounds 2
    build/examples/counter_demo --uri "$uri" --workers 4 --adds 50
    # A short session TTL so the demo's killed worker goes within seconds.
    build/examples/ring_demo --uri "$uri?session_ttl_ms=3000" --workers 4 --keys 10000
done

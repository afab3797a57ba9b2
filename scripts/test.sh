#!/usr/bin/env bash
# The whole test suite, from a clean clone on Debian, as root:
#   install what is missing, build (plain, ASan+UBSan, ThreadSanitizer, and without backends),
#   fuzz the parsers (libFuzzer targets of tests/fuzz, scripts/fuzz.sh, 20 s each),
#   check formatting, docker-compose.yml, the API reference (Doxygen, warnings are errors) and
#   the installed package, start local ZooKeeper and etcd (single node and 3-member clusters),
#   run unit, conformance and cluster tests, the same under ASan+UBSan, the conformance suites
#   under ThreadSanitizer and under valgrind. Servers are stopped afterwards, also on failure.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
JOBS=$(nproc)

if [ "${1:-}" != "--inner" ]; then
    bash scripts/deps.sh
    echo "== build"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build build -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    echo "== build with ASan+UBSan"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCOORD_SANITIZE=ON >>build.log 2>&1
    cmake --build build-asan -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    echo "== fuzzing (libFuzzer, 20 s per target)"
    bash scripts/fuzz.sh 20
    echo "== build with ThreadSanitizer (conformance suites)"
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORD_TSAN=ON -DCOORD_BUILD_EXAMPLES=OFF \
        -DCOORD_BUILD_BENCH=OFF -DCOORD_BUILD_TOOLS=OFF >>build.log 2>&1
    cmake --build build-tsan -j"$JOBS" --target test_ring test_lock test_counter test_session \
        >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    echo "== build without backends"
    cmake -S . -B build-nobackend -DCOORD_WITH_ZOOKEEPER=OFF -DCOORD_WITH_ETCD=OFF >>build.log 2>&1
    cmake --build build-nobackend -j"$JOBS" --target test_backends test_uri hello >>build.log 2>&1 ||
        { tail -50 build.log; exit 1; }
    (cd build-nobackend && ctest -R 'test_backends|test_uri' --output-on-failure)

    echo "== formatting (.clang-format)"
    git ls-files '*.c' '*.h' '*.h.in' | grep -v '\.in$' | xargs clang-format --dry-run -Werror
    echo "== docker-compose.yml"
    docker-compose -f docker-compose.yml config -q
    echo "== API reference (Doxygen; any warning, e.g. an undocumented public item, fails)"
    cmake --build build --target doc >build/doc.log 2>&1 || { cat build/doc.log; exit 1; }
    if grep -E 'warning:|error:' build/doc.log; then echo "doxygen reported the above"; exit 1; fi
    echo "== installed package: find_package and pkg-config consumers"
    rm -rf build-install && cmake --install build --prefix "$PWD/build-install/prefix" >/dev/null
    cmake -S tests/install -B build-install/cmake -DCMAKE_PREFIX_PATH="$PWD/build-install/prefix" >/dev/null
    cmake --build build-install/cmake >/dev/null
    LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/cmake/consumer
    PKG_CONFIG_PATH="$PWD/build-install/prefix/lib/pkgconfig" \
        sh -c 'cc tests/install/consumer.c $(pkg-config --cflags --libs coord) -o build-install/pc-consumer'
    LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/pc-consumer
    LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/prefix/bin/coordctl --version
    test -s build-install/prefix/share/man/man1/coordctl.1

    exec bash scripts/servers.sh run both -- bash "$0" --inner
fi

# Inside: servers are up and COORD_TEST_* are set.
export COORD_TEST_REQUIRE_SERVERS=1
echo "== valgrind: unit and conformance suites"
VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --suppressions=tests/valgrind.supp)
for t in build/tests/test_uri build/tests/test_name build/tests/test_zk_path \
    build/tests/test_backends build/tests/test_etcd_codec build/tests/test_counter_codec \
    build/tests/test_etcd_badserver build/tests/test_session build/tests/test_ring_codec \
    build/tests/test_hashring build/tests/test_lock build/tests/test_counter build/tests/test_ring; do
    [ -x "$t" ] || continue
    "${VG[@]}" "$t" >"$t.valgrind.log" 2>&1 ||
        { cat "$t.valgrind.log"; echo "valgrind: $t failed"; exit 1; }
    echo "valgrind ok: $t"
done
bash tests/conformance/test_auth_tls.sh build/tests/test_auth "${VG[@]}" \
    >build/test_auth.valgrind.log 2>&1 ||
    { cat build/test_auth.valgrind.log; echo "valgrind: test_auth failed"; exit 1; }
echo "valgrind ok: build/tests/test_auth (credentials and TLS)"
echo "== ThreadSanitizer: ring (lookups during churn), lock, counter and session suites"
for t in test_ring test_lock test_counter test_session; do
    TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
        build-tsan/tests/$t >"build-tsan/$t.log" 2>&1 ||
        { cat "build-tsan/$t.log"; echo "ThreadSanitizer: $t failed"; exit 1; }
    echo "tsan ok: $t"
done
echo "== ASan+UBSan: unit, conformance and cluster suites"
(cd build-asan && LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp ctest -j1 --output-on-failure)
echo "== unit, conformance and cluster suites"
cd build && ctest -j1 --output-on-failure

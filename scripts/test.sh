#!/usr/bin/env bash
# The test suite. Which to run when:
#   cd build && ctest -L unit    seconds, no server: first, after every change
#   scripts/test.sh --quick      everyday work, under 4 minutes: install what is missing, one
#                                build ($COORD_BUILD_DIR, default build/), the unit tier, then the
#                                conformance tier on both backends (ctest -L conformance: its
#                                fixture starts and stops the servers of scripts/servers.sh)
#   scripts/test.sh              everything, what CI runs (about 25 minutes), from a clean clone
#                                on Debian: install what is missing, build (plain, ASan+UBSan,
#                                ThreadSanitizer, Release with gcc and clang, and without
#                                backends), fuzz the parsers (libFuzzer targets of tests/fuzz,
#                                scripts/fuzz.sh, 20 s each), check formatting,
#                                docker-compose.yml, the API reference (Doxygen, warnings are
#                                errors) and the installed package, start local
#                                ZooKeeper and etcd (single node and 3-member clusters), run the
#                                unit, conformance and cluster tiers under ASan+UBSan, the unit
#                                and conformance tiers plain, the conformance suites under
#                                ThreadSanitizer and under valgrind.
# Servers are stopped afterwards, also on failure. Root is needed only to install packages.
# Ports, pointer file and the other server settings come from the COORD_SERVERS_* environment
# (scripts/servers.sh --help); servers already named by COORD_TEST_* are used as they are.
#
# Stages can be skipped with SKIP_<STAGE>=1: DEPS, BUILD (both modes); UNIT, CONFORMANCE (both
# modes); CLUSTER, ASAN, FUZZ, TSAN, NOBACKEND, RELEASE, FORMAT, COMPOSE, DOCS, INSTALL,
# VALGRIND (full).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
JOBS=$(nproc)
B=${COORD_BUILD_DIR:-build}
skip() { # STAGE -> is SKIP_STAGE=1?
    local v=SKIP_$1
    [ "${!v:-0}" = 1 ]
}
T0=${COORD_TEST_SH_T0:-$(date +%s)}
# The suites run under ThreadSanitizer: the recipes on the fake backend (their threads and the
# library's, every run) and on real servers.
TSAN_TESTS="test_lock_fake test_counter_fake test_ring_fake test_election_fake test_kv_fake
    test_queue_fake test_ring test_lock test_counter test_session test_election test_semaphore
    test_rwlock test_barrier test_kv test_queue test_loop test_loop_adapters test_loop_fake"
stage() { echo "== $* (at $(($(date +%s) - T0)) s)"; }

build_plain() {
    skip BUILD && return 0
    stage "build ($B)"
    cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.log 2>&1 || { cat build.log; exit 1; }
    cmake --build "$B" -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
}

# ctest in build dir $1 of the tiers not skipped; more ctest arguments follow
tiers() {
    local dir=$1 drop=() t
    shift
    for t in UNIT CONFORMANCE CLUSTER; do
        if skip "$t"; then drop+=("$(printf %s "$t" | tr '[:upper:]' '[:lower:]')"); fi
    done
    if [ ${#drop[@]} = 3 ]; then return 0; fi
    if [ ${#drop[@]} -gt 0 ]; then
        set -- -LE "^($(
            IFS='|'
            echo "${drop[*]}"
        ))\$" "$@"
    fi
    (cd "$dir" && ctest --output-on-failure "$@")
}

if [ "${1:-}" = "--quick" ]; then
    skip DEPS || bash scripts/deps.sh
    build_plain
    if ! skip UNIT; then
        stage "unit tier"
        (cd "$B" && ctest -L unit -j"$JOBS" --output-on-failure)
    fi
    if ! skip CONFORMANCE; then
        stage "conformance tier, both backends (servers from the ctest fixture)"
        (cd "$B" && COORD_TEST_REQUIRE_SERVERS=1 ctest -L conformance -j"$JOBS" --output-on-failure)
    fi
    stage "done"
    exit 0
fi

if [ "${1:-}" != "--inner" ]; then
    skip DEPS || bash scripts/deps.sh
    build_plain
    if ! skip ASAN; then
        stage "build with ASan+UBSan"
        cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCOORD_SANITIZE=ON >>build.log 2>&1
        cmake --build build-asan -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    fi
    if ! skip FUZZ; then
        stage "fuzzing (libFuzzer, 20 s per target)"
        bash scripts/fuzz.sh 20
    fi
    if ! skip TSAN; then
        stage "build with ThreadSanitizer (conformance suites)"
        cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORD_TSAN=ON -DCOORD_BUILD_EXAMPLES=OFF \
            -DCOORD_BUILD_BENCH=OFF -DCOORD_BUILD_TOOLS=OFF >>build.log 2>&1
        cmake --build build-tsan -j"$JOBS" --target $TSAN_TESTS >>build.log 2>&1 ||
            { tail -50 build.log; exit 1; }
    fi
    if ! skip NOBACKEND; then
        stage "build without backends"
        cmake -S . -B build-nobackend -DCOORD_WITH_ZOOKEEPER=OFF -DCOORD_WITH_ETCD=OFF >>build.log 2>&1
        cmake --build build-nobackend -j"$JOBS" --target test_backends test_uri hello >>build.log 2>&1 ||
            { tail -50 build.log; exit 1; }
        (cd build-nobackend && ctest -R 'test_backends|test_uri' --output-on-failure)
    fi

    if ! skip RELEASE; then
        # -O3 inlines further than the other builds and so warns where they do not
        # (maybe-uninitialized, format-overflow), and clang has warnings of its own
        # (string-concatenation): a user's Release build must compile with either.
        stage "build Release (-O3, every target, warnings are errors) with gcc and clang"
        cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >>build.log 2>&1
        cmake --build build-release -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
        CC=clang cmake -S . -B build-release-clang -DCMAKE_BUILD_TYPE=Release >>build.log 2>&1
        cmake --build build-release-clang -j"$JOBS" >>build.log 2>&1 || { tail -50 build.log; exit 1; }
    fi

    if ! skip FORMAT; then
        stage "formatting (.clang-format)"
        git ls-files '*.c' '*.h' '*.h.in' | grep -v '\.in$' | xargs clang-format --dry-run -Werror
    fi
    if ! skip COMPOSE; then
        stage "docker-compose.yml"
        docker-compose -f docker-compose.yml config -q
    fi
    if ! skip DOCS; then
        stage "API reference (Doxygen; any warning, e.g. an undocumented public item, fails)"
        cmake --build "$B" --target doc >"$B/doc.log" 2>&1 || { cat "$B/doc.log"; exit 1; }
        if grep -E 'warning:|error:' "$B/doc.log"; then echo "doxygen reported the above"; exit 1; fi
    fi
    if ! skip INSTALL; then
        stage "installed package: find_package and pkg-config consumers"
        rm -rf build-install && cmake --install "$B" --prefix "$PWD/build-install/prefix" >/dev/null
        cmake -S tests/install -B build-install/cmake -DCMAKE_PREFIX_PATH="$PWD/build-install/prefix" >/dev/null
        cmake --build build-install/cmake >/dev/null
        LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/cmake/consumer
        PKG_CONFIG_PATH="$PWD/build-install/prefix/lib/pkgconfig" \
            sh -c 'cc tests/install/consumer.c $(pkg-config --cflags --libs coord) -o build-install/pc-consumer'
        LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/pc-consumer
        LD_LIBRARY_PATH="$PWD/build-install/prefix/lib" build-install/prefix/bin/coordctl --version
        test -s build-install/prefix/share/man/man1/coordctl.1
    fi

    export COORD_TEST_SH_T0=$T0
    exec bash scripts/servers.sh run both -- bash "$0" --inner
fi

# Inside: servers are up and COORD_TEST_* are set.
export COORD_TEST_REQUIRE_SERVERS=1
if ! skip VALGRIND; then
    stage "valgrind: unit and conformance suites"
    VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
        --suppressions=tests/valgrind.supp)
    for t in test_uri test_name test_zk_path test_backends test_etcd_codec test_counter_codec \
        test_etcd_badserver test_session test_ring_codec test_hashring test_options test_fake \
        test_args test_lock_fake test_counter_fake test_ring_fake test_election_fake test_lock \
        test_counter test_ring test_election test_kv_fake test_queue_fake test_kv test_queue \
        test_loop_adapters test_loop_fake; do
        t=$B/tests/$t
        [ -x "$t" ] || continue
        COORD_TEST_LOOP_WAITERS=100 "${VG[@]}" "$t" >"$t.valgrind.log" 2>&1 ||
            { cat "$t.valgrind.log"; echo "valgrind: $t failed"; exit 1; }
        echo "valgrind ok: $t"
    done
    bash tests/conformance/test_auth_tls.sh "$B/tests/test_auth" "${VG[@]}" \
        >"$B/test_auth.valgrind.log" 2>&1 ||
        { cat "$B/test_auth.valgrind.log"; echo "valgrind: test_auth failed"; exit 1; }
    echo "valgrind ok: $B/tests/test_auth (credentials and TLS)"
fi
if ! skip TSAN; then
    stage "ThreadSanitizer: the recipes on the fake backend and on the servers"
    for t in $TSAN_TESTS; do
        TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
            build-tsan/tests/$t >"build-tsan/$t.log" 2>&1 ||
            { cat "build-tsan/$t.log"; echo "ThreadSanitizer: $t failed"; exit 1; }
        echo "tsan ok: $t"
    done
fi
if ! skip ASAN; then
    stage "ASan+UBSan: unit, conformance and cluster tiers"
    # The etcd suites' second watch path (_http), the interop suite (its peers are other
    # processes: etcdctl, kazoo, Curator) and coordctl's run the library's code that the other
    # suites run here already; they run in the plain tiers below, which keeps CI under 30 min.
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp tiers build-asan -j1 \
        -E '_http$|^test_interop$|^test_coordctl$'
fi
if skip ASAN; then
    stage "unit, conformance and cluster tiers"
    tiers "$B" -j1
else
    # The cluster tier's fault workloads ran under ASan+UBSan above (the same behaviour, with
    # memory checks); once is enough, and keeps CI under 30 minutes. The suites ThreadSanitizer
    # ran above were built optimized (RelWithDebInfo) too, so they are not run again either; the
    # rest (other unit suites, credentials, TLS, the HTTP gateway, the WebSocket stream, interop,
    # coordctl) runs here: every suite runs at least once optimized.
    stage "unit and conformance tiers (the suites ThreadSanitizer did not run)"
    if skip TSAN; then
        SKIP_CLUSTER=1 tiers "$B" -j1
    else
        SKIP_CLUSTER=1 tiers "$B" -j1 -E "^($(echo $TSAN_TESTS | tr ' ' '|'))\$"
    fi
fi
stage "done"

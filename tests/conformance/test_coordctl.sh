#!/usr/bin/env bash
# coordctl end to end, the same checks against ZooKeeper and etcd (COORD_TEST_ZK, COORD_TEST_ETCD
# from scripts/servers.sh). Usage: test_coordctl.sh path/to/coordctl
# Every wait is bounded (timeout(1), read -t); exit 77 (skipped) without servers unless
# COORD_TEST_REQUIRE_SERVERS=1.
set -uo pipefail
CTL=${1:?usage: test_coordctl.sh path/to/coordctl}
fails=0
tmp=$(mktemp -d)
pids=()
main=$BASHPID
cleanup() {
    # A forked child killed before it execs runs this trap too: only the script itself cleans up.
    [ "$BASHPID" = "$main" ] || return 0
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${COORD_TEST_ZK:-}" ] || [ -z "${COORD_TEST_ETCD:-}" ]; then
    echo "COORD_TEST_ZK / COORD_TEST_ETCD not set: start servers with scripts/servers.sh"
    [ "${COORD_TEST_REQUIRE_SERVERS:-0}" = 1 ] && exit 1
    exit 77
fi

ok() { echo "  ok   $*"; }
bad() {
    echo "  FAIL $*"
    fails=$((fails + 1))
}
# expect STATUS DESCRIPTION -- command...: run with a bound, compare the exit status
expect() {
    local want=$1 what=$2
    shift 3
    timeout 30 "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" = "$want" ]; then ok "$what"; else bad "$what: exit $got, want $want: $(cat "$tmp/err")"; fi
}
# out_is TEXT DESCRIPTION: the last command's stdout
out_is() {
    if [ "$(cat "$tmp/out")" = "$1" ]; then ok "$2"; else bad "$2: got '$(cat "$tmp/out")', want '$1'"; fi
}
json_check() { # PYTHON-EXPR DESCRIPTION: evaluated with d = the last stdout line as JSON
    if python3 -c "import json,sys; d=json.loads(open('$tmp/out').read().splitlines()[-1]); sys.exit(0 if ($1) else 1)" 2>/dev/null; then
        ok "$2"
    else
        bad "$2: $(cat "$tmp/out")"
    fi
}
# reap PID: wait (at most 20 s) for a background coordctl to exit; its status in $st
st=0
reap() {
    timeout 20 tail --pid="$1" -f /dev/null
    kill -KILL "$1" 2>/dev/null
    wait "$1"
    st=$?
}
# await_blocked PID: coordctl has started and blocked the signals it waits for (SIGTERM is bit
# 15 of SigBlk; the main thread shows them unblocked while in sigwaitinfo, its other threads
# show the mask), so a SIGTERM now reaches its own handling rather than killing it at once.
# Only once the job runs coordctl: bash's forked child blocks SIGINT and SIGTERM until it has
# set up the job (a background job's SIGINT ignored), and a SIGINT sent then is lost.
ctl_exe=$(readlink -f "$CTL")
await_blocked() {
    local i mask
    for ((i = 0; i < 400; i++)); do
        if [ "$(readlink /proc/"$1"/exe 2>/dev/null)" = "$ctl_exe" ]; then
            for mask in $(awk '/^SigBlk/ {print $2}' /proc/"$1"/task/*/status 2>/dev/null); do
                if (((16#$mask >> 14) & 1)); then return 0; fi
            done
        fi
        sleep 0.05
    done
    return 1
}
# await_line FD TEXT: the next line on FD (a FIFO kept open by this script, so writers never
# meet a closed pipe) arrives within 20 s and contains TEXT; it is left in $line
line=""
await_line() {
    line=""
    if read -r -t 20 line <&"$1" && [[ $line == *"$2"* ]]; then return 0; fi
    echo "    (read '$line' from fd $1)"
    return 1
}

run_backend() {
    local uri=$1
    export COORD_URI=$uri
    echo "== $uri"

    # ---- counter
    expect 0 "counter get of a missing counter" -- "$CTL" counter get c
    out_is 0 "it reads 0"
    expect 0 "counter set" -- "$CTL" counter set c 10
    expect 0 "counter add" -- "$CTL" counter add c 5
    out_is 15 "add prints the new value"
    expect 0 "counter add negative" -- "$CTL" counter add c -3
    out_is 12 "add -3"
    expect 0 "counter cas success" -- "$CTL" counter cas c 12 20
    expect 3 "counter cas on another value exits 3" -- "$CTL" counter cas c 12 30
    expect 0 "counter get" -- "$CTL" counter get c
    out_is 20 "the failed cas changed nothing"
    expect 0 "counter get --json" -- "$CTL" --json counter get c
    json_check 'd["value"] == 20 and d["counter"] == "c"' "JSON output parses"
    expect 0 "sharded add" -- "$CTL" counter add s 4 --shards 4
    expect 0 "sharded add" -- "$CTL" counter add s 5 --shards 4
    expect 0 "sharded get" -- "$CTL" counter get s --shards 4
    out_is 9 "sharded total"
    expect 2 "cas on a sharded counter is an invalid argument" -- "$CTL" counter cas s 9 1 --shards 4
    expect 2 "counter with a bad value" -- "$CTL" counter add c notanumber

    # ---- lock
    expect 7 "lock passes CMD's status" -- "$CTL" lock L -- sh -c 'test -n "$COORD_LOCK_TOKEN"; exit 7'
    expect 0 "CMD sees its fencing token" -- "$CTL" lock L -- sh -c 'echo "$COORD_LOCK_TOKEN"'
    local t1
    t1=$(cat "$tmp/out")
    expect 0 "a second hold" -- "$CTL" lock L -- sh -c 'echo "$COORD_LOCK_TOKEN"'
    if [ "$(cat "$tmp/out")" -gt "$t1" ] 2>/dev/null; then ok "tokens increase"; else bad "tokens: $t1 then $(cat "$tmp/out")"; fi
    mkfifo "$tmp/held" "$tmp/m1" "$tmp/m2"
    exec 7<>"$tmp/held" 8<>"$tmp/m1" 9<>"$tmp/m2"
    # A script's background jobs start with SIGINT ignored; coordctl takes it all the same.
    "$CTL" lock L -- sh -c 'echo "held $$" >"$0"; exec sleep 60' "$tmp/held" 2>"$tmp/holder.err" &
    local holder=$!
    pids+=("$holder")
    if await_line 7 held; then ok "holder runs CMD"; else bad "holder did not start"; fi
    expect 75 "a second lock --timeout fails while the first holds" -- "$CTL" lock L --timeout 300 -- true
    expect 75 "--timeout 0 tries once" -- "$CTL" lock L --timeout 0 -- true
    # a waiter interrupted while waiting leaves nothing behind
    "$CTL" lock L -- true 2>/dev/null &
    local waiter=$!
    pids+=("$waiter")
    await_blocked "$waiter" || bad "the waiter did not start"
    kill -INT "$waiter"
    reap "$waiter"
    if [ "$st" = 130 ]; then ok "SIGINT while waiting: exit 128+2"; else bad "interrupted waiter exit $st"; fi
    kill -TERM "$holder" # forwarded to CMD (sleep), which dies of it
    reap "$holder"
    if [ "$st" = 143 ]; then ok "SIGTERM forwarded to CMD: exit 128+15"; else bad "holder exit $st: $(cat "$tmp/holder.err")"; fi
    expect 0 "lock free after CMD ended by signal (and no waiter left)" -- "$CTL" lock L --timeout 5000 -- true
    # CMD killed directly
    "$CTL" lock L -- sh -c 'echo "held $$" >"$0"; exec sleep 60' "$tmp/held" 2>/dev/null &
    holder=$!
    pids+=("$holder")
    await_line 7 held || bad "holder did not start"
    kill -KILL "${line#held }" 2>/dev/null
    reap "$holder"
    if [ "$st" = 137 ]; then ok "CMD killed: exit 128+9"; else bad "killed CMD exit $st"; fi
    expect 0 "lock free after CMD was killed" -- "$CTL" lock L --timeout 5000 -- true
    expect 127 "a CMD that does not exist" -- "$CTL" lock L -- /nonexistent/cmd
    expect 2 "lock without CMD" -- "$CTL" lock L --timeout 10
    expect 0 "lock --json notes the token on stderr" -- "$CTL" --json lock L -- true
    if grep -q '"token":' "$tmp/err"; then ok "JSON token line"; else bad "no JSON token: $(cat "$tmp/err")"; fi

    # ---- ring
    "$CTL" ring join G m1 --data d1 >"$tmp/m1" &
    local m1=$!
    pids+=("$m1")
    if await_line 8 joined; then ok "ring join holds the membership"; else bad "m1 did not join"; fi
    "$CTL" --json ring join G m2 --weight 2 >"$tmp/m2" &
    local m2=$!
    pids+=("$m2")
    if await_line 9 '"joined":"m2"'; then ok "ring join --json"; else bad "m2 did not join"; fi
    expect 1 "a live duplicate id is refused" -- "$CTL" ring join G m1
    if grep -q "another live session" "$tmp/err"; then ok "and says why"; else bad "duplicate: $(cat "$tmp/err")"; fi
    expect 0 "ring members" -- "$CTL" ring members G
    out_is "$(printf 'm1\nm2')" "both members listed"
    expect 0 "ring lookup" -- "$CTL" ring lookup G some-key
    case "$(cat "$tmp/out")" in m1 | m2) ok "lookup prints an owner" ;; *) bad "lookup: $(cat "$tmp/out")" ;; esac
    local owner
    owner=$(cat "$tmp/out")
    expect 0 "ring lookup -n 2 --json" -- "$CTL" --json ring lookup G some-key -n 2
    json_check "d['owner'] == '$owner' and d['replicas'][0] == '$owner' and sorted(d['replicas']) == ['m1','m2']" "replicas: the owner first, distinct"
    kill -INT "$m1"
    reap "$m1"
    if [ "$st" = 0 ]; then ok "join leaves on SIGINT, exit 0"; else bad "m1 exit $st"; fi
    expect 0 "ring members after the leave" -- "$CTL" ring members G
    out_is m2 "the member that left is gone at once"
    kill -TERM "$m2"
    reap "$m2"
    expect 0 "ring members of an empty group" -- "$CTL" ring members G
    out_is "" "no members"
    expect 1 "lookup on an empty ring fails" -- "$CTL" ring lookup G k
    exec 7>&- 8>&- 9>&-
    rm -f "$tmp/held" "$tmp/m1" "$tmp/m2"

    # ---- elect
    mkfifo "$tmp/obs" "$tmp/e1" "$tmp/e2"
    exec 3<>"$tmp/obs" 4<>"$tmp/e1" 5<>"$tmp/e2"
    "$CTL" elect --observe E >"$tmp/obs" &
    local obs=$!
    pids+=("$obs")
    if await_line 3 none; then ok "elect --observe first prints the state: none"; else bad "observer: no first line"; fi
    "$CTL" elect E first -- sh -c 'echo "leading $COORD_ELECTION_TERM $COORD_ELECTION_NAME $$" >"$0"; exec sleep 60' "$tmp/e1" 2>"$tmp/e1.err" &
    local e1=$!
    pids+=("$e1")
    local t1=0 t2=0
    if await_line 4 "leading"; then ok "the first candidate leads and runs CMD"; else bad "first candidate: $(cat "$tmp/e1.err")"; fi
    read -r _ t1 _ <<<"$line"
    if [[ $line == "leading $t1 E "* ]] && [ "$t1" -gt 0 ] 2>/dev/null; then ok "CMD sees the term and the name"; else bad "CMD env: '$line'"; fi
    if await_line 3 "leader $t1 first"; then ok "--observe sees the first leader"; else bad "observer: '$line'"; fi
    if grep -qx "leader $t1 first" "$tmp/e1.err"; then ok "the leader line goes to stderr with CMD"; else bad "e1 stderr: $(cat "$tmp/e1.err")"; fi
    "$CTL" --uri "$uri?session_ttl_ms=2000" elect E second >"$tmp/e2" 2>"$tmp/e2.err" &
    local e2=$!
    pids+=("$e2")
    await_blocked "$e2" || bad "the second candidate did not start"
    if read -r -t 1 line <&5; then bad "the second candidate leads too: '$line'"; else ok "the second candidate waits"; fi
    expect 75 "elect --timeout 0 while another leads" -- "$CTL" elect E third --timeout 0
    if grep -q '"first"' "$tmp/err"; then ok "and names the leader"; else bad "timeout: $(cat "$tmp/err")"; fi
    kill -TERM "$e1" # forwarded to CMD; then coordctl resigns
    reap "$e1"
    if [ "$st" = 143 ]; then ok "SIGTERM ends CMD, elect exits 128+15"; else bad "first exit $st: $(cat "$tmp/e1.err")"; fi
    if await_line 5 "leader "; then ok "the resignation hands over to the second"; else bad "second: $(cat "$tmp/e2.err")"; fi
    read -r _ t2 _ <<<"$line"
    if [ "$line" = "leader $t2 second" ] && [ "$t2" -gt "$t1" ] 2>/dev/null; then ok "terms increase"; else bad "terms: $t1 then '$line'"; fi
    if await_line 3 "leader $t2 second"; then ok "--observe sees the second leader"; else bad "observer: '$line'"; fi
    expect 0 "elect --json --observe" -- timeout --preserve-status -s INT 1 "$CTL" --json elect --observe E
    json_check "d['election'] == 'E' and d['leader']['term'] == $t2 and d['leader']['value'] == 'second'" "the JSON leader"
    kill -KILL "$e2" # a crash: the leadership goes with the session, after its TTL (2 s)
    reap "$e2" 2>/dev/null # (no "Killed" note)
    if await_line 3 none; then ok "--observe sees the crashed leader's session end"; else bad "observer after the crash: '$line'"; fi
    expect 0 "elect without CMD leads until SIGINT, then exits 0" -- timeout --preserve-status -s INT 1 "$CTL" elect E fourth
    if grep -qx "leader [0-9]* fourth" "$tmp/out"; then ok "its leader line on stdout"; else bad "fourth: $(cat "$tmp/out" "$tmp/err")"; fi
    expect 0 "elect --timeout 0 leads when nobody does" -- "$CTL" elect E fifth --timeout 0 -- true
    expect 2 "elect --observe with a VALUE" -- "$CTL" elect --observe E v
    expect 2 "elect with a bad name" -- "$CTL" elect 'a/b' v
    # the candidate's key deleted under it: the leadership is lost, CMD (deaf to SIGTERM) killed
    "$CTL" elect E2 sixth --grace 500 -- sh -c 'trap "" TERM; echo "leading $$" >"$0"; while :; do sleep 0.1; done' "$tmp/e1" 2>"$tmp/e1.err" &
    e1=$!
    pids+=("$e1")
    if await_line 4 leading; then
        delete_election "$uri" E2
        reap "$e1"
        if [ "$st" = 1 ] && grep -q "lost the leadership of E2" "$tmp/e1.err" && grep -q "killing it" "$tmp/e1.err"; then
            ok "a lost leadership stops CMD (SIGKILL after --grace), exit 1"
        else
            bad "lost leadership: exit $st: $(cat "$tmp/e1.err")"
        fi
    else
        bad "sixth did not lead: $(cat "$tmp/e1.err")"
    fi
    kill -INT "$obs"
    reap "$obs"
    if [ "$st" = 0 ]; then ok "--observe ends on SIGINT, exit 0"; else bad "observer exit $st"; fi
    exec 3>&- 4>&- 5>&-
    rm -f "$tmp/obs" "$tmp/e1" "$tmp/e2"

    # ---- semaphore: CMD holds one of MAX leases
    mkfifo "$tmp/h1" "$tmp/h2" "$tmp/h3"
    exec 3<>"$tmp/h1" 4<>"$tmp/h2" 5<>"$tmp/h3"
    local hold='echo "held $$ $COORD_SEMAPHORE_NAME $COORD_SEMAPHORE_MAX" >"$0"; exec sleep 60'
    "$CTL" semaphore S1 1 -- sh -c "$hold" "$tmp/h1" 2>/dev/null &
    local s1=$!
    pids+=("$s1")
    if await_line 3 "S1 1"; then ok "semaphore runs CMD with its name and MAX"; else bad "semaphore holder did not start"; fi
    expect 75 "semaphore MAX 1: a second one times out while the first holds" -- "$CTL" semaphore S1 1 --timeout 300 -- true
    expect 3 "semaphore with another MAX than the stored one exits 3" -- "$CTL" semaphore S1 2 --timeout 0 -- true
    kill -TERM "$s1"
    reap "$s1"
    if [ "$st" = 143 ]; then ok "semaphore: SIGTERM forwarded to CMD"; else bad "semaphore holder exit $st"; fi
    expect 0 "semaphore lease free once CMD ended" -- "$CTL" semaphore S1 1 --timeout 5000 -- true
    "$CTL" semaphore S2 2 -- sh -c "$hold" "$tmp/h1" 2>/dev/null &
    s1=$!
    "$CTL" --json semaphore S2 2 -- sh -c "$hold" "$tmp/h2" 2>"$tmp/s2.err" &
    local s2=$!
    pids+=("$s1" "$s2")
    if await_line 3 "S2 2" && await_line 4 "S2 2"; then ok "semaphore MAX 2: two CMDs overlap"; else bad "semaphore MAX 2: not two holders"; fi
    if grep -q '{"semaphore":"S2","max":2}' "$tmp/s2.err"; then ok "semaphore --json note on stderr"; else bad "semaphore JSON: $(cat "$tmp/s2.err")"; fi
    expect 75 "semaphore MAX 2: a third one waits (--timeout 0)" -- "$CTL" semaphore S2 2 --timeout 0 -- true
    kill -TERM "$s1" "$s2"
    reap "$s1"
    reap "$s2"
    expect 2 "semaphore MAX 0" -- "$CTL" semaphore S3 0 -- true

    # ---- rwlock: readers overlap, a writer is alone, a waiting writer goes before later readers
    local rd='echo "read $COORD_RWLOCK_MODE $COORD_RWLOCK_TOKEN $COORD_RWLOCK_NAME" >"$0"; exec sleep 60'
    local wr='echo "write $COORD_RWLOCK_MODE $COORD_RWLOCK_TOKEN $COORD_RWLOCK_NAME" >"$0"; exec sleep 60'
    "$CTL" rwlock R --read -- sh -c "$rd" "$tmp/h1" 2>/dev/null &
    local r1=$!
    pids+=("$r1")
    local rt=0 wt=0
    if await_line 3 "read read"; then ok "rwlock --read runs CMD with the mode"; else bad "reader did not start"; fi
    read -r _ _ rt _ <<<"$line"
    if [ "$line" = "read read $rt R" ] && [ "$rt" -gt 0 ] 2>/dev/null; then ok "the reader sees its token and the name"; else bad "reader env: '$line'"; fi
    expect 0 "a second reader while the first reads" -- "$CTL" rwlock R --read --timeout 5000 -- true
    expect 75 "a writer times out while a reader reads" -- "$CTL" rwlock R --write --timeout 300 -- true
    "$CTL" rwlock R --write -- sh -c "$wr" "$tmp/h2" 2>/dev/null &
    local w1=$!
    pids+=("$w1")
    await_blocked "$w1" || bad "the writer did not start"
    sleep 0.3 # its entry is queued by now
    if read -r -t 0.2 line <&4; then bad "the writer writes while a reader reads: '$line'"; else ok "the writer waits for the reader"; fi
    expect 75 "a later reader waits behind the waiting writer" -- "$CTL" rwlock R --read --timeout 300 -- true
    kill -TERM "$r1"
    reap "$r1"
    if await_line 4 "write write"; then ok "the reader's end lets the writer in"; else bad "writer did not get the lock"; fi
    read -r _ _ wt _ <<<"$line"
    if [ "$wt" -gt "$rt" ] 2>/dev/null; then ok "the writer's token is above the reader's"; else bad "tokens: reader $rt, writer $wt"; fi
    expect 75 "a reader times out while the writer writes" -- "$CTL" rwlock R --read --timeout 300 -- true
    kill -TERM "$w1"
    reap "$w1"
    expect 0 "rwlock free once the writer ended" -- "$CTL" rwlock R --write --timeout 5000 -- true
    expect 2 "rwlock without --read or --write" -- "$CTL" rwlock R -- true

    # ---- barrier
    expect 0 "barrier wait on a barrier never raised" -- "$CTL" barrier B wait --timeout 0
    expect 0 "barrier raise" -- "$CTL" barrier B raise
    expect 0 "barrier raise again" -- "$CTL" barrier B raise
    expect 75 "barrier wait --timeout while raised" -- "$CTL" barrier B wait --timeout 300
    "$CTL" barrier B wait 2>/dev/null &
    local b1=$!
    "$CTL" barrier B wait 2>/dev/null &
    local b2=$!
    pids+=("$b1" "$b2")
    await_blocked "$b1" && await_blocked "$b2" || bad "the barrier waiters did not start"
    kill -INT "$b2"
    reap "$b2"
    if [ "$st" = 130 ]; then ok "SIGINT ends a barrier wait: exit 128+2"; else bad "interrupted barrier wait exit $st"; fi
    if kill -0 "$b1" 2>/dev/null; then ok "barrier wait blocks while raised"; else bad "barrier waiter ended early"; fi
    expect 0 "barrier lower --json" -- "$CTL" --json barrier B lower
    json_check 'd["barrier"] == "B" and d["raised"] is False' "barrier JSON"
    reap "$b1"
    if [ "$st" = 0 ]; then ok "barrier wait returns 0 after lower"; else bad "barrier waiter exit $st"; fi
    expect 0 "barrier lower again" -- "$CTL" barrier B lower
    expect 2 "barrier with an unknown command" -- "$CTL" barrier B open
    exec 3>&- 4>&- 5>&-
    rm -f "$tmp/h1" "$tmp/h2" "$tmp/h3"

    # ---- kv
    expect 4 "kv get of an absent key exits 4" -- "$CTL" kv get k1
    expect 0 "kv put" -- "$CTL" kv put k1 hello
    local v1 v2 vw
    v1=$(cat "$tmp/out")
    if [ "$v1" -gt 0 ] 2>/dev/null; then ok "kv put prints the new version"; else bad "kv put printed '$v1'"; fi
    expect 0 "kv get --version" -- "$CTL" kv get k1 --version
    out_is hello "kv get prints the value"
    if [ "$(cat "$tmp/err")" = "$v1" ]; then ok "--version: the version on stderr"; else bad "--version: '$(cat "$tmp/err")', want '$v1'"; fi
    expect 3 "kv put --expect another version exits 3" -- "$CTL" kv put k1 x --expect $((v1 + 1000))
    if grep -q "version $v1" "$tmp/err"; then ok "and says the current version"; else bad "conflict: $(cat "$tmp/err")"; fi
    expect 3 "kv put --expect 0 on a key that exists exits 3" -- "$CTL" kv put k1 x --expect 0
    expect 0 "kv get" -- "$CTL" kv get k1
    out_is hello "the refused puts changed nothing"
    expect 0 "kv put --expect the current version" -- "$CTL" kv put k1 world --expect "$v1"
    v2=$(cat "$tmp/out")
    if [ "$v2" -gt "$v1" ] 2>/dev/null; then ok "versions increase"; else bad "versions: $v1 then '$v2'"; fi
    expect 0 "kv put --expect 0 on an absent key" -- "$CTL" kv put k3 '' --expect 0
    expect 0 "kv get of an empty value" -- "$CTL" kv get k3
    if [ ! -s "$tmp/out" ]; then ok "prints nothing"; else bad "empty value: '$(cat "$tmp/out")'"; fi
    expect 0 "kv put from stdin" -- sh -c 'printf "a\nb\n" | "$0" kv put k2 -' "$CTL"
    expect 0 "kv get of a value with newlines" -- "$CTL" kv get k2
    if printf 'a\nb\n' | cmp -s - "$tmp/out"; then ok "the value's bytes as they are"; else bad "stdin value: '$(od -c "$tmp/out")'"; fi
    expect 0 "kv get --json" -- "$CTL" --json kv get k2
    json_check "d['key'] == 'k2' and d['value'] == 'a\\nb\\n' and d['version'] > 0" "the JSON value"
    expect 0 "kv put of a deeper key" -- "$CTL" kv put a/b/c deep
    local vdeep
    vdeep=$(cat "$tmp/out")
    expect 0 "kv list" -- "$CTL" kv list
    out_is "$(printf 'a\nk1\nk2\nk3')" "the top names, sorted, with those leading deeper"
    expect 0 "kv list PREFIX" -- "$CTL" kv list a
    out_is b "the names below a"
    expect 0 "kv list --json" -- "$CTL" --json kv list a/b
    json_check "d['prefix'] == 'a/b' and d['keys'] == ['c']" "the JSON list"
    expect 0 "kv list of a prefix with nothing below" -- "$CTL" kv list nothing/here
    out_is "" "no names"
    expect 4 "kv get of a name that only leads deeper exits 4" -- "$CTL" kv get a/b
    expect 3 "kv delete --expect another version exits 3" -- "$CTL" kv delete k1 --expect "$v1"
    expect 0 "kv delete --expect the current version" -- "$CTL" kv delete k1 --expect "$v2"
    expect 4 "kv get after the delete exits 4" -- "$CTL" kv get k1
    expect 4 "kv delete of an absent key exits 4" -- "$CTL" kv delete k1
    expect 2 "kv get with a bad key" -- "$CTL" kv get 'a//b'
    expect 2 "kv put of a value over 1,000,000 bytes" -- sh -c 'head -c 1000001 /dev/zero | "$0" kv put big -' "$CTL"
    expect 4 "which wrote nothing" -- "$CTL" kv get big
    expect 2 "kv put without a VALUE" -- "$CTL" kv put k1
    expect 0 "kv watch --count 1" -- "$CTL" kv watch a/b/c --count 1
    out_is "$vdeep deep" "prints VERSION VALUE"
    expect 0 "kv watch --json --count 1 of an absent key" -- "$CTL" --json kv watch k1 --count 1
    json_check "d['key'] == 'k1' and d['version'] == 0 and d['value'] is None" "the JSON report of an absent key"
    mkfifo "$tmp/w1"
    exec 3<>"$tmp/w1"
    "$CTL" kv watch wk >"$tmp/w1" 2>"$tmp/w1.err" &
    local w1=$!
    pids+=("$w1")
    if await_line 3 "0 -" && [ "$line" = "0 -" ]; then ok "kv watch first prints the state: 0 -"; else bad "watch: no first line: $(cat "$tmp/w1.err")"; fi
    expect 0 "kv put of the watched key" -- "$CTL" kv put wk one
    vw=$(cat "$tmp/out")
    if await_line 3 "one" && [ "$line" = "$vw one" ]; then ok "the watch prints the new version and value"; else bad "watch: '$line', want '$vw one'"; fi
    expect 0 "kv put again" -- "$CTL" kv put wk two
    vw=$(cat "$tmp/out")
    if await_line 3 "two" && [ "$line" = "$vw two" ]; then ok "and the next change"; else bad "watch: '$line', want '$vw two'"; fi
    expect 0 "kv delete of the watched key" -- "$CTL" kv delete wk
    if await_line 3 "-" && [ "$line" = "0 -" ]; then ok "a delete prints 0 -"; else bad "watch after delete: '$line'"; fi
    kill -INT "$w1"
    reap "$w1"
    if [ "$st" = 0 ]; then ok "kv watch ends on SIGINT, exit 0"; else bad "watch exit $st: $(cat "$tmp/w1.err")"; fi
    exec 3>&-
    rm -f "$tmp/w1"

    # ---- queue
    expect 0 "queue size of a new queue" -- "$CTL" queue size Q
    out_is 0 "is 0"
    expect 75 "queue take --timeout 0 on an empty queue exits 75" -- "$CTL" queue take Q --timeout 0
    expect 75 "queue claim --timeout 0 on an empty queue exits 75" -- "$CTL" queue claim Q --timeout 0 -- true
    expect 75 "queue take --timeout 300 on an empty queue exits 75" -- "$CTL" queue take Q --timeout 300
    expect 0 "queue put" -- "$CTL" queue put Q one
    expect 0 "queue put --json" -- "$CTL" --json queue put Q two
    json_check "d['queue'] == 'Q' and d['put'] == 3" "the JSON put"
    expect 0 "queue put from stdin" -- sh -c 'printf three | "$0" queue put Q -' "$CTL"
    expect 0 "queue size" -- "$CTL" queue size Q
    out_is 3 "counts the items"
    expect 5 "a claim whose CMD fails exits with CMD's status" -- "$CTL" queue claim Q -- sh -c 'read -r x; echo "$x $COORD_QUEUE_NAME" >"$0"; exit 5' "$tmp/item"
    if [ "$(cat "$tmp/item")" = "one Q" ]; then ok "CMD reads the oldest item on stdin, the name in its environment"; else bad "CMD got '$(cat "$tmp/item")'"; fi
    expect 0 "queue size after the failed claim" -- "$CTL" queue size Q
    out_is 3 "the item stays in the queue"
    expect 0 "a claim whose CMD succeeds" -- "$CTL" queue claim Q --timeout 5000 -- cat
    out_is one "the given-back item is handed out again, first"
    expect 0 "queue size after the ack" -- "$CTL" queue size Q
    out_is 2 "the acked item is gone"
    expect 0 "queue take" -- "$CTL" queue take Q
    out_is two "takes the oldest item"
    expect 0 "queue take --json" -- "$CTL" --json queue take Q
    json_check "d['queue'] == 'Q' and d['item'] == 'three'" "the JSON item"
    expect 0 "queue put" -- "$CTL" queue put Q four
    expect 127 "a claim whose CMD does not exist" -- "$CTL" queue claim Q -- /nonexistent/cmd
    expect 0 "its item stays" -- "$CTL" queue size Q
    out_is 1 "one item left"
    mkfifo "$tmp/c1"
    exec 4<>"$tmp/c1"
    "$CTL" --uri "$uri?session_ttl_ms=2000" queue claim Q -- sh -c 'echo "held $$" >"$0"; exec sleep 60' "$tmp/c1" 2>"$tmp/c1.err" &
    local c1=$!
    pids+=("$c1")
    if await_line 4 held; then ok "queue claim runs CMD while it holds the item"; else bad "claimer did not start: $(cat "$tmp/c1.err")"; fi
    expect 0 "queue size while the item is claimed" -- "$CTL" queue size Q
    out_is 0 "a claimed item is not counted"
    expect 75 "nor handed out" -- "$CTL" queue take Q --timeout 0
    kill -TERM "$c1" # forwarded to CMD, which dies of it: the item is given back
    reap "$c1"
    if [ "$st" = 143 ]; then ok "SIGTERM forwarded to CMD: exit 128+15"; else bad "claimer exit $st: $(cat "$tmp/c1.err")"; fi
    expect 0 "queue size after CMD was killed" -- "$CTL" queue size Q
    out_is 1 "the item is back"
    # a claimer that crashes: its item comes back when its session ends (TTL 2 s)
    "$CTL" --uri "$uri?session_ttl_ms=2000" queue claim Q -- sh -c 'echo "held $$" >"$0"; exec sleep 60' "$tmp/c1" 2>/dev/null &
    c1=$!
    pids+=("$c1")
    if await_line 4 held; then
        kill -KILL "$c1" "${line#held }"
        reap "$c1" 2>/dev/null
        expect 0 "the item of a crashed claimer is handed out again" -- "$CTL" queue take Q --timeout 20000
        out_is four "the same item"
    else
        bad "second claimer did not start"
    fi
    # a blocked claimer is woken by a put; a blocked taker ends on SIGINT
    "$CTL" queue claim Q -- sh -c 'echo "got $(cat)" >"$0"' "$tmp/c1" 2>"$tmp/c1.err" &
    c1=$!
    pids+=("$c1")
    await_blocked "$c1" || bad "the waiting claimer did not start"
    expect 0 "queue put for the waiting claimer" -- "$CTL" queue put Q five
    if await_line 4 "got" && [ "$line" = "got five" ]; then ok "a put wakes a waiting claimer"; else bad "waiting claimer: '$line' $(cat "$tmp/c1.err")"; fi
    reap "$c1"
    if [ "$st" = 0 ]; then ok "and it acks, exit 0"; else bad "waiting claimer exit $st"; fi
    "$CTL" queue take Q 2>/dev/null &
    local t1=$!
    pids+=("$t1")
    await_blocked "$t1" || bad "the waiting taker did not start"
    kill -INT "$t1"
    reap "$t1"
    if [ "$st" = 130 ]; then ok "SIGINT ends a waiting take: exit 128+2"; else bad "interrupted take exit $st"; fi
    expect 0 "queue size at the end" -- "$CTL" queue size Q
    out_is 0 "nothing left"
    expect 2 "queue with a bad name" -- "$CTL" queue size 'a/b'
    expect 2 "queue claim without CMD" -- "$CTL" queue claim Q --timeout 0
    exec 4>&-
    rm -f "$tmp/c1"

    # ---- the issue's forms: get|put|del|watch KEY, list, queue NAME OP
    mkfifo "$tmp/w2"
    exec 5<>"$tmp/w2"
    "$CTL" watch ik --count 3 >"$tmp/w2" 2>"$tmp/w2.err" &
    local w2=$!
    pids+=("$w2")
    if await_line 5 "0 -" && [ "$line" = "0 -" ]; then ok "watch KEY first prints 0 -"; else bad "watch KEY: no first line: $(cat "$tmp/w2.err")"; fi
    expect 4 "get KEY of an absent key exits 4" -- "$CTL" get ik
    expect 0 "put KEY VALUE" -- "$CTL" put ik v1
    local iv
    iv=$(cat "$tmp/out")
    if await_line 5 "v1" && [ "$line" = "$iv v1" ]; then ok "watch KEY prints the put"; else bad "watch KEY: '$line', want '$iv v1'"; fi
    expect 0 "get KEY" -- "$CTL" get ik
    out_is v1 "get KEY prints the value"
    expect 3 "put KEY VALUE --expect another version exits 3" -- "$CTL" put ik v2 --expect $((iv + 1000))
    expect 3 "del KEY --expect another version exits 3" -- "$CTL" del ik --expect $((iv + 1000))
    expect 0 "list" -- "$CTL" list
    if grep -qx ik "$tmp/out"; then ok "list shows the key"; else bad "list: $(cat "$tmp/out")"; fi
    expect 0 "del KEY --expect its version" -- "$CTL" del ik --expect "$iv"
    if await_line 5 "-" && [ "$line" = "0 -" ]; then ok "watch KEY prints the delete"; else bad "watch KEY after del: '$line'"; fi
    reap "$w2"
    if [ "$st" = 0 ]; then ok "watch KEY --count 3 ends by itself, exit 0"; else bad "watch KEY exit $st: $(cat "$tmp/w2.err")"; fi
    exec 5>&-
    rm -f "$tmp/w2"
    expect 4 "del KEY of an absent key exits 4" -- "$CTL" del ik
    expect 0 "queue NAME put" -- "$CTL" queue IQ put first
    expect 0 "queue NAME put from stdin" -- sh -c 'printf second | "$0" queue IQ put -' "$CTL"
    expect 0 "queue NAME size" -- "$CTL" queue IQ size
    out_is 2 "two items"
    expect 0 "queue NAME take" -- "$CTL" queue IQ take --timeout 5000
    out_is first "the oldest first"
    expect 0 "queue NAME claim" -- "$CTL" queue IQ claim --timeout 5000 -- cat
    out_is second "claim hands the item to CMD"
    expect 0 "queue NAME size after the ack" -- "$CTL" queue IQ size
    out_is 0 "nothing left"
    expect 0 "queue put NAME still works" -- "$CTL" queue put IQ third
    expect 0 "queue NAME take" -- "$CTL" queue IQ take --timeout 0
    out_is third "the older order put it in NAME"
    expect 0 "a queue named like an operation: queue take size" -- "$CTL" queue take size
    out_is 0 "queue NAME OP when both are operations"

    # ---- txn
    expect 0 "put tk1 for the txn" -- "$CTL" put tk1 old
    local tv
    tv=$(cat "$tmp/out")
    expect 0 "txn check put put del" -- "$CTL" txn check tk1 "$tv" check tk2 0 put tk1 new put tk2 '' del a/b/c
    if [ "$(wc -l <"$tmp/out")" = 2 ] && [ "$(sed -n 1p "$tmp/out")" -gt "$tv" ] && [ "$(sed -n 2p "$tmp/out")" -gt 0 ]; then
        ok "txn prints the version of each put"
    else
        bad "txn output: $(cat "$tmp/out")"
    fi
    local tv1
    tv1=$(sed -n 1p "$tmp/out")
    expect 0 "get tk1 after the txn" -- "$CTL" get tk1 --version
    out_is new "the txn's put applied"
    if [ "$(cat "$tmp/err")" = "$tv1" ]; then ok "at the version txn printed"; else bad "version $(cat "$tmp/err"), txn printed $tv1"; fi
    expect 0 "get tk2 after the txn" -- "$CTL" get tk2
    out_is "" "the txn's empty put applied"
    expect 4 "the txn's del applied" -- "$CTL" get a/b/c
    expect 3 "txn with a failed check exits 3" -- "$CTL" txn check tk1 "$tv" put tk1 refused del tk2 put tk3 x
    if [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ]; then ok "it says why on stderr, prints nothing"; else bad "refused txn: out '$(cat "$tmp/out")' err '$(cat "$tmp/err")'"; fi
    expect 0 "get tk1 after the refused txn" -- "$CTL" get tk1
    out_is new "nothing of it applied (put)"
    expect 0 "get tk2 after the refused txn" -- "$CTL" get tk2
    expect 4 "nothing of it applied (put of a new key)" -- "$CTL" get tk3
    expect 3 "txn deleting an absent key exits 3" -- "$CTL" txn put tk1 no del absent
    expect 0 "txn --lock" -- sh -c 'printf "from stdin" | "$0" txn put tk1 - check tk1 "$1" --lock TL --timeout 5000' "$CTL" "$tv1"
    local tv2
    tv2=$(cat "$tmp/out")
    expect 0 "get tk1 after the guarded txn" -- "$CTL" get tk1 --version
    out_is "from stdin" "the guarded txn applied, its value from stdin"
    if [ "$(cat "$tmp/err")" = "$tv2" ]; then ok "at the version it printed"; else bad "version $(cat "$tmp/err"), txn printed $tv2"; fi
    expect 0 "--json txn" -- "$CTL" --json txn put tk4 j
    json_check "len(d['versions']) == 1 and d['versions'][0] > 0" "the JSON versions"
    "$CTL" lock TL -- sleep 30 2>/dev/null &
    local l1=$!
    pids+=("$l1")
    await_blocked "$l1" || bad "the lock holder did not start"
    sleep 0.5
    expect 75 "txn --lock on a held lock exits 75 within --timeout" -- "$CTL" txn put tk1 blocked --lock TL --timeout 300
    expect 0 "get tk1" -- "$CTL" get tk1
    out_is "from stdin" "and applies nothing"
    kill -TERM "$l1"
    reap "$l1"
    expect 2 "txn without operations" -- "$CTL" txn --lock TL
    expect 2 "txn with a missing operand" -- "$CTL" txn put tk1
    expect 2 "txn with two puts from stdin" -- sh -c 'echo x | "$0" txn put tk1 - put tk2 -' "$CTL"
    expect 2 "txn putting one key twice" -- "$CTL" txn put tk1 a put tk1 b
}

# delete_election URI NAME: delete every candidate entry of election NAME behind coord's back
delete_election() {
    local path=/${1#*://*/}/election/$2
    case $1 in
    etcd://*) etcdctl --endpoints="$COORD_TEST_ETCD" del --prefix "$path/" >/dev/null ;;
    zk://*)
        local zkcli=/usr/share/zookeeper/bin/zkCli.sh children c
        children=$(timeout 20 "$zkcli" -server "$COORD_TEST_ZK" ls "$path" 2>/dev/null | grep '^\[' | tail -1 | tr -d '[],')
        for c in $children; do timeout 20 "$zkcli" -server "$COORD_TEST_ZK" delete "$path/$c" >/dev/null 2>&1; done
        ;;
    esac
}

prefix=coordctl-$$-$RANDOM
run_backend "zk://$COORD_TEST_ZK/$prefix"
run_backend "etcd://$COORD_TEST_ETCD/$prefix"

echo "== errors and usage"
unset COORD_URI
expect 2 "no URI" -- "$CTL" counter get c
expect 2 "bad URI" -- "$CTL" --uri 'bogus://x/p' counter get c
if [ "$(wc -l <"$tmp/err")" = 1 ]; then ok "one line on stderr"; else bad "stderr: $(cat "$tmp/err")"; fi
expect 1 "unreachable cluster" -- "$CTL" --uri 'etcd://127.0.0.1:1/p?connect_timeout_ms=300&timeout_ms=500' counter get c
if [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q 127.0.0.1 "$tmp/err"; then ok "one clear line with the detail"; else bad "stderr: $(cat "$tmp/err")"; fi
expect 1 "unreachable ZooKeeper" -- "$CTL" --uri 'zk://127.0.0.1:1/p?connect_timeout_ms=300&timeout_ms=500' counter get c
expect 2 "bad name" -- "$CTL" --uri "zk://$COORD_TEST_ZK/p" counter get 'a/b'
expect 2 "unknown command" -- "$CTL" --uri "zk://$COORD_TEST_ZK/p" frobnicate
expect 2 "unknown kv command" -- "$CTL" --uri "zk://$COORD_TEST_ZK/p" kv frob k
expect 2 "unknown queue command" -- "$CTL" --uri "zk://$COORD_TEST_ZK/p" queue frob Q
expect 0 "--help" -- "$CTL" --help
expect 0 "--version" -- "$CTL" --version

echo "coordctl: $fails failure(s)"
[ "$fails" = 0 ]

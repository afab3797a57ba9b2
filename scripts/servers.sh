#!/usr/bin/env bash
# servers.sh - start/stop real ZooKeeper and etcd servers on 127.0.0.1 for tests.
#
# Usage:
#   servers.sh start LAYOUTS                  start, wait until healthy, print `export ...` lines
#   servers.sh stop [LAYOUTS]                 stop those layouts (default: all), remove state
#   servers.sh run LAYOUTS -- CMD [ARG...]    start, run CMD with the env exported, always stop
#                                             afterwards (trap EXIT INT TERM); exit with CMD's status
#   servers.sh up LAYOUTS                     (ctest fixture setup) start each layout unless the
#                                             environment already names its servers (COORD_TEST_*,
#                                             set by an outer `run`) or it runs already
#   servers.sh down LAYOUTS                   (ctest fixture cleanup) stop what `up` started
#   servers.sh exec -- CMD [ARG...]           run CMD with the env of the running layouts added
#                                             (variables already set are kept)
#   servers.sh kill    zk|etcd N [LAYOUT]     SIGKILL a member (waits until it is gone)
#   servers.sh restart zk|etcd N [LAYOUT]     start a member again (same data dir), wait until healthy
#                                             (a member that still runs is SIGKILLed first)
#   servers.sh pause   zk|etcd N [LAYOUT]     SIGSTOP a member
#   servers.sh resume  zk|etcd N [LAYOUT]     SIGCONT a member
#   servers.sh pid     zk|etcd N [LAYOUT]     print the member's pid (exit 1 if not running)
#   servers.sh leader  zk|etcd [LAYOUT]       print the number N of the member that leads now
#                                             (waits until the running members agree on one)
#   servers.sh heal    zk|etcd [LAYOUT]       resume stopped members, restart dead ones
#   servers.sh status                         print what runs
#   servers.sh env                            print the `export ...` lines again
#
# LAYOUTS: single | cluster | both (= single,cluster) | auth | tls | all, or a comma-separated
# list of them (e.g. single,auth,tls).
#   single:  one ZooKeeper and one etcd
#   cluster: three ZooKeeper members and three etcd members
#   auth:    one etcd with authentication on (simple tokens living 2 s) and the users and roles
#            of tests/conformance/test_auth.c: root, alice, bob, carol
#   tls:     one etcd serving HTTPS that requires a client certificate; the CA, server and client
#            certificates (and another CA) are made by openssl in the state dir
# Member selection (kill/restart/pause/resume/pid): N is 1..3 (1 for the one-member layouts).
# LAYOUT is one layout; when omitted, $COORD_SERVERS_LAYOUT is used, else `cluster` if the
# cluster layout runs, else `single`.  Instead of N a client port or host:port may be given
# (e.g. `pause zk 21810` or `pause etcd 127.0.0.1:23802`), which is unambiguous when several
# layouts run.
# `start`/`run` exit 1 with a message (and the failing server's log tail) if servers
# cannot start; a layout of ours that already runs is stopped and started afresh.
#
# Ports (all on 127.0.0.1): the defaults are in scripts/ports.env (also read by deps.sh and
# docker-compose.yml); each is overridable by the env var shown, read when the state dir is
# created and remembered in it:
#   single:  ZooKeeper client 21810                  COORD_SERVERS_ZK_PORT
#            etcd client 23790, peer 23791           COORD_SERVERS_ETCD_PORT, COORD_SERVERS_ETCD_PEER_PORT
#   auth:    etcd client 23796, peer 23797           COORD_SERVERS_ETCD_AUTH_PORT, ..._AUTH_PEER_PORT
#   tls:     etcd client 23798, peer 23799           COORD_SERVERS_ETCD_TLS_PORT, ..._TLS_PEER_PORT
#            (auth and tls follow COORD_SERVERS_ETCD_PORT at the same offsets when only it is set)
#   cluster: ZooKeeper clients 21811,21812,21813     COORD_SERVERS_ZK_CLUSTER_PORTS
#            ZooKeeper quorum 28881,28882,28883      COORD_SERVERS_ZK_QUORUM_PORTS
#            ZooKeeper election 29881,29882,29883    COORD_SERVERS_ZK_ELECTION_PORTS
#            etcd clients 23801,23802,23803          COORD_SERVERS_ETCD_CLUSTER_PORTS
#            etcd peers 23811,23812,23813            COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS
#
# Exported env (printed by `start`/`env`, set for `run`'s and `exec`'s CMD; only for running
# layouts):
#   single:  COORD_TEST_ZK=127.0.0.1:21810   COORD_TEST_ETCD=127.0.0.1:23790
#   cluster: COORD_TEST_ZK_CLUSTER=127.0.0.1:21811,127.0.0.1:21812,127.0.0.1:21813
#            COORD_TEST_ETCD_CLUSTER=127.0.0.1:23801,127.0.0.1:23802,127.0.0.1:23803
#   auth:    COORD_TEST_ETCD_AUTH=127.0.0.1:23796
#            COORD_TEST_ETCD_AUTH_RESTART=<a shell command that restarts that etcd>
#   tls:     COORD_TEST_ETCD_TLS=127.0.0.1:23798
#            COORD_TEST_TLS_DIR=<dir with ca.pem, client.pem, client.key, other.pem>
#   always:  COORD_SERVERS_DIR=<state dir>   COORD_SERVERS=<absolute path of this script>
#
# State: one state dir (mktemp -d ${TMPDIR:-/tmp}/coord-servers.XXXXXX) shared by all
# layouts, containing <layout>/<zk|etcd><N>/ with pid, config, data/ and logs
# (zk.log / etcd.log = server log, out.log = stdout+stderr), plus ports.env and env.
# The running state is found again via $COORD_SERVERS_DIR if it is set and valid,
# else via the pointer file ${COORD_SERVERS_POINTER:-/tmp/coord-servers.current}, which
# holds the state dir's path.  Mutating commands serialise on "<pointer>.lock" (flock).
#
# Other knobs: COORD_SERVERS_TIMEOUT (health wait per server kind, default 30 s),
# COORD_SERVERS_ZK_HEAP (JVM -Xmx, default 256m), COORD_SERVERS_KEEP=1 (do not delete
# the state dir / logs on stop), JAVA, ETCD, ETCDCTL (binaries), ZK_CLASSPATH.
#
# Every wait is bounded; servers run in their own sessions (setsid), with stdin from
# /dev/null and output in the state dir, so they never hold the caller's terminal/pipes.
# The work is in scripts/lib/: proc.sh (processes, waits), ports.sh (layouts, ports),
# zk.sh and etcd.sh (the servers), state.sh (the state dir, layouts in it, their env).
set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
PROG=${SELF##*/}
LIB=${SELF%/*}/lib
# shellcheck source=lib/proc.sh
. "$LIB/proc.sh"
# shellcheck source=lib/ports.sh
. "$LIB/ports.sh"
# shellcheck source=lib/zk.sh
. "$LIB/zk.sh"
# shellcheck source=lib/etcd.sh
. "$LIB/etcd.sh"
# shellcheck source=lib/state.sh
. "$LIB/state.sh"

POINTER=${COORD_SERVERS_POINTER:-/tmp/coord-servers.current}
TIMEOUT=${COORD_SERVERS_TIMEOUT:-30}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "COORD_SERVERS_TIMEOUT must be a whole number of seconds"
MARKER=.coord-servers
STATE=""

usage() {
    sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$SELF" >&2
    exit 2
}
lock() { lock_take "$POINTER.lock"; }
unlock() { lock_drop; }

# ---------------------------------------------------------------- commands
START_LAYOUTS=""
start_abort() { # INT/TERM while starting: do not leave half-started servers behind
    trap '' INT TERM
    local l
    log "interrupted, stopping what was started"
    find_state
    for l in $START_LAYOUTS; do stop_layout "$l"; done
    remove_state_if_empty
    exit "$1"
}

cmd_start() {
    local layouts l
    layouts=$(layouts_arg "${1:-}")
    START_LAYOUTS=$layouts
    trap 'start_abort 130' INT
    trap 'start_abort 143' TERM
    lock
    create_state
    for l in $layouts; do start_layout "$l"; done
    write_env_file
    unlock
    trap - INT TERM
    print_env
}

cmd_stop() {
    local layouts l
    if [[ -n ${1:-} ]]; then layouts=$(layouts_arg "$1"); else layouts=$LAYOUTS; fi
    lock
    find_state
    if [[ -z $STATE ]]; then
        log "nothing running"
        unlock
        return 0
    fi
    for l in $layouts; do stop_layout "$l"; done
    if [[ -d $STATE ]]; then write_env_file; fi
    remove_state_if_empty
    unlock
}

# A ctest fixture's setup: what an outer `run` provides (its COORD_TEST_* are in the
# environment) or what already runs healthy is used as is; the rest is started and marked
# (<layout>/.up), so that `down` stops only that.
cmd_up() {
    local layouts l todo=""
    layouts=$(layouts_arg "${1:-}")
    for l in $layouts; do
        if given_by_env "$l"; then
            log "the $l layout is given by the environment ($(layout_vars "$l")): nothing to start"
        else
            todo+="$l "
        fi
    done
    [[ -n $todo ]] || return 0
    START_LAYOUTS=""
    trap 'start_abort 130' INT
    trap 'start_abort 143' TERM
    lock
    create_state
    for l in $todo; do
        if layout_present "$l" && layout_ready "$l"; then
            log "the $l layout already runs (state $STATE): used as is"
            continue
        fi
        START_LAYOUTS+="$l "
        start_layout "$l"
        : >"$STATE/$l/.up"
    done
    write_env_file
    unlock
    trap - INT TERM
}

cmd_down() {
    local layouts l
    layouts=$(layouts_arg "${1:-}")
    lock
    find_state
    for l in $layouts; do
        if given_by_env "$l"; then
            log "the $l layout is given by the environment: left alone"
        elif layout_present "$l" && [[ -f $STATE/$l/.up ]]; then
            stop_layout "$l"
        elif layout_present "$l"; then
            log "the $l layout was not started by 'up': left running"
        fi
    done
    if [[ -n $STATE && -d $STATE ]]; then
        write_env_file
        remove_state_if_empty
    fi
    unlock
}

cmd_exec() {
    [[ ${1:-} == -- ]] && shift
    [[ $# -ge 1 ]] || die "exec: missing command (usage: exec -- CMD [ARG...])"
    find_state
    [[ -z $STATE ]] || export_env keep
    exec "$@"
}

cmd_kill() {
    find_state
    select_member "$@"
    local d
    d=$(mdir "$SEL_LAYOUT" "$SEL_KIND" "$SEL_N")
    alive "$d" || {
        log "$SEL_LAYOUT $SEL_KIND$SEL_N is not running"
        return 0
    }
    signal_member "$d" KILL
    signal_member "$d" CONT
    wait_dead 5 "$d" || die "$SEL_LAYOUT $SEL_KIND$SEL_N (pid $(member_pid "$d")) did not die"
    log "killed $SEL_LAYOUT $SEL_KIND$SEL_N"
}

cmd_restart() {
    lock
    find_state
    select_member "$@"
    local d t0
    t0=$(now_us)
    d=$(mdir "$SEL_LAYOUT" "$SEL_KIND" "$SEL_N")
    if alive "$d"; then
        log "$SEL_LAYOUT $SEL_KIND$SEL_N is still running: killing it first"
        signal_member "$d" KILL
        signal_member "$d" CONT
        wait_dead 5 "$d" || die "$SEL_LAYOUT $SEL_KIND$SEL_N did not die"
    fi
    if [[ $SEL_KIND == zk ]]; then
        zk_launch "$SEL_LAYOUT" "$SEL_N"
        wait_zk "$SEL_LAYOUT" "$SEL_N" || die "restart of $SEL_LAYOUT zk$SEL_N failed"
    else
        if (($(members_of "$SEL_LAYOUT") > 1)); then
            etcd_launch "$SEL_LAYOUT" "$SEL_N" existing
        else
            etcd_launch "$SEL_LAYOUT" "$SEL_N" new
        fi
        wait_etcd "$SEL_LAYOUT" "$SEL_N" || die "restart of $SEL_LAYOUT etcd$SEL_N failed"
    fi
    unlock
    log "restarted $SEL_LAYOUT $SEL_KIND$SEL_N (healthy after $(since "$t0"))"
}

cmd_signal() { # SIG verb args...
    local sig=$1 verb=$2 d
    shift 2
    find_state
    select_member "$@"
    d=$(mdir "$SEL_LAYOUT" "$SEL_KIND" "$SEL_N")
    alive "$d" || die "$SEL_LAYOUT $SEL_KIND$SEL_N is not running"
    signal_member "$d" "$sig"
    log "$verb $SEL_LAYOUT $SEL_KIND$SEL_N (pid $(member_pid "$d"))"
}

cmd_pid() {
    find_state
    select_member "$@"
    local d
    d=$(mdir "$SEL_LAYOUT" "$SEL_KIND" "$SEL_N")
    alive "$d" || die "$SEL_LAYOUT $SEL_KIND$SEL_N is not running"
    member_pid "$d"
    echo
}

# one_leader LAYOUT KIND (a wait_until check): exactly one running member claims to lead
# (ZooKeeper `srvr` mode, etcd's raft leader); its number in LEADER
LEADER=""
one_leader() {
    local layout=$1 kind=$2 n count=0
    LEADER=""
    for n in $(layout_members "$layout"); do
        [[ $(proc_state "$(mdir "$layout" "$kind" "$n")") == running ]] || continue
        if "${kind}_is_leader" "$layout" "$n"; then
            LEADER=$n
            count=$((count + 1))
        fi
    done
    WAIT_WHY="$count claim it"
    [[ $count == 1 ]]
}

# The running member that leads, once exactly one running member claims it; an election in
# progress is waited out (bounded by TIMEOUT).
cmd_leader() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local layout
    find_state
    layout=$(layout_for "$@")
    wait_until "$TIMEOUT" one_leader "$layout" "$1" ||
        die "no single $layout $1 leader after ${TIMEOUT}s ($WAIT_WHY)"
    printf '%s\n' "$LEADER"
}

# Undo what an interrupted fault test left behind: every member of the kind runs again.
cmd_heal() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local kind=$1 layout n d
    find_state
    layout=$(layout_for "$@")
    for n in $(layout_members "$layout"); do
        d=$(mdir "$layout" "$kind" "$n")
        case $(proc_state "$d") in
            paused)
                signal_member "$d" CONT
                log "resumed $layout $kind$n (pid $(member_pid "$d"))"
                ;;
            dead) cmd_restart "$kind" "$n" "$layout" ;;
        esac
    done
}

cmd_status() {
    find_state
    if [[ -z $STATE ]]; then
        echo "no servers running"
        return 0
    fi
    echo "state dir: $STATE"
    local l kind n d st port extra
    for l in $LAYOUTS; do
        layout_present "$l" || continue
        for kind in $(kinds_of "$l"); do
            for n in $(layout_members "$l"); do
                d=$(mdir "$l" "$kind" "$n")
                st=$(proc_state "$d")
                port=$(client_port "$l" "$kind" "$n")
                extra=""
                if [[ $st == running ]]; then
                    if [[ $kind == zk ]]; then
                        extra="mode=$(zk_mode "$port")"
                    elif etcd_healthy "$l" "$n"; then
                        extra="health=true"
                    else
                        extra="health=false"
                    fi
                fi
                printf '%-8s %-6s 127.0.0.1:%-6s pid=%-8s %-8s %s\n' "$l" "$kind$n" "$port" \
                    "$(member_pid "$d")" "$st" "$extra"
            done
        done
    done
}

cmd_env() {
    find_state
    [[ -n $STATE ]] || die "no servers running"
    print_env
}

RUN_LAYOUTS="" RUN_CMD_PID="" RUN_CLEANED=0
cmd_done() { ! pid_live "$1"; }

run_cleanup() {
    [[ $RUN_CLEANED == 1 ]] && return 0
    RUN_CLEANED=1
    trap '' INT TERM
    local l
    if [[ -n $RUN_CMD_PID ]] && pid_live "$RUN_CMD_PID"; then
        wait_until -i 0.1 10 cmd_done "$RUN_CMD_PID" || true
        kill -KILL "$RUN_CMD_PID" 2>/dev/null || true
    fi
    unlock
    lock
    find_state
    if [[ -n $STATE ]]; then
        for l in $RUN_LAYOUTS; do stop_layout "$l"; done
        [[ -d $STATE ]] && write_env_file
        remove_state_if_empty
    fi
    unlock
}

run_signal() { # SIG exitcode
    trap '' INT TERM
    if [[ -n $RUN_CMD_PID ]]; then kill -s "$1" "$RUN_CMD_PID" 2>/dev/null || true; fi
    exit "$2"
}

cmd_run() {
    [[ $# -ge 1 ]] || usage
    local layouts l rc
    layouts=$(layouts_arg "$1")
    shift
    [[ ${1:-} == -- ]] && shift
    [[ $# -ge 1 ]] || die "run: missing command (usage: run LAYOUTS -- CMD [ARG...])"
    RUN_LAYOUTS=$layouts
    trap run_cleanup EXIT
    trap 'run_signal INT 130' INT
    trap 'run_signal TERM 143' TERM
    lock
    create_state
    for l in $layouts; do start_layout "$l"; done
    write_env_file
    for l in $LAYOUTS; do
        # shellcheck disable=SC2046
        unset $(layout_vars "$l")
    done
    export_env
    unlock
    # CMD runs as a background job so that INT/TERM sent to us are handled at once
    (
        trap - INT QUIT TERM
        exec "$@"
    ) <&0 &
    RUN_CMD_PID=$!
    set +e
    wait "$RUN_CMD_PID"
    rc=$?
    set -e
    RUN_CMD_PID=""
    exit "$rc"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1
    shift
    case $cmd in
        start)
            [[ $# -eq 1 ]] || usage
            cmd_start "$@"
            ;;
        stop)
            [[ $# -le 1 ]] || usage
            cmd_stop "$@"
            ;;
        up | down)
            [[ $# -eq 1 ]] || usage
            "cmd_$cmd" "$@"
            ;;
        exec) cmd_exec "$@" ;;
        kill) cmd_kill "$@" ;;
        restart) cmd_restart "$@" ;;
        pause) cmd_signal STOP paused "$@" ;;
        resume) cmd_signal CONT resumed "$@" ;;
        pid) cmd_pid "$@" ;;
        leader) cmd_leader "$@" ;;
        heal) cmd_heal "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        run) cmd_run "$@" ;;
        -h | --help | help) usage ;;
        *)
            log "unknown command '$cmd'"
            usage
            ;;
    esac
}

main "$@"

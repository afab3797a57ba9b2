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
# zk.sh and etcd.sh (the servers).
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

# ---------------------------------------------------------------- state dir
valid_state() { [[ -n ${1:-} && -d $1 && -f $1/$MARKER ]]; }

find_state() {
    STATE=""
    if valid_state "${COORD_SERVERS_DIR:-}"; then
        STATE=$(readlink -f -- "$COORD_SERVERS_DIR")
    elif [[ -f $POINTER ]]; then
        local p
        p=$(head -n 1 -- "$POINTER" 2>/dev/null || true)
        if valid_state "$p"; then STATE=$p; fi
    fi
    load_ports "${STATE:+$STATE/ports.env}"
}

create_state() {
    find_state
    [[ -n $STATE ]] && return 0
    STATE=$(mktemp -d "${TMPDIR:-/tmp}/coord-servers.XXXXXX")
    chmod 755 "$STATE"
    : >"$STATE/$MARKER"
    load_ports
    save_ports "$STATE/ports.env"
    printf '%s\n' "$STATE" >"$POINTER.tmp.$$"
    mv -f -- "$POINTER.tmp.$$" "$POINTER"
}

layout_present() { [[ -n $STATE && -d $STATE/$1 ]]; }

remove_state_if_empty() {
    valid_state "$STATE" || return 0
    local l
    for l in $LAYOUTS; do layout_present "$l" && return 0; done
    if [[ ${COORD_SERVERS_KEEP:-0} == 1 ]]; then
        log "keeping $STATE (COORD_SERVERS_KEEP=1)"
    else
        rm -rf -- "$STATE"
    fi
    if [[ -f $POINTER && "$(head -n 1 -- "$POINTER" 2>/dev/null || true)" == "$STATE" ]]; then
        rm -f -- "$POINTER"
    fi
}

mdir() { printf '%s/%s/%s%s' "$STATE" "$1" "$2" "$3"; } # layout kind n -> member dir

layout_members() { # layout -> "1" or "1 2 3"
    seq 1 "$(members_of "$1")" | paste -sd' ' -
}

layout_member_dirs() { # layout -> the member dirs present, one a line
    local d
    for d in "$STATE/$1"/zk[0-9]* "$STATE/$1"/etcd[0-9]*; do
        [[ -d $d ]] && printf '%s\n' "$d"
    done
    return 0
}

# ---------------------------------------------------------------- layouts
layout_ready() { # layout : every member runs and is healthy now (one look, no wait)
    local layout=$1 kind
    # shellcheck disable=SC2046
    for kind in $(kinds_of "$layout"); do
        "${kind}_ready" "$layout" $(layout_members "$layout") || return 1
    done
}

stop_layout() { # layout  (quiet if not present)
    local layout=$1 d
    local -a dirs=()
    layout_present "$layout" || return 0
    mapfile -t dirs < <(layout_member_dirs "$layout")
    if ((${#dirs[@]})); then
        for d in "${dirs[@]}"; do signal_member "$d" CONT; done
        for d in "${dirs[@]}"; do
            if [[ ${d##*/} == zk* ]]; then signal_member "$d" TERM; fi
        done
        etcd_stop_leader_first "$layout"
        for d in "${dirs[@]}"; do signal_member "$d" TERM; done
        if ! wait_dead 5 "${dirs[@]}"; then
            for d in "${dirs[@]}"; do signal_member "$d" KILL; done
            wait_dead 5 "${dirs[@]}" || log "warning: some $layout processes did not die"
        fi
    fi
    if [[ ${COORD_SERVERS_KEEP:-0} == 1 ]]; then
        mv -- "$STATE/$layout" "$STATE/$layout.stopped.$(date +%s)"
    else
        rm -rf -- "${STATE:?}/$layout"
    fi
    log "stopped $layout layout"
}

start_layout() { # layout ; caller holds the lock and has created the state dir
    local layout=$1 n members kinds t0
    t0=$(now_us)
    if layout_present "$layout"; then
        log "stopping earlier $layout layout in $STATE"
        stop_layout "$layout"
    fi
    if ! check_ports_free "$layout" "$SELF"; then
        remove_state_if_empty
        exit 1
    fi
    members=$(layout_members "$layout")
    kinds=" $(kinds_of "$layout") "
    mkdir -p -- "$STATE/$layout"
    if [[ $layout == tls ]] && ! etcd_make_certs "$(tls_dir)"; then
        stop_layout "$layout"
        remove_state_if_empty
        die "could not make the certificates of the tls layout"
    fi
    if [[ $kinds == *" zk "* ]]; then
        for n in $members; do
            zk_write_config "$layout" "$n"
            zk_launch "$layout" "$n"
        done
    fi
    for n in $members; do etcd_launch "$layout" "$n" new; done
    # shellcheck disable=SC2086
    if { [[ $kinds == *" zk "* ]] && ! wait_zk "$layout" $members; } ||
        ! wait_etcd "$layout" $members ||
        { [[ $layout == auth ]] && ! etcd_auth_setup "$layout"; }; then
        stop_layout "$layout"
        remove_state_if_empty
        die "could not start the $layout layout"
    fi
    log "$layout layout healthy after $(since "$t0") (state $STATE)"
}

layouts_arg() { # LAYOUTS argument -> list of layouts, in start order, each once
    local -a words
    local w out=" "
    [[ -n ${1:-} ]] || die "expected a layout (single, cluster, both, auth, tls, all), got nothing"
    IFS=, read -r -a words <<<"$1"
    for w in "${words[@]}"; do
        case $w in
            single | cluster | auth | tls) out+="$w " ;;
            both) out+="single cluster " ;;
            all) out+="$LAYOUTS " ;;
            *) die "expected single, cluster, both, auth, tls or all, got '$w'" ;;
        esac
    done
    for w in $LAYOUTS; do [[ $out == *" $w "* ]] && printf '%s ' "$w"; done
    echo
}

# ---------------------------------------------------------------- the environment
layout_vars() { # layout -> the COORD_TEST_* variables it exports
    case $1 in
        single) echo COORD_TEST_ZK COORD_TEST_ETCD ;;
        cluster) echo COORD_TEST_ZK_CLUSTER COORD_TEST_ETCD_CLUSTER ;;
        auth) echo COORD_TEST_ETCD_AUTH COORD_TEST_ETCD_AUTH_RESTART ;;
        tls) echo COORD_TEST_ETCD_TLS COORD_TEST_TLS_DIR ;;
    esac
}

given_by_env() { # layout : one of its COORD_TEST_* variables is set (an outer run set them)
    local v
    for v in $(layout_vars "$1"); do [[ -n ${!v:-} ]] && return 0; done
    return 1
}

# env_collect: ENV_NAMES / ENV_VALUES = the environment of the state dir's running layouts
ENV_NAMES=() ENV_VALUES=()
env_add() {
    ENV_NAMES+=("$1")
    ENV_VALUES+=("$2")
}
env_collect() {
    local n zc="" ec="" restart
    ENV_NAMES=() ENV_VALUES=()
    env_add COORD_SERVERS_DIR "$STATE"
    env_add COORD_SERVERS "$SELF"
    if layout_present single; then
        env_add COORD_TEST_ZK "127.0.0.1:$P_ZK_SINGLE"
        env_add COORD_TEST_ETCD "127.0.0.1:$P_ETCD_SINGLE"
    fi
    if layout_present cluster; then
        for n in 1 2 3; do
            zc="${zc:+$zc,}127.0.0.1:$(nth "$P_ZK_CLUSTER" "$n")"
            ec="${ec:+$ec,}127.0.0.1:$(nth "$P_ETCD_CLUSTER" "$n")"
        done
        env_add COORD_TEST_ZK_CLUSTER "$zc"
        env_add COORD_TEST_ETCD_CLUSTER "$ec"
    fi
    if layout_present auth; then
        env_add COORD_TEST_ETCD_AUTH "127.0.0.1:$P_ETCD_AUTH"
        printf -v restart 'COORD_SERVERS_DIR=%q bash %q restart etcd 1 auth' "$STATE" "$SELF"
        env_add COORD_TEST_ETCD_AUTH_RESTART "$restart"
    fi
    if layout_present tls; then
        env_add COORD_TEST_ETCD_TLS "127.0.0.1:$P_ETCD_TLS"
        env_add COORD_TEST_TLS_DIR "$(tls_dir)"
    fi
}

export_line() { # NAME VALUE -> export NAME=VALUE (plain if safe, else shell-quoted)
    if [[ $2 =~ ^[A-Za-z0-9_./:,@%+=-]+$ ]]; then
        printf 'export %s=%s\n' "$1" "$2"
    else
        printf 'export %s=%q\n' "$1" "$2"
    fi
}

print_env() {
    local i
    env_collect
    for i in "${!ENV_NAMES[@]}"; do export_line "${ENV_NAMES[$i]}" "${ENV_VALUES[$i]}"; done
}

export_env() { # [keep] : export the running layouts' env (with keep: only variables not set)
    local i
    env_collect
    for i in "${!ENV_NAMES[@]}"; do
        if [[ ${1:-} == keep && ${ENV_NAMES[$i]} != COORD_SERVERS_DIR && -n ${!ENV_NAMES[$i]:-} ]]; then
            continue
        fi
        export "${ENV_NAMES[$i]}=${ENV_VALUES[$i]}"
    done
}

write_env_file() { print_env >"$STATE/env"; }

# ---------------------------------------------------------------- member selection
# kind [layout] -> the layout to act on when none or only a default is named, or die
layout_for() {
    local kind=$1 layout=${2:-}
    [[ $kind == zk || $kind == etcd ]] || die "expected zk or etcd, got '$kind'"
    [[ -n $STATE ]] || die "no servers running (no state dir found via COORD_SERVERS_DIR or $POINTER)"
    if [[ -z $layout ]]; then
        layout=${COORD_SERVERS_LAYOUT:-}
        if [[ -z $layout ]]; then
            if layout_present cluster; then layout=cluster; else layout=single; fi
        fi
    fi
    [[ " $LAYOUTS " == *" $layout "* ]] || die "layout must be one of $LAYOUTS, got '$layout'"
    layout_present "$layout" || die "the $layout layout is not running"
    [[ " $(kinds_of "$layout") " == *" $kind "* ]] || die "the $layout layout has no $kind"
    printf '%s' "$layout"
}

SEL_LAYOUT="" SEL_KIND="" SEL_N=""
select_member() { # kind sel [layout]
    [[ $# -ge 2 ]] || usage
    local kind=$1 sel=$2 layout=${3:-} l n port
    [[ $kind == zk || $kind == etcd ]] || die "expected zk or etcd, got '$kind'"
    [[ -n $STATE ]] || die "no servers running (no state dir found via COORD_SERVERS_DIR or $POINTER)"
    if [[ $sel =~ ^[1-9]$ ]]; then
        layout=$(layout_for "$kind" "$layout")
        ((sel <= $(members_of "$layout"))) || die "$layout has no member $kind$sel"
        SEL_LAYOUT=$layout SEL_KIND=$kind SEL_N=$sel
        return 0
    fi
    port=${sel##*:}
    [[ $port =~ ^[0-9]+$ ]] || die "expected a member number 1..3 or a client port, got '$sel'"
    for l in $LAYOUTS; do
        [[ -z $layout || $layout == "$l" ]] || continue
        layout_present "$l" || continue
        [[ " $(kinds_of "$l") " == *" $kind "* ]] || continue
        for n in $(layout_members "$l"); do
            if [[ $(client_port "$l" "$kind" "$n") == "$port" ]]; then
                SEL_LAYOUT=$l SEL_KIND=$kind SEL_N=$n
                return 0
            fi
        done
    done
    die "no running $kind member with client port $port"
}

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

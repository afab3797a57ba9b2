#!/usr/bin/env bash
# servers.sh - start/stop real ZooKeeper and etcd servers on 127.0.0.1 for tests.
#
# Usage:
#   servers.sh start single|cluster|both      start, wait until healthy, print `export ...` lines
#   servers.sh stop [single|cluster|both]     stop that layout (default: everything), remove state
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
#   servers.sh run single|cluster|both -- CMD [ARG...]
#                                             start, run CMD with the env exported, always stop
#                                             afterwards (trap EXIT INT TERM); exit with CMD's status
#
# Member selection (kill/restart/pause/resume/pid): N is 1..3 (1 for the single layout).
# LAYOUT is `single` or `cluster`; when omitted, $COORD_SERVERS_LAYOUT is used, else
# `cluster` if the cluster layout runs, else `single`.  Instead of N a client port or
# host:port may be given (e.g. `pause zk 21810` or `pause etcd 127.0.0.1:23802`), which is
# unambiguous when both layouts run.
# `start`/`run` exit 1 with a message (and the failing server's log tail) if servers
# cannot start; a layout of ours that already runs is stopped and started afresh.
#
# Layouts and default ports (all on 127.0.0.1; each overridable via the env var shown,
# read when the state dir is created and remembered in it):
#   single:  ZooKeeper client 21810                  COORD_SERVERS_ZK_PORT
#            etcd client 23790, peer 23791           COORD_SERVERS_ETCD_PORT, COORD_SERVERS_ETCD_PEER_PORT
#   cluster: ZooKeeper clients 21811,21812,21813     COORD_SERVERS_ZK_CLUSTER_PORTS
#            ZooKeeper quorum 28881,28882,28883      COORD_SERVERS_ZK_QUORUM_PORTS
#            ZooKeeper election 29881,29882,29883    COORD_SERVERS_ZK_ELECTION_PORTS
#            etcd clients 23801,23802,23803          COORD_SERVERS_ETCD_CLUSTER_PORTS
#            etcd peers 23811,23812,23813            COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS
#
# Exported env (printed by `start`/`env`, set for `run`'s CMD; only for running layouts):
#   COORD_TEST_ZK=127.0.0.1:21810            COORD_TEST_ETCD=127.0.0.1:23790
#   COORD_TEST_ZK_CLUSTER=127.0.0.1:21811,127.0.0.1:21812,127.0.0.1:21813
#   COORD_TEST_ETCD_CLUSTER=127.0.0.1:23801,127.0.0.1:23802,127.0.0.1:23803
#   COORD_SERVERS_DIR=<state dir>            COORD_SERVERS=<absolute path of this script>
#
# State: one state dir (mktemp -d ${TMPDIR:-/tmp}/coord-servers.XXXXXX) shared by both
# layouts, containing <layout>/<zk|etcd><N>/ with pid, config, data/ and logs
# (zk.log / etcd.log = server log, out.log = stdout+stderr), plus ports.env and env.
# The running state is found again via $COORD_SERVERS_DIR if it is set and valid,
# else via the pointer file ${COORD_SERVERS_POINTER:-/tmp/coord-servers.current}, which
# holds the state dir's path.  Mutating commands serialise on "<pointer>.lock" (flock).
#
# Other knobs: COORD_SERVERS_TIMEOUT (health wait per server kind, default 30 s),
# COORD_SERVERS_ZK_HEAP (JVM -Xmx, default 256m), COORD_SERVERS_KEEP=1 (do not delete
# the state dir / logs on stop), JAVA, ETCD (binaries), ZK_CLASSPATH.
#
# Every wait is bounded; servers run in their own sessions (setsid), with stdin from
# /dev/null and output in the state dir, so they never hold the caller's terminal/pipes.
set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
PROG=${SELF##*/}
POINTER=${COORD_SERVERS_POINTER:-/tmp/coord-servers.current}
LOCKFILE="${POINTER}.lock"
TIMEOUT=${COORD_SERVERS_TIMEOUT:-30}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || { echo "COORD_SERVERS_TIMEOUT must be a whole number of seconds" >&2; exit 2; }
MARKER=.coord-servers
STATE=""
LOCKED=0

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
since() { # start_us -> "1.23s"
    local d=$(($(now_us) - $1))
    printf '%d.%02ds' $((d / 1000000)) $((d % 1000000 / 10000))
}
deadline() { printf '%s' $(($(now_us) + $1 * 1000000)); } # seconds -> deadline
expired() { (($(now_us) >= $1)); }
usage() { sed -n '2,29s/^# \{0,1\}//p' "$SELF" >&2; exit 2; }

# ---------------------------------------------------------------- locking
lock() {
    [[ $LOCKED == 1 ]] && return 0
    command -v flock >/dev/null 2>&1 || { LOCKED=1; return 0; }
    exec 9>>"$LOCKFILE"
    flock -w 120 9 || die "could not get lock $LOCKFILE within 120 s"
    LOCKED=1
}
unlock() {
    [[ $LOCKED == 1 ]] || return 0
    if command -v flock >/dev/null 2>&1; then
        flock -u 9 || true
        exec 9>&-
    fi
    LOCKED=0
}

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
    load_ports
}

create_state() {
    find_state
    [[ -n $STATE ]] && return 0
    STATE=$(mktemp -d "${TMPDIR:-/tmp}/coord-servers.XXXXXX")
    chmod 755 "$STATE"
    : >"$STATE/$MARKER"
    load_ports
    {
        printf 'P_ZK_SINGLE=%q\n' "$P_ZK_SINGLE"
        printf 'P_ETCD_SINGLE=%q\n' "$P_ETCD_SINGLE"
        printf 'P_ETCD_SINGLE_PEER=%q\n' "$P_ETCD_SINGLE_PEER"
        printf 'P_ZK_CLUSTER=%q\n' "$P_ZK_CLUSTER"
        printf 'P_ZK_QUORUM=%q\n' "$P_ZK_QUORUM"
        printf 'P_ZK_ELECTION=%q\n' "$P_ZK_ELECTION"
        printf 'P_ETCD_CLUSTER=%q\n' "$P_ETCD_CLUSTER"
        printf 'P_ETCD_CLUSTER_PEER=%q\n' "$P_ETCD_CLUSTER_PEER"
    } >"$STATE/ports.env"
    printf '%s\n' "$STATE" >"$POINTER.tmp.$$"
    mv -f -- "$POINTER.tmp.$$" "$POINTER"
}

remove_state_if_empty() {
    valid_state "$STATE" || return 0
    [[ -d $STATE/single || -d $STATE/cluster ]] && return 0
    if [[ ${COORD_SERVERS_KEEP:-0} == 1 ]]; then
        log "keeping $STATE (COORD_SERVERS_KEEP=1)"
    else
        rm -rf -- "$STATE"
    fi
    if [[ -f $POINTER && "$(head -n 1 -- "$POINTER" 2>/dev/null || true)" == "$STATE" ]]; then
        rm -f -- "$POINTER"
    fi
}

layout_present() { [[ -n $STATE && -d $STATE/$1 ]]; }

# ---------------------------------------------------------------- ports
check_port_list() { # name value
    [[ $2 =~ ^[0-9]+,[0-9]+,[0-9]+$ ]] || die "$1 must be three comma-separated ports, got '$2'"
}
check_port() {
    [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a port number, got '$2'"
}

load_ports() {
    P_ZK_SINGLE=${COORD_SERVERS_ZK_PORT:-21810}
    P_ETCD_SINGLE=${COORD_SERVERS_ETCD_PORT:-23790}
    P_ETCD_SINGLE_PEER=${COORD_SERVERS_ETCD_PEER_PORT:-23791}
    P_ZK_CLUSTER=${COORD_SERVERS_ZK_CLUSTER_PORTS:-21811,21812,21813}
    P_ZK_QUORUM=${COORD_SERVERS_ZK_QUORUM_PORTS:-28881,28882,28883}
    P_ZK_ELECTION=${COORD_SERVERS_ZK_ELECTION_PORTS:-29881,29882,29883}
    P_ETCD_CLUSTER=${COORD_SERVERS_ETCD_CLUSTER_PORTS:-23801,23802,23803}
    P_ETCD_CLUSTER_PEER=${COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS:-23811,23812,23813}
    if [[ -n $STATE && -f $STATE/ports.env ]]; then
        # shellcheck source=/dev/null
        . "$STATE/ports.env"
    fi
    check_port COORD_SERVERS_ZK_PORT "$P_ZK_SINGLE"
    check_port COORD_SERVERS_ETCD_PORT "$P_ETCD_SINGLE"
    check_port COORD_SERVERS_ETCD_PEER_PORT "$P_ETCD_SINGLE_PEER"
    check_port_list COORD_SERVERS_ZK_CLUSTER_PORTS "$P_ZK_CLUSTER"
    check_port_list COORD_SERVERS_ZK_QUORUM_PORTS "$P_ZK_QUORUM"
    check_port_list COORD_SERVERS_ZK_ELECTION_PORTS "$P_ZK_ELECTION"
    check_port_list COORD_SERVERS_ETCD_CLUSTER_PORTS "$P_ETCD_CLUSTER"
    check_port_list COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS "$P_ETCD_CLUSTER_PEER"
}

nth() { # "a,b,c" n -> nth element
    local IFS=, arr
    read -r -a arr <<<"$1"
    printf '%s' "${arr[$(($2 - 1))]}"
}

members_of() { case $1 in single) echo 1 ;; cluster) echo 3 ;; esac; }

client_port() { # layout kind n
    case $1/$2 in
        single/zk) printf '%s' "$P_ZK_SINGLE" ;;
        single/etcd) printf '%s' "$P_ETCD_SINGLE" ;;
        cluster/zk) nth "$P_ZK_CLUSTER" "$3" ;;
        cluster/etcd) nth "$P_ETCD_CLUSTER" "$3" ;;
    esac
}
peer_port() { # layout n  (etcd)
    case $1 in
        single) printf '%s' "$P_ETCD_SINGLE_PEER" ;;
        cluster) nth "$P_ETCD_CLUSTER_PEER" "$2" ;;
    esac
}

layout_ports() { # layout -> "port:description" lines
    local n
    if [[ $1 == single ]]; then
        printf '%s\n' "$P_ZK_SINGLE:zk1-client" "$P_ETCD_SINGLE:etcd1-client" "$P_ETCD_SINGLE_PEER:etcd1-peer"
    else
        for n in 1 2 3; do
            printf '%s\n' "$(nth "$P_ZK_CLUSTER" "$n"):zk$n-client" "$(nth "$P_ZK_QUORUM" "$n"):zk$n-quorum" \
                "$(nth "$P_ZK_ELECTION" "$n"):zk$n-election" "$(nth "$P_ETCD_CLUSTER" "$n"):etcd$n-client" \
                "$(nth "$P_ETCD_CLUSTER_PEER" "$n"):etcd$n-peer"
        done
    fi
}

port_listening() { # port ; uses /proc so it works without ss/netstat
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

port_holder() { # port -> description of the listening process, if ss can tell
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(\(.*\))$/\1/p' | head -n 1
}

check_ports_free() { # layout ; returns 1 (after explaining) if a port is taken
    local entry port what holder hp sd bad=0 stale=""
    while IFS= read -r entry; do
        port=${entry%%:*} what=${entry#*:}
        if port_listening "$port"; then
            holder=$(port_holder "$port")
            log "port 127.0.0.1:$port ($1 $what) is already in use${holder:+ by $holder}"
            if [[ $holder == *pid=* ]]; then
                hp=${holder#*pid=}
                hp=${hp%%,*}
                sd=$(tr '\0' '\n' <"/proc/$hp/cmdline" 2>/dev/null |
                    grep -o '/[^ ]*coord-servers\.[A-Za-z0-9]*' | head -n 1 || true)
                [[ -n $sd && " $stale " != *" $sd "* ]] && stale="${stale:+$stale }$sd"
            fi
            bad=1
        fi
    done < <(layout_ports "$1")
    [[ $bad == 0 ]] && return 0
    for sd in $stale; do
        log "the port holder looks like another coord-servers run ($sd);" \
            "stop it with: COORD_SERVERS_DIR=$sd $SELF stop"
    done
    log "cannot start the $1 layout: ports in use (ports can be changed with the COORD_SERVERS_*PORT* env vars)"
    return 1
}

# ---------------------------------------------------------------- processes
mdir() { printf '%s/%s/%s%s' "$STATE" "$1" "$2" "$3"; } # layout kind n

member_pid() { # dir -> pid or nothing
    local p=""
    [[ -f $1/pid ]] && p=$(head -n 1 -- "$1/pid" 2>/dev/null || true)
    [[ $p =~ ^[0-9]+$ ]] && printf '%s' "$p"
    return 0
}

# stat_fields PID -> fields 3.. of /proc/PID/stat (state ppid pgrp ... starttime=[19])
stat_fields() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    printf '%s' "${stat##*) }"
}

# proc_state DIR -> running | paused | dead   (dead also for zombies and reused pids;
# the process start time recorded at spawn identifies our process)
proc_state() {
    local pid fields want=""
    local -a f
    pid=$(member_pid "$1")
    [[ -n $pid ]] || { echo dead; return 0; }
    fields=$(stat_fields "$pid") || { echo dead; return 0; }
    read -r -a f <<<"$fields"
    case ${f[0]:-} in Z | X | x | '') echo dead; return 0 ;; esac
    [[ -f $1/starttime ]] && want=$(head -n 1 -- "$1/starttime" 2>/dev/null || true)
    if [[ -n $want ]]; then
        [[ ${f[19]:-} == "$want" ]] || { echo dead; return 0; }
    elif ! tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1"; then
        echo dead
        return 0
    fi
    case ${f[0]} in T | t) echo paused ;; *) echo running ;; esac
}

alive() { [[ $(proc_state "$1") != dead ]]; }

# signal the member's process group (it is a session leader) or just the pid
signal_member() { # dir SIG
    local pid pgid fields
    local -a f
    pid=$(member_pid "$1")
    [[ -n $pid ]] || return 0
    alive "$1" || return 0
    fields=$(stat_fields "$pid") || return 0
    read -r -a f <<<"$fields"
    pgid=${f[2]:-}
    if [[ $pgid == "$pid" ]]; then
        kill -s "$2" -- "-$pid" 2>/dev/null || true
    else
        kill -s "$2" -- "$pid" 2>/dev/null || true
    fi
}

wait_dead() { # seconds dir...
    local secs=$1 d all
    shift
    local end
    end=$(deadline "$secs")
    while :; do
        all=1
        for d in "$@"; do
            if alive "$d"; then all=0; break; fi
        done
        [[ $all == 1 ]] && return 0
        ! expired "$end" || return 1
        sleep 0.1
    done
}

# spawn DIR CMD... : run CMD in its own session, detached (double fork), pid in DIR/pid
spawn() {
    local dir=$1
    shift
    rm -f -- "$dir/pid" "$dir/starttime"
    (
        # shellcheck disable=SC2016 # expanded by the inner bash
        setsid bash -c '
            d=$1; shift
            for fd in /proc/$$/fd/*; do
                fd=${fd##*/}
                if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-"; fi
            done 2>/dev/null
            echo $$ >"$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"
            cd "$d" && exec "$@"' coord-servers-spawn "$dir" "$@" \
            </dev/null >>"$dir/out.log" 2>&1 9>&- &
    )
    local end
    end=$(deadline "10")
    until [[ -s $dir/pid ]]; do
        ! expired "$end" || die "could not start process in $dir (no pid file)"
        sleep 0.05
    done
    local fields
    local -a f
    if fields=$(stat_fields "$(member_pid "$dir")"); then
        read -r -a f <<<"$fields"
        printf '%s\n' "${f[19]:-}" >"$dir/starttime"
    fi
}

tail_logs() { # dir
    local f any=0
    for f in "$1"/zk.log "$1"/etcd.log "$1"/out.log; do
        [[ -s $f ]] || continue
        any=1
        printf '%s: ---- last lines of %s ----\n' "$PROG" "$f" >&2
        tail -n 25 -- "$f" >&2 || true
    done
    [[ $any == 1 ]] || log "(no log output in $1)"
}

# ---------------------------------------------------------------- ZooKeeper
zk_java() { printf '%s' "${JAVA:-$(command -v java || echo /usr/bin/java)}"; }

zk_classpath() {
    if [[ -n ${ZK_CLASSPATH:-} ]]; then printf '%s' "$ZK_CLASSPATH"; return 0; fi
    local cp="" j
    if [[ -r /etc/zookeeper/conf/environment ]]; then
        # shellcheck disable=SC1091
        cp=$(. /etc/zookeeper/conf/environment >/dev/null 2>&1; printf '%s' "${CLASSPATH:-}") || cp=""
    fi
    # drop the system conf dir (its log4j.properties would compete with ours)
    cp=$(tr ':' '\n' <<<"$cp" | grep -v '^/etc/zookeeper' | grep -v '^$' | paste -sd: -) || true
    [[ -n $cp ]] || cp=/usr/share/java/zookeeper.jar
    # zookeeper.jar's manifest pulls in slf4j-api but no binding: add log4j so we get logs
    for j in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do
        [[ -r $j ]] && cp="$cp:$j"
    done
    printf '%s' "$cp"
}

zk_write_config() { # layout n
    local layout=$1 n=$2 dir i
    dir=$(mdir "$layout" zk "$n")
    mkdir -p -- "$dir/data"
    {
        echo "# generated by $SELF"
        echo "tickTime=500"
        echo "initLimit=20"
        echo "syncLimit=10"
        echo "minSessionTimeout=1000"
        echo "maxSessionTimeout=60000"
        echo "dataDir=$dir/data"
        echo "clientPort=$(client_port "$layout" zk "$n")"
        echo "clientPortAddress=127.0.0.1"
        echo "maxClientCnxns=0"
        echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=*"
        echo "forceSync=no"
        if [[ $layout == cluster ]]; then
            echo "standaloneEnabled=false"
            echo "quorumListenOnAllIPs=false"
            for i in 1 2 3; do
                echo "server.$i=127.0.0.1:$(nth "$P_ZK_QUORUM" "$i"):$(nth "$P_ZK_ELECTION" "$i")"
            done
        fi
    } >"$dir/zoo.cfg"
    [[ $layout == cluster ]] && printf '%s\n' "$n" >"$dir/data/myid"
    cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.RollingFileAppender
log4j.appender.FILE.File=$dir/zk.log
log4j.appender.FILE.MaxFileSize=50MB
log4j.appender.FILE.MaxBackupIndex=1
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
}

zk_launch() { # layout n
    local dir
    dir=$(mdir "$1" zk "$2")
    spawn "$dir" "$(zk_java)" \
        -Xms32m "-Xmx${COORD_SERVERS_ZK_HEAP:-256m}" -XX:+UseSerialGC -XX:-UsePerfData \
        -XX:TieredStopAtLevel=1 "-XX:ErrorFile=$dir/hs_err_%p.log" \
        -Djava.net.preferIPv4Stack=true \
        "-Dzookeeper.log.dir=$dir" -Dzookeeper.root.logger=INFO,FILE \
        "-Dlog4j.configuration=file:$dir/log4j.properties" \
        -Dzookeeper.jmx.log4j.disable=true -Dzookeeper.admin.enableServer=false \
        -Dzookeeper.cnxTimeout=2000 \
        -cp "$(zk_classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

zk_mode() { # port -> Mode value (standalone/leader/follower/...) or nothing
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf srvr >&3 && cat <&3' _ "$1" \
        2>/dev/null | sed -n 's/^Mode: //p' || true
}

# wait_zk LAYOUT N... : wait until the listed members serve (standalone, or
# leader/follower with exactly one leader among the running members of the cluster)
wait_zk() {
    local layout=$1 n mode ok leaders d
    shift
    local end why=""
    end=$(deadline "$TIMEOUT")
    while :; do
        ok=1 why=""
        for n in "$@"; do
            d=$(mdir "$layout" zk "$n")
            if ! alive "$d"; then
                log "ZooKeeper $layout zk$n (127.0.0.1:$(client_port "$layout" zk "$n")) exited during startup"
                tail_logs "$d"
                return 1
            fi
            mode=$(zk_mode "$(client_port "$layout" zk "$n")")
            if [[ $layout == single ]]; then
                [[ $mode == standalone ]] || { ok=0; why="zk$n mode '${mode:-none}'"; }
            else
                [[ $mode == leader || $mode == follower ]] || { ok=0; why="zk$n mode '${mode:-none}'"; }
            fi
        done
        if [[ $ok == 1 && $layout == cluster ]]; then
            leaders=0
            for n in 1 2 3; do
                d=$(mdir "$layout" zk "$n")
                [[ $(proc_state "$d") == running ]] || continue
                [[ $(zk_mode "$(client_port "$layout" zk "$n")") == leader ]] && leaders=$((leaders + 1))
            done
            [[ $leaders == 1 ]] || { ok=0; why="$leaders leaders"; }
        fi
        [[ $ok == 1 ]] && return 0
        if expired "$end"; then
            log "ZooKeeper $layout members [$*] not healthy after ${TIMEOUT}s ($why)"
            for n in "$@"; do tail_logs "$(mdir "$layout" zk "$n")"; done
            return 1
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- etcd
etcd_bin() { printf '%s' "${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}"; }

etcd_launch() { # layout n new|existing
    local layout=$1 n=$2 cstate=$3 dir cport pport cluster="" i count token
    dir=$(mdir "$layout" etcd "$n")
    mkdir -p -- "$dir"
    cport=$(client_port "$layout" etcd "$n")
    pport=$(peer_port "$layout" "$n")
    count=$(members_of "$layout")
    for ((i = 1; i <= count; i++)); do
        cluster="${cluster:+$cluster,}etcd$i=http://127.0.0.1:$(peer_port "$layout" "$i")"
    done
    token="coord-$layout-${STATE##*.}"
    spawn "$dir" "$(etcd_bin)" \
        --name "etcd$n" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$cluster" --initial-cluster-state "$cstate" --initial-cluster-token "$token" \
        --enable-grpc-gateway=true --heartbeat-interval 100 --election-timeout 1000 \
        --auto-compaction-retention 0 \
        --logger zap --log-outputs "$dir/etcd.log" --log-level info
}

etcd_healthy() { # port
    local out
    out=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null) || return 1
    [[ $out == *'"health":"true"'* ]]
}

wait_etcd() { # layout n...
    local layout=$1 n d ok
    shift
    local end why=""
    end=$(deadline "$TIMEOUT")
    while :; do
        ok=1
        for n in "$@"; do
            d=$(mdir "$layout" etcd "$n")
            if ! alive "$d"; then
                log "etcd $layout etcd$n (127.0.0.1:$(client_port "$layout" etcd "$n")) exited during startup"
                tail_logs "$d"
                return 1
            fi
            etcd_healthy "$(client_port "$layout" etcd "$n")" || { ok=0; why="etcd$n /health not true"; }
        done
        [[ $ok == 1 ]] && return 0
        if expired "$end"; then
            log "etcd $layout members [$*] not healthy after ${TIMEOUT}s ($why)"
            for n in "$@"; do tail_logs "$(mdir "$layout" etcd "$n")"; done
            return 1
        fi
        sleep 0.2
    done
}

etcd_is_leader() { # port -> success if that member currently is the raft leader
    local out me leader
    out=$(curl -fsS --max-time 1 -X POST -d '{}' "http://127.0.0.1:$1/v3/maintenance/status" 2>/dev/null) ||
        return 1
    me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$out")
    leader=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$out")
    [[ -n $me && $me == "$leader" ]]
}

# A terminating etcd leader first tries to hand leadership over, which takes ~7 s
# when its followers are terminating at the same time.  So stop the current leader
# first (the hand-over to a live follower is quick), round by round.
etcd_stop_leader_first() { # layout
    local layout=$1 count n round d found
    count=$(members_of "$layout")
    ((count > 1)) || return 0
    for ((round = 1; round < count; round++)); do
        found=""
        for ((n = 1; n <= count; n++)); do
            d=$(mdir "$layout" etcd "$n")
            [[ $(proc_state "$d") == running ]] || continue
            if etcd_is_leader "$(client_port "$layout" etcd "$n")"; then
                found=$d
                break
            fi
        done
        [[ -n $found ]] || return 0
        signal_member "$found" TERM
        wait_dead 3 "$found" || return 0
    done
}

# ---------------------------------------------------------------- layouts
stop_layout() { # layout  (quiet if not present)
    local layout=$1 d dirs=()
    layout_present "$layout" || return 0
    for d in "$STATE/$layout"/*/; do
        [[ -d $d ]] && dirs+=("${d%/}")
    done
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
    local layout=$1 n count t0
    t0=$(now_us)
    if layout_present "$layout"; then
        log "stopping earlier $layout layout in $STATE"
        stop_layout "$layout"
    fi
    if ! check_ports_free "$layout"; then
        remove_state_if_empty
        exit 1
    fi
    count=$(members_of "$layout")
    mkdir -p -- "$STATE/$layout"
    for ((n = 1; n <= count; n++)); do
        zk_write_config "$layout" "$n"
        zk_launch "$layout" "$n"
    done
    for ((n = 1; n <= count; n++)); do
        etcd_launch "$layout" "$n" new
    done
    local members
    members=$(seq 1 "$count" | tr '\n' ' ')
    # shellcheck disable=SC2086
    if ! wait_zk "$layout" $members || ! wait_etcd "$layout" $members; then
        stop_layout "$layout"
        remove_state_if_empty
        die "could not start the $layout layout"
    fi
    log "$layout layout healthy after $(since "$t0") (state $STATE)"
}

export_line() { # NAME VALUE -> export NAME=VALUE (plain if safe, else shell-quoted)
    if [[ $2 =~ ^[A-Za-z0-9_./:,@%+=-]+$ ]]; then
        printf 'export %s=%s\n' "$1" "$2"
    else
        printf 'export %s=%q\n' "$1" "$2"
    fi
}

print_env() {
    local n zc="" ec=""
    export_line COORD_SERVERS_DIR "$STATE"
    export_line COORD_SERVERS "$SELF"
    if layout_present single; then
        export_line COORD_TEST_ZK "127.0.0.1:$P_ZK_SINGLE"
        export_line COORD_TEST_ETCD "127.0.0.1:$P_ETCD_SINGLE"
    fi
    if layout_present cluster; then
        for n in 1 2 3; do
            zc="${zc:+$zc,}127.0.0.1:$(nth "$P_ZK_CLUSTER" "$n")"
            ec="${ec:+$ec,}127.0.0.1:$(nth "$P_ETCD_CLUSTER" "$n")"
        done
        export_line COORD_TEST_ZK_CLUSTER "$zc"
        export_line COORD_TEST_ETCD_CLUSTER "$ec"
    fi
}

write_env_file() { print_env >"$STATE/env"; }

layouts_arg() { # single|cluster|both -> list
    case ${1:-} in
        single | cluster) echo "$1" ;;
        both) echo "single cluster" ;;
        *) die "expected single, cluster or both, got '${1:-}'" ;;
    esac
}

# ---------------------------------------------------------------- member selection
SEL_LAYOUT="" SEL_KIND="" SEL_N=""
select_member() { # kind sel [layout]
    [[ $# -ge 2 ]] || usage
    local kind=$1 sel=$2 layout=${3:-} l n port
    [[ $kind == zk || $kind == etcd ]] || die "expected zk or etcd, got '$kind'"
    [[ -n $STATE ]] || die "no servers running (no state dir found via COORD_SERVERS_DIR or $POINTER)"
    if [[ $sel =~ ^[1-9]$ ]]; then
        if [[ -z $layout ]]; then
            layout=${COORD_SERVERS_LAYOUT:-}
            if [[ -z $layout ]]; then
                if layout_present cluster; then layout=cluster; else layout=single; fi
            fi
        fi
        [[ $layout == single || $layout == cluster ]] || die "layout must be single or cluster, got '$layout'"
        layout_present "$layout" || die "the $layout layout is not running"
        ((sel <= $(members_of "$layout"))) || die "$layout has no member $kind$sel"
        SEL_LAYOUT=$layout SEL_KIND=$kind SEL_N=$sel
        return 0
    fi
    port=${sel##*:}
    [[ $port =~ ^[0-9]+$ ]] || die "expected a member number 1..3 or a client port, got '$sel'"
    for l in single cluster; do
        [[ -z $layout || $layout == "$l" ]] || continue
        layout_present "$l" || continue
        for ((n = 1; n <= $(members_of "$l"); n++)); do
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
    if [[ -n ${1:-} ]]; then layouts=$(layouts_arg "$1"); else layouts="single cluster"; fi
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

cmd_kill() {
    find_state
    select_member "$@"
    local d
    d=$(mdir "$SEL_LAYOUT" "$SEL_KIND" "$SEL_N")
    alive "$d" || { log "$SEL_LAYOUT $SEL_KIND$SEL_N is not running"; return 0; }
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
        if [[ $SEL_LAYOUT == cluster ]]; then
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

# kind [layout] -> the layout to act on (as for member selection), or die
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
    layout_present "$layout" || die "the $layout layout is not running"
    printf '%s' "$layout"
}

# The running member that leads (ZooKeeper `srvr` mode, etcd's raft leader), once exactly one
# running member claims it; an election in progress is waited out (bounded by TIMEOUT).
cmd_leader() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local kind=$1 layout n d port found count end
    find_state
    layout=$(layout_for "$@")
    end=$(deadline "$TIMEOUT")
    while :; do
        found="" count=0
        for ((n = 1; n <= $(members_of "$layout"); n++)); do
            d=$(mdir "$layout" "$kind" "$n")
            [[ $(proc_state "$d") == running ]] || continue
            port=$(client_port "$layout" "$kind" "$n")
            if [[ $kind == zk ]]; then
                case $(zk_mode "$port") in leader | standalone) found=$n count=$((count + 1)) ;; esac
            elif etcd_is_leader "$port"; then
                found=$n count=$((count + 1))
            fi
        done
        if [[ $count == 1 ]]; then
            printf '%s\n' "$found"
            return 0
        fi
        expired "$end" && die "no single $layout $kind leader after ${TIMEOUT}s ($count claim it)"
        sleep 0.2
    done
}

# Undo what an interrupted fault test left behind: every member of the kind runs again.
cmd_heal() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local kind=$1 layout n d
    find_state
    layout=$(layout_for "$@")
    for ((n = 1; n <= $(members_of "$layout"); n++)); do
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
    for l in single cluster; do
        layout_present "$l" || continue
        for kind in zk etcd; do
            for ((n = 1; n <= $(members_of "$l"); n++)); do
                d=$(mdir "$l" "$kind" "$n")
                st=$(proc_state "$d")
                port=$(client_port "$l" "$kind" "$n")
                extra=""
                if [[ $st == running ]]; then
                    if [[ $kind == zk ]]; then
                        extra="mode=$(zk_mode "$port")"
                    elif etcd_healthy "$port"; then
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
pid_live() { # pid exists and is not a zombie
    local fields
    fields=$(stat_fields "$1") || return 1
    [[ ${fields%% *} != [ZXx] ]]
}

run_cleanup() {
    [[ $RUN_CLEANED == 1 ]] && return 0
    RUN_CLEANED=1
    trap '' INT TERM
    local l
    if [[ -n $RUN_CMD_PID ]] && pid_live "$RUN_CMD_PID"; then
        local end
        end=$(deadline "10")
        while pid_live "$RUN_CMD_PID" && ! expired "$end"; do sleep 0.1; done
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
    [[ $# -ge 1 ]] || die "run: missing command (usage: run single|cluster|both -- CMD [ARG...])"
    RUN_LAYOUTS=$layouts
    trap run_cleanup EXIT
    trap 'run_signal INT 130' INT
    trap 'run_signal TERM 143' TERM
    lock
    create_state
    for l in $layouts; do start_layout "$l"; done
    write_env_file
    unset COORD_TEST_ZK COORD_TEST_ETCD COORD_TEST_ZK_CLUSTER COORD_TEST_ETCD_CLUSTER
    eval "$(print_env)"
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
        start) [[ $# -eq 1 ]] || usage; cmd_start "$@" ;;
        stop) [[ $# -le 1 ]] || usage; cmd_stop "$@" ;;
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
        *) log "unknown command '$cmd'"; usage ;;
    esac
}

main "$@"

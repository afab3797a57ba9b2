# scripts/lib/proc.sh - processes of scripts/servers.sh: spawn detached, find again, signal,
# wait. Sourced (bash); sets no options of its own. A process lives in a directory of its own
# (a "member dir") holding `pid`, `starttime` (to tell our process from a reused pid) and
# `out.log` (its stdout and stderr).
#
# Every wait is bounded and goes through wait_until.

PROG=${PROG:-coord-servers}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
since() { # start_us -> "1.23s"
    local d=$(($(now_us) - $1))
    printf '%d.%02ds' $((d / 1000000)) $((d % 1000000 / 10000))
}
deadline() { printf '%s' $(($(now_us) + $1 * 1000000)); } # whole seconds -> deadline
expired() { (($(now_us) >= $1)); }

# wait_until [-i INTERVAL] SECS CMD [ARG...]
#   Runs CMD every INTERVAL seconds (default 0.2) until it succeeds, or it returns 2 (it gives
#   up: the process it waits for died), or SECS whole seconds have passed. CMD runs with errexit
#   off, so it returns its verdict explicitly; it may set WAIT_WHY to what it still waits for,
#   which the caller can put in its message. Returns 0 (CMD succeeded), 1 (timed out) or 2.
WAIT_WHY=""
wait_until() {
    local every=0.2 end rc
    if [[ $1 == -i ]]; then
        every=$2
        shift 2
    fi
    end=$(deadline "$1")
    shift
    while :; do
        WAIT_WHY=""
        rc=0
        "$@" || rc=$?
        case $rc in
            0) return 0 ;;
            2) return 2 ;;
        esac
        expired "$end" && return 1
        sleep "$every"
    done
}

# ---------------------------------------------------------------- the lock of mutating commands
# lock_take FILE: serialise on FILE (flock on fd 9, at most 120 s); lock_drop releases it.
LOCKED=0
lock_take() {
    [[ $LOCKED == 1 ]] && return 0
    command -v flock >/dev/null 2>&1 || {
        LOCKED=1
        return 0
    }
    exec 9>>"$1"
    flock -w 120 9 || die "could not get lock $1 within 120 s"
    LOCKED=1
}
lock_drop() {
    [[ $LOCKED == 1 ]] || return 0
    if command -v flock >/dev/null 2>&1; then
        flock -u 9 || true
        exec 9>&-
    fi
    LOCKED=0
}

# ---------------------------------------------------------------- finding a process again
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
    [[ -n $pid ]] || {
        echo dead
        return 0
    }
    fields=$(stat_fields "$pid") || {
        echo dead
        return 0
    }
    read -r -a f <<<"$fields"
    case ${f[0]:-} in Z | X | x | '')
        echo dead
        return 0
        ;;
    esac
    [[ -f $1/starttime ]] && want=$(head -n 1 -- "$1/starttime" 2>/dev/null || true)
    if [[ -n $want ]]; then
        [[ ${f[19]:-} == "$want" ]] || {
            echo dead
            return 0
        }
    elif ! tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1"; then
        echo dead
        return 0
    fi
    case ${f[0]} in T | t) echo paused ;; *) echo running ;; esac
}

alive() { [[ $(proc_state "$1") != dead ]]; }

pid_live() { # pid exists and is not a zombie (for processes that have no member dir)
    local fields
    fields=$(stat_fields "$1") || return 1
    [[ ${fields%% *} != [ZXx] ]]
}

# ---------------------------------------------------------------- signals and waits
# signal_member DIR SIG: the member's process group (it is a session leader), else its pid
signal_member() {
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

none_alive() { # dir...
    local d
    for d in "$@"; do
        if alive "$d"; then
            WAIT_WHY="${d##*/} still runs"
            return 1
        fi
    done
}

wait_dead() { # seconds dir...
    local secs=$1
    shift
    wait_until -i 0.1 "$secs" none_alive "$@"
}

has_pid_file() { [[ -s $1/pid ]]; }

# spawn DIR CMD... : run CMD in its own session, detached (double fork), with stdin from
# /dev/null, output appended to DIR/out.log and no other inherited descriptor, so it never
# holds the caller's terminal or pipes; its pid goes to DIR/pid, its start time to DIR/starttime.
spawn() {
    local dir=$1 fields
    local -a f
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
    wait_until -i 0.05 10 has_pid_file "$dir" || die "could not start process in $dir (no pid file)"
    if fields=$(stat_fields "$(member_pid "$dir")"); then
        read -r -a f <<<"$fields"
        printf '%s\n' "${f[19]:-}" >"$dir/starttime"
    fi
}

tail_logs() { # dir : the last lines of each log of a member, on stderr
    local f any=0
    for f in "$1"/*.log; do
        [[ -s $f ]] || continue
        any=1
        printf '%s: ---- last lines of %s ----\n' "$PROG" "$f" >&2
        tail -n 25 -- "$f" >&2 || true
    done
    [[ $any == 1 ]] || log "(no log output in $1)"
}

# scripts/lib/state.sh - the state dir of scripts/servers.sh and what lives in it: layouts
# started, checked and stopped, the environment they export, member selection. Sourced (bash)
# after proc.sh, ports.sh, zk.sh and etcd.sh; uses the CLI's SELF, POINTER, MARKER and STATE
# (the state dir found, or empty).

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

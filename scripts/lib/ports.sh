# scripts/lib/ports.sh - the layouts of scripts/servers.sh and their 127.0.0.1 ports.
# Sourced (bash) by servers.sh and deps.sh; uses log and die (scripts/lib/proc.sh or the caller's).
#
# Defaults come from scripts/ports.env (also read by docker-compose.yml); each can be overridden
# for a run by the variable shown in servers.sh's --help. A state dir remembers the ports it was
# created with (its ports.env), so later commands act on the same servers whatever their env.

PORTS_FILE=$(readlink -f -- "$(dirname -- "${BASH_SOURCE[0]}")/../ports.env")
LAYOUTS="single cluster auth tls"

members_of() { case $1 in cluster) echo 3 ;; *) echo 1 ;; esac; } # layout -> member count
kinds_of() { case $1 in single | cluster) echo "zk etcd" ;; *) echo etcd ;; esac; }

# ports_defaults: the COORD_PORT_* values of scripts/ports.env
ports_defaults() {
    local k v
    [[ -r $PORTS_FILE ]] || die "cannot read the ports file $PORTS_FILE"
    while IFS='=' read -r k v; do
        [[ $k =~ ^COORD_PORT_[A-Z0-9_]+$ && $v =~ ^[0-9]+$ ]] && printf -v "$k" '%s' "$v"
    done <"$PORTS_FILE"
    for k in ZK ETCD ETCD_PEER ETCD_AUTH ETCD_AUTH_PEER ETCD_TLS ETCD_TLS_PEER ZK1 ZK2 ZK3 \
        ZK1_QUORUM ZK2_QUORUM ZK3_QUORUM ZK1_ELECTION ZK2_ELECTION ZK3_ELECTION ETCD1 ETCD2 ETCD3 \
        ETCD1_PEER ETCD2_PEER ETCD3_PEER; do
        k=COORD_PORT_$k
        [[ -n ${!k:-} ]] || die "$PORTS_FILE does not set $k"
    done
}

check_port() { # name value
    [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a port number, got '$2'"
}
check_port_list() { # name value
    [[ $2 =~ ^[0-9]+,[0-9]+,[0-9]+$ ]] || die "$1 must be three comma-separated ports, got '$2'"
}

# load_ports [STATE_PORTS_ENV]: set the P_* variables from the defaults, the env overrides and,
# when given and present, the ports a state dir remembers (which win).
load_ports() {
    ports_defaults
    P_ZK_SINGLE=${COORD_SERVERS_ZK_PORT:-$COORD_PORT_ZK}
    P_ETCD_SINGLE=${COORD_SERVERS_ETCD_PORT:-$COORD_PORT_ETCD}
    P_ETCD_SINGLE_PEER=${COORD_SERVERS_ETCD_PEER_PORT:-$COORD_PORT_ETCD_PEER}
    check_port COORD_SERVERS_ETCD_PORT "$P_ETCD_SINGLE"
    # the auth and tls etcds keep their offsets from the single one when only that one moves
    P_ETCD_AUTH=${COORD_SERVERS_ETCD_AUTH_PORT:-$((P_ETCD_SINGLE + COORD_PORT_ETCD_AUTH - COORD_PORT_ETCD))}
    P_ETCD_AUTH_PEER=${COORD_SERVERS_ETCD_AUTH_PEER_PORT:-$((P_ETCD_SINGLE + COORD_PORT_ETCD_AUTH_PEER - COORD_PORT_ETCD))}
    P_ETCD_TLS=${COORD_SERVERS_ETCD_TLS_PORT:-$((P_ETCD_SINGLE + COORD_PORT_ETCD_TLS - COORD_PORT_ETCD))}
    P_ETCD_TLS_PEER=${COORD_SERVERS_ETCD_TLS_PEER_PORT:-$((P_ETCD_SINGLE + COORD_PORT_ETCD_TLS_PEER - COORD_PORT_ETCD))}
    P_ZK_CLUSTER=${COORD_SERVERS_ZK_CLUSTER_PORTS:-$COORD_PORT_ZK1,$COORD_PORT_ZK2,$COORD_PORT_ZK3}
    P_ZK_QUORUM=${COORD_SERVERS_ZK_QUORUM_PORTS:-$COORD_PORT_ZK1_QUORUM,$COORD_PORT_ZK2_QUORUM,$COORD_PORT_ZK3_QUORUM}
    P_ZK_ELECTION=${COORD_SERVERS_ZK_ELECTION_PORTS:-$COORD_PORT_ZK1_ELECTION,$COORD_PORT_ZK2_ELECTION,$COORD_PORT_ZK3_ELECTION}
    P_ETCD_CLUSTER=${COORD_SERVERS_ETCD_CLUSTER_PORTS:-$COORD_PORT_ETCD1,$COORD_PORT_ETCD2,$COORD_PORT_ETCD3}
    P_ETCD_CLUSTER_PEER=${COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS:-$COORD_PORT_ETCD1_PEER,$COORD_PORT_ETCD2_PEER,$COORD_PORT_ETCD3_PEER}
    if [[ -n ${1:-} && -f $1 ]]; then
        # shellcheck source=/dev/null
        . "$1"
    fi
    check_port COORD_SERVERS_ZK_PORT "$P_ZK_SINGLE"
    check_port COORD_SERVERS_ETCD_PEER_PORT "$P_ETCD_SINGLE_PEER"
    check_port COORD_SERVERS_ETCD_AUTH_PORT "$P_ETCD_AUTH"
    check_port COORD_SERVERS_ETCD_AUTH_PEER_PORT "$P_ETCD_AUTH_PEER"
    check_port COORD_SERVERS_ETCD_TLS_PORT "$P_ETCD_TLS"
    check_port COORD_SERVERS_ETCD_TLS_PEER_PORT "$P_ETCD_TLS_PEER"
    check_port_list COORD_SERVERS_ZK_CLUSTER_PORTS "$P_ZK_CLUSTER"
    check_port_list COORD_SERVERS_ZK_QUORUM_PORTS "$P_ZK_QUORUM"
    check_port_list COORD_SERVERS_ZK_ELECTION_PORTS "$P_ZK_ELECTION"
    check_port_list COORD_SERVERS_ETCD_CLUSTER_PORTS "$P_ETCD_CLUSTER"
    check_port_list COORD_SERVERS_ETCD_CLUSTER_PEER_PORTS "$P_ETCD_CLUSTER_PEER"
}

save_ports() { # file : what load_ports reads back
    local v
    for v in P_ZK_SINGLE P_ETCD_SINGLE P_ETCD_SINGLE_PEER P_ETCD_AUTH P_ETCD_AUTH_PEER P_ETCD_TLS \
        P_ETCD_TLS_PEER P_ZK_CLUSTER P_ZK_QUORUM P_ZK_ELECTION P_ETCD_CLUSTER P_ETCD_CLUSTER_PEER; do
        printf '%s=%q\n' "$v" "${!v}"
    done >"$1"
}

nth() { # "a,b,c" n -> nth element
    local IFS=, arr
    read -r -a arr <<<"$1"
    printf '%s' "${arr[$(($2 - 1))]}"
}

client_port() { # layout kind n
    case $1/$2 in
        single/zk) printf '%s' "$P_ZK_SINGLE" ;;
        single/etcd) printf '%s' "$P_ETCD_SINGLE" ;;
        auth/etcd) printf '%s' "$P_ETCD_AUTH" ;;
        tls/etcd) printf '%s' "$P_ETCD_TLS" ;;
        cluster/zk) nth "$P_ZK_CLUSTER" "$3" ;;
        cluster/etcd) nth "$P_ETCD_CLUSTER" "$3" ;;
    esac
}
peer_port() { # layout n  (etcd)
    case $1 in
        single) printf '%s' "$P_ETCD_SINGLE_PEER" ;;
        auth) printf '%s' "$P_ETCD_AUTH_PEER" ;;
        tls) printf '%s' "$P_ETCD_TLS_PEER" ;;
        cluster) nth "$P_ETCD_CLUSTER_PEER" "$2" ;;
    esac
}

layout_ports() { # layout -> "port:description" lines
    local n
    case $1 in
        single) printf '%s\n' "$P_ZK_SINGLE:zk1-client" "$P_ETCD_SINGLE:etcd1-client" \
            "$P_ETCD_SINGLE_PEER:etcd1-peer" ;;
        auth | tls) printf '%s\n' "$(client_port "$1" etcd 1):etcd1-client" "$(peer_port "$1" 1):etcd1-peer" ;;
        cluster)
            for n in 1 2 3; do
                printf '%s\n' "$(nth "$P_ZK_CLUSTER" "$n"):zk$n-client" "$(nth "$P_ZK_QUORUM" "$n"):zk$n-quorum" \
                    "$(nth "$P_ZK_ELECTION" "$n"):zk$n-election" "$(nth "$P_ETCD_CLUSTER" "$n"):etcd$n-client" \
                    "$(nth "$P_ETCD_CLUSTER_PEER" "$n"):etcd$n-peer"
            done
            ;;
    esac
}

all_ports() { # every port of every layout, one a line
    local l
    for l in $LAYOUTS; do layout_ports "$l"; done | cut -d: -f1
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

# check_ports_free LAYOUT SCRIPT: returns 1 (after explaining) if a port of LAYOUT is taken;
# SCRIPT is named in the advice to stop a stale run that holds them.
check_ports_free() {
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
            "stop it with: COORD_SERVERS_DIR=$sd $2 stop"
    done
    log "cannot start the $1 layout: ports in use (ports can be changed with the COORD_SERVERS_*PORT* env vars)"
    return 1
}

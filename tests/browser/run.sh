#!/usr/bin/env bash
# Real-browser tests of the page the signaling server serves.
#
# `confab server` and headless Debian Chromium both run inside a network namespace this
# script creates (and deletes on exit): Chromium never offers 127.0.0.1 ICE candidates, so
# it needs an address of its own, and test traffic must stay off the machine's interfaces.
#
#   sudo tests/browser/run.sh [node --test options, e.g. --test-name-pattern=three]
#
# Environment:
#   CONFAB_BIN        the confab binary (default: build and use $CARGO_TARGET_DIR/debug/confab,
#                     CARGO_TARGET_DIR defaulting to ~/.cache/confab/target)
#   CONFAB_TEST_ADDR  the namespace's address (default 10.213.0.1, on a /24)
#   CONFAB_TEST_PORT  the server's port (default 8787; the namespace is empty, so it is free)
#   CHROMIUM          the browser (default /usr/bin/chromium, installed with apt if missing)
# The tests get CONFAB_URL (the page), CONFAB_WS (signaling), CONFAB_ADDR, CONFAB_NETNS,
# CONFAB_BIN, CONFAB_OUT and CHROMIUM; screenshots and the server log go to out/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
addr="${CONFAB_TEST_ADDR:-10.213.0.1}"
port="${CONFAB_TEST_PORT:-8787}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
out="$here/out"
ns="confab-br-$$"
server_pid=""
tests_pid=""

say() { printf '[run.sh %5.1fs] %s\n' "$SECONDS" "$*"; }
die() { say "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root for ip netns: sudo $0"
command -v ip >/dev/null || die "ip (iproute2) not found"
command -v node >/dev/null || die "node not found (Node 20 or newer)"

# --- what the tests need ---------------------------------------------------------------
if [ ! -x "$chromium" ]; then
    say "installing chromium (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    say "installing playwright-core (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ -n "${CONFAB_BIN:-}" ]; then
    bin="$CONFAB_BIN"
else
    # Always build: the page is compiled into the binary, so a stale one tests old files.
    say "building confab"
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --quiet -p confab)
    bin="$target/debug/confab"
fi
[ -x "$bin" ] || die "no confab binary at $bin"

rm -rf "$out"
mkdir -p "$out/screenshots"

# --- the namespace ----------------------------------------------------------------------
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in $tests_pid $server_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # Anything still running in the namespace is ours (a browser a crashed test left).
    local pids
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    if [ "$rc" -ne 0 ] && [ -s "$out/server.log" ]; then
        say "server log (last 20 lines):"
        tail -n 20 "$out/server.log" >&2
    fi
    say "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)"); screenshots in $out/screenshots"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
# The address needs a non-loopback interface that is up and running. A dummy is simplest;
# kernels without the dummy driver (this machine's, for one) get a veth pair whose two ends
# both stay inside the namespace.
if ip -n "$ns" link add d0 type dummy 2>/dev/null; then
    kind=dummy
else
    ip -n "$ns" link add d0 type veth peer name d1
    ip -n "$ns" link set d1 up
    kind=veth
fi
ip -n "$ns" addr add "$addr/24" dev d0
ip -n "$ns" link set d0 up
# Without a media permission Chromium gathers only on the interface of the default route
# (it asks the kernel which address would reach a public one), so give the namespace a
# default route. It leads nowhere: d0's only link, if any, is d1 in this same namespace.
ip -n "$ns" route add default dev d0
say "network namespace $ns: $addr/24 on a $kind interface"
in_ns() { ip netns exec "$ns" "$@"; }

# --- the server --------------------------------------------------------------------------
say "starting $bin server --listen $addr:$port"
in_ns env RUST_LOG="${RUST_LOG:-info}" "$bin" server --listen "$addr:$port" >"$out/server.log" 2>&1 &
server_pid=$!

healthy() {
    in_ns node -e "fetch('http://$addr:$port/healthz').then(r => r.text()).then(
        t => process.exit(t === 'ok' ? 0 : 1), () => process.exit(1))"
}
for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || die "the server exited at start"
    healthy && break
    sleep 0.1
done
healthy || die "the server did not answer /healthz within 10 s"
say "server healthy at http://$addr:$port/"

# --- the tests ---------------------------------------------------------------------------
say "running the browser tests"
in_ns env \
    CONFAB_URL="http://$addr:$port/" \
    CONFAB_WS="ws://$addr:$port/ws" \
    CONFAB_ADDR="$addr" \
    CONFAB_NETNS="$ns" \
    CONFAB_BIN="$bin" \
    CONFAB_OUT="$out" \
    CHROMIUM="$chromium" \
    node --test --test-reporter=spec --test-concurrency=1 "$@" "$here"/*.test.mjs &
# In the background so that a signal reaches the trap at once, not after the tests.
tests_pid=$!
wait "$tests_pid"

#!/usr/bin/env bash
# Real-browser tests of the page the signaling server serves, and of the page against the
# headless native peer (`confab peer`).
#
# `confab server`, headless Debian Chromium and `confab peer` all run inside a network
# namespace this script creates (and deletes on exit): Chromium never offers 127.0.0.1 ICE
# candidates, so it needs an address of its own, and test traffic must stay off the
# machine's interfaces.
#
#   sudo tests/browser/run.sh [node --test options, e.g. --test-name-pattern=three]
#
# On a fresh Debian 12 machine (as root) it installs what is missing: the chromium package
# (apt) and playwright-core (npm ci). Node 20+ and npm must be there; Rust too unless
# CONFAB_BIN names a binary. Exits non-zero when a test fails.
#
# Environment:
#   CONFAB_BIN        the confab binary (default: build and use $CARGO_TARGET_DIR/debug/confab,
#                     CARGO_TARGET_DIR defaulting to ~/.cache/confab/target)
#   CONFAB_TEST_ADDR  the namespace's address (default 10.213.0.1, on a /24)
#   CONFAB_TEST_PORT  the server's port (default 8787; the namespace is empty, so it is free)
#   CHROMIUM          the browser (default /usr/bin/chromium, installed with apt if missing)
# The tests get CONFAB_URL (the page), CONFAB_WS (signaling), CONFAB_ADDR, CONFAB_NETNS,
# CONFAB_BIN, CONFAB_OUT and CHROMIUM; screenshots, page logs, native peer logs and the
# server log go to out/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
say_prefix="run.sh"
# shellcheck source=common.sh
. "$here/common.sh"
tests_pid=""

need_root
install_deps
resolve_bin

# Only what the tests write: out/bench/ is bench.sh's.
rm -rf "$out/screenshots" "$out/logs" "$out/server.log"
mkdir -p "$out/screenshots"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    netns_cleanup $tests_pid
    if [ "$rc" -ne 0 ] && [ -s "$out/server.log" ]; then
        say "server log (last 20 lines):"
        tail -n 20 "$out/server.log" >&2
    fi
    say "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)"); screenshots and logs in $out"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

netns_up
start_server

say "running the browser tests"
ns_env node --test --test-reporter=spec --test-concurrency=1 "$@" "$here"/*.test.mjs &
# In the background so that a signal reaches the trap at once, not after the tests.
tests_pid=$!
wait "$tests_pid"

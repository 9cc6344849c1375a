#!/usr/bin/env bash
# Chromium benchmark: set-up time of 2 pages and of an 8-page mesh through the real page and
# the real signaling server, and data-channel throughput between two pages. Runs inside a
# network namespace of its own, like run.sh (common.sh), in ~1 minute.
#
#   sudo tests/browser/bench.sh > result.json
#
# stdout: one JSON object (setup2_ms, setup2_p90_ms, mesh8_ms, throughput_mbps,
# chromium_version, and how each was measured); progress on stderr; exit non-zero on failure.
# Environment: as run.sh (CONFAB_BIN, CONFAB_TEST_ADDR, CONFAB_TEST_PORT, CHROMIUM), and
# BENCH_SETUP_RUNS (default 20), BENCH_MESH_RUNS (default 3), BENCH_LOSS_PCT (random loss of
# the UDP arriving in the namespace, by nftables; default none). Logs go to out/bench/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out/bench"
say_prefix="bench.sh"
# shellcheck source=common.sh
. "$here/common.sh"
bench_pid=""

need_root
install_deps
resolve_bin

rm -rf "$out"
mkdir -p "$out"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    netns_cleanup $bench_pid
    if [ "$rc" -ne 0 ] && [ -s "$out/server.log" ]; then
        say "server log (last 20 lines):"
        tail -n 20 "$out/server.log" >&2
    fi
    [ "$rc" -eq 0 ] || say "FAILED (exit $rc); logs in $out"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

netns_up
if [ -n "${BENCH_LOSS_PCT:-}" ]; then
    drop_udp_share "$BENCH_LOSS_PCT"
fi
start_server

say "running the benchmark"
ns_env node "$here/bench-chromium.mjs" &
bench_pid=$!
wait "$bench_pid"
say "done in ${SECONDS}s"

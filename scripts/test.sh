#!/usr/bin/env bash
# Runs every check and test of Confab. On a fresh Debian 12 machine it first installs what
# the checks need (system packages through apt); Rust itself comes from rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

# One target folder outside the clone, shared by every checkout on this machine, so a
# fresh clone does not rebuild the world. An explicit CARGO_TARGET_DIR wins.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=system.sh
. scripts/system.sh

check_rust_tools() {
    check_rust
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            rustup component add "$component"
        fi
    done
}

# PulseAudio (daemon and pactl/paplay/pacat) for the device tests, which start a daemon of
# their own with null sinks for devices; iproute2 and nftables for the loss tests, which
# drop UDP in network namespaces of their own; coturn, which the TURN credential tests
# start on loopback; nats-server, which the cluster tests start on loopback ports of
# their own (one per test, stopped and restarted by it), and haproxy, which one of them puts
# in front of the instances; espeak-ng, whose speech one device test sends through a call.
install_packages "${BUILD_PACKAGES[@]}" pulseaudio pulseaudio-utils libasound2-plugins \
    iproute2 nftables coturn nats-server haproxy espeak-ng
check_rust_tools

# The tests open hundreds of sockets in one process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The frontend first: the app's build embeds ui/dist. Node 20 as the browser tests get it.
step "frontend: type check, unit tests (vitest), build"
(
    here="$PWD/tests/browser"
    # shellcheck source=../tests/browser/common.sh
    . tests/browser/common.sh
    ensure_node
    cd ui
    # npm ci only when the lockfile changed since the last install.
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
    npm run --silent check
    npm test --silent
    npm run --silent build
)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
cargo test --workspace

# Real Chromium against the server's page and `confab peer`, inside a network namespace
# of the harness's own (it installs Debian's chromium and the npm packages it needs).
step "browser tests (headless Chromium and confab peer)"
cargo build -p confab
as_root env CONFAB_BIN="$CARGO_TARGET_DIR/debug/confab" ./tests/browser/run.sh

# confab peer across NAT routers (both kinds), a LAN, a firewall that lets no UDP out, and
# no path at all, built from network namespaces with nftables, with coturn and the built-in
# relay (tests/netlab/README.md). The loss and throughput cases (e, f, g) run by hand: the
# loss tests above cover loss, and g is a benchmark.
step "network lab: NATs, relays and firewalls in network namespaces"
as_root env CONFAB_BIN="$CARGO_TARGET_DIR/debug/confab" ./tests/netlab/run.sh \
    --test-name-pattern='^(0|a|b|c|d|h|i|j|k|l)\.'

# The built desktop app under Xvfb through tauri-driver, with a headless peer; then the
# .deb built by tauri-cli, installed with apt-get and started.
step "desktop app end to end (Xvfb, tauri-driver, confab peer)"
as_root env CARGO_TARGET_DIR="$CARGO_TARGET_DIR" PATH="$PATH" ./tests/app/run.sh

step "desktop app package (cargo tauri build --bundles deb, apt-get install)"
deb="$(./scripts/build-deb.sh)"
as_root env CARGO_TARGET_DIR="$CARGO_TARGET_DIR" PATH="$PATH" ./tests/app/run.sh --deb "$deb"

step "all checks passed"

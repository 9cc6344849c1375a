#!/usr/bin/env bash
# Builds and runs the Confab desktop app: the frontend (ui/, with npm), then the Tauri
# shell (src-tauri/) in release mode with the frontend built in. Arguments go to the app.
#
# On a fresh Debian 12 machine it first installs what the build needs (the WebKitGTK
# development packages and the rest, through apt; Node 20 if the system's is older). Rust
# itself comes from rustup.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"

# shellcheck source=system.sh
. scripts/system.sh
install_packages "${BUILD_PACKAGES[@]}"
check_rust

(
    here="$root/tests/browser"
    # shellcheck source=../tests/browser/common.sh
    . tests/browser/common.sh
    ensure_node
    cd ui
    [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
    npm run --silent build
)
# custom-protocol serves ui/dist from inside the binary, as the packaged app does.
exec cargo run --release -p confab-desktop --features custom-protocol -- "$@"

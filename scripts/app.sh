#!/usr/bin/env bash
# Builds and runs the Confab desktop app: the frontend (ui/, with npm), then the Tauri
# shell (src-tauri/) in release mode with the frontend built in. Arguments go to the app.
#
# Needs Rust, Node 18 or newer with npm, and the WebKitGTK development packages (on Debian
# 12: libwebkit2gtk-4.1-dev build-essential libssl-dev libayatana-appindicator3-dev
# librsvg2-dev libxdo-dev pkg-config libasound2-dev cmake).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"

cd "$root/ui"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
cd "$root"
# custom-protocol serves ui/dist from inside the binary, as the packaged app does.
exec cargo run --release -p confab-desktop --features custom-protocol -- "$@"

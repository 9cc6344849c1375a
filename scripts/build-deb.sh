#!/usr/bin/env bash
# Builds the desktop app's Debian package with tauri-cli (`cargo tauri build --bundles deb`),
# offline once the crates are fetched. Prints the path of the .deb on its last line.
#
# It installs tauri-cli from crates.io (`cargo install tauri-cli --locked`, ~14 minutes on
# two cores) the first time only, and the frontend's npm packages when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"

if ! cargo tauri --version >/dev/null 2>&1; then
    echo "installing tauri-cli (once per machine)" >&2
    cargo install tauri-cli --version '^2' --locked >&2
fi
cd "$root/ui"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error >&2
npm run --silent build >&2
# tauri-cli treats the folder it runs in as the app crate: src-tauri, whose
# tauri.conf.json is a link to the one at the top of the repository.
cd "$root/src-tauri"
# A package ships stripped, as Debian's own are: the line tables the release profile keeps
# for backtraces in builds from source are most of the binary's size.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo tauri build --bundles deb "$@" >&2
profile=release
for arg in "$@"; do [ "$arg" = "--debug" ] && profile=debug; done
ls -t "$CARGO_TARGET_DIR/$profile/bundle/deb/"*.deb | head -n 1

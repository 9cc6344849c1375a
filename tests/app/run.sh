#!/usr/bin/env bash
# The desktop app end to end: builds the frontend and the app, starts Xvfb and
# tauri-driver (which starts WebKitWebDriver and the app), and runs e2e.test.mjs against
# the app with a headless `confab peer` in the same room.
#
#   tests/app/run.sh              the end-to-end test of the built app
#   tests/app/run.sh --deb FILE   installs FILE with apt-get, checks the installed app starts
#                                 and handles confab:// links, then removes it and checks it
#                                 left nothing behind
#
# On a fresh Debian 12 machine (as root) it installs what is missing: the WebKitGTK,
# Xvfb and WebKitWebDriver packages, python3-xlib for closing the window as a window
# manager does (apt), Node 20 (as tests/browser does) and tauri-driver (cargo install).
# Screenshots, the app's log and the headless peer's output go to tests/app/out/e2e/ (the
# package test's to tests/app/out/deb/).
#
# Test traffic stays on this machine: the app runs with CONFAB_LOOPBACK_ONLY=1 (ICE on
# 127.0.0.1 only), hosts its server on 127.0.0.1, and the headless peer, whose server is
# on loopback, gathers on loopback too. As root, the whole run happens inside a LAN of two
# network namespaces of its own (see below), deleted when it ends.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/confab/target), CONFAB_TEST_DISPLAY
# (default: the first free from :87), CONFAB_DRIVER_PORT (default: a free port; the one
# after it is WebKitWebDriver's), CONFAB_TEST_PORT (default: a free port, the hosted
# server's). Free ones are picked so that runs beside other tests do not collide.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/out/e2e"
target="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
display="${CONFAB_TEST_DISPLAY:-}"
driver_port="${CONFAB_DRIVER_PORT:-}"
server_port="${CONFAB_TEST_PORT:-}"
deb=""
if [ "${1:-}" = "--deb" ]; then
    deb="$(realpath "${2:?--deb needs the .deb file}")"
fi

say_prefix="app"
# say, die, apt_install and ensure_node are shared with the browser tests.
# shellcheck source=../browser/common.sh
here_app="$here"
here="$root/tests/browser"
. "$root/tests/browser/common.sh"
here="$here_app"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local wanted=(libwebkit2gtk-4.1-dev build-essential libssl-dev libayatana-appindicator3-dev
        librsvg2-dev libxdo-dev pkg-config file xvfb xauth webkit2gtk-driver dbus-daemon dbus-bin
        desktop-file-utils xdg-utils xdotool x11-utils dunst python3-xlib)
    local missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]} (Debian packages)"
        as_root apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    if ! command -v tauri-driver >/dev/null; then
        say "installing tauri-driver (cargo install)"
        cargo install tauri-driver --version '^2' --locked >&2
    fi
}

build() {
    say "building the frontend"
    if [ ! -d "$root/ui/node_modules" ]; then
        (cd "$root/ui" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
    (cd "$root/ui" && npm run --silent build >&2)
    say "building the app and confab"
    # custom-protocol serves the built frontend from the binary, as `cargo tauri build` does.
    # Two builds, not one: built alone, confab gets the same dependency features as in the
    # browser tests, so the cache serves both.
    cargo build -p confab-desktop --features custom-protocol >&2
    cargo build -p confab >&2
}

xvfb_pid=""
driver_pid=""
bus_pid=""
dunst_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null || true
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
    [ -n "$dunst_pid" ] && kill "$dunst_pid" 2>/dev/null || true
    [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    # The app's own log file (tauri-plugin-log).
    cp "$state/data/app.confab.desktop/logs/"*.log "$out/" 2>/dev/null || true
    rm -rf "$state"
    say "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)"); screenshots and logs in $out"
    exit "$rc"
}

# The end-to-end run happens on a LAN of two network namespaces of its own, joined by a
# veth with TEST-NET-1 addresses: the app and everything driving it in one, and in the
# other a `confab server` announced on the LAN (DNS-SD), which the app must find. Without
# root (namespaces need it) the run stays where it is and the LAN step is skipped.
lan_a=""
lan_b=""
lan_server_pid=""
lan_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$lan_server_pid" ] && kill "$lan_server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    for ns in "$lan_a" "$lan_b"; do
        [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
    done
    exit "$rc"
}

if [ -z "${CONFAB_IN_LAN:-}" ]; then
    install_packages
    ensure_node
fi
if [ -z "$deb" ]; then
    if [ -z "${CONFAB_IN_LAN:-}" ]; then
        build
        if [ "$(id -u)" -eq 0 ]; then
            lan_a="confab-app-$$-a"
            lan_b="confab-app-$$-b"
            trap lan_cleanup EXIT
            trap 'exit 130' INT TERM
            ip netns add "$lan_a"
            ip netns add "$lan_b"
            ip -n "$lan_a" link add lan0 type veth peer name lan0 netns "$lan_b"
            ip -n "$lan_a" addr add 192.0.2.1/24 dev lan0
            ip -n "$lan_b" addr add 192.0.2.2/24 dev lan0
            for ns in "$lan_a" "$lan_b"; do
                ip -n "$ns" link set lan0 multicast on up
                ip -n "$ns" link set lo up
            done
            say "a LAN of two namespaces; a server announced on it at 192.0.2.2:8787"
            mkdir -p "$here/out"
            ip netns exec "$lan_b" "$target/debug/confab" server --listen 0.0.0.0:8787 \
                --name "Lab server" >"$here/out/lan-server.log" 2>&1 &
            lan_server_pid=$!
            for _ in $(seq 100); do
                ip netns exec "$lan_b" bash -c 'exec 3<>/dev/tcp/192.0.2.2/8787' 2>/dev/null && break
                sleep 0.1
            done
            CONFAB_IN_LAN=1 CONFAB_LAN_SERVER="ws://192.0.2.2:8787/ws" \
                ip netns exec "$lan_a" bash "$0" "$@"
            exit $?
        fi
        say "not root: no LAN of namespaces, so the step that finds a server on one is skipped"
    fi
    app="$target/debug/confab-desktop"
    test_file="$here/e2e.test.mjs"
else
    say "installing $deb"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >&2
    app="/usr/bin/confab-desktop"
    [ -x "$app" ] || die "the package did not install $app"
    test_file="$here/deb.test.mjs"
    out="$here/out/deb"
fi

# A free TCP port on 127.0.0.1 whose successor is free too (tauri-driver takes two).
free_port() {
    node -e '
        const net = require("node:net");
        const listen = (port) => new Promise((ok, fail) => {
            const s = net.createServer().once("error", fail).listen(port, "127.0.0.1", () => ok(s));
        });
        (async () => {
            for (;;) {
                const a = await listen(0);
                const port = a.address().port;
                try {
                    const b = await listen(port + 1);
                    b.close(); a.close();
                    console.log(port);
                    return;
                } catch { a.close(); }
            }
        })();'
}
if [ -z "$display" ]; then
    n=87
    while [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ]; do n=$((n + 1)); done
    display=":$n"
fi
[ -n "$driver_port" ] || driver_port="$(free_port)"
[ -n "$server_port" ] || server_port="$(free_port)"

rm -rf "$out"
mkdir -p "$out/screenshots"
# A config and data folder of the test's own: a first run, and nothing of the user's touched.
state="$(mktemp -d)"
trap cleanup EXIT
trap 'exit 130' INT TERM
# Accepted files land in a Downloads folder of the test's own (the desktop's user dirs).
mkdir -p "$state/config" "$state/downloads"
printf 'XDG_DOWNLOAD_DIR="%s"\n' "$state/downloads" >"$state/config/user-dirs.dirs"

say "starting Xvfb on $display"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb_pid=$!
sleep 1
kill -0 "$xvfb_pid" 2>/dev/null || die "Xvfb did not start (see $out/xvfb.log)"

# A session bus of the test's own, as a desktop has: a second start of the app (an invite
# link opened while it runs) finds the first through it.
say "starting a D-Bus session bus"
bus="$(dbus-daemon --session --fork --print-address=1 --print-pid=1)"
export DBUS_SESSION_BUS_ADDRESS="${bus%%$'\n'*}"
bus_pid="${bus##*$'\n'}"

# A notification daemon, as a desktop has: the app's notifications are read back from it.
say "starting dunst"
DISPLAY="$display" dunst >"$out/dunst.log" 2>&1 &
dunst_pid=$!
for _ in $(seq 50); do
    dunstctl is-paused >/dev/null 2>&1 && break
    sleep 0.1
done
dunstctl is-paused >/dev/null 2>&1 || die "dunst did not start (see $out/dunst.log)"

say "starting tauri-driver on port $driver_port"
env DISPLAY="$display" XDG_CONFIG_HOME="$state/config" XDG_DATA_HOME="$state/data" \
    XDG_CACHE_HOME="$state/cache" NO_AT_BRIDGE=1 \
    CONFAB_LOOPBACK_ONLY=1 CONFAB_AUDIO_IN=sine:440 CONFAB_AUDIO_OUT=none \
    tauri-driver --port "$driver_port" --native-port "$((driver_port + 1))" >"$out/driver.log" 2>&1 &
driver_pid=$!

say "running $(basename "$test_file")"
CONFAB_APP="$app" CONFAB_BIN="$target/debug/confab" CONFAB_DRIVER="http://127.0.0.1:$driver_port" \
    CONFAB_PORT="$server_port" CONFAB_OUT="$out" CONFAB_DOWNLOADS="$state/downloads" \
    XDG_CONFIG_HOME="$state/config" \
    XDG_DATA_HOME="$state/data" XDG_CACHE_HOME="$state/cache" DISPLAY="$display" NO_AT_BRIDGE=1 \
    CONFAB_LOOPBACK_ONLY=1 CONFAB_AUDIO_IN=sine:440 CONFAB_AUDIO_OUT=none \
    node --test --test-reporter=spec "$test_file"

if [ -n "$deb" ]; then
    # And it goes as cleanly: nothing of it left, and confab:// no longer handled.
    say "removing the package"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq confab >&2
    for path in /usr/bin/confab-desktop /usr/share/applications/Confab.desktop \
        /usr/share/icons/hicolor/128x128/apps/confab-desktop.png; do
        [ ! -e "$path" ] || die "removing the package left $path behind"
    done
    if [ -n "$(xdg-mime query default x-scheme-handler/confab)" ]; then
        die "confab:// links are still handled after the package was removed"
    fi
fi

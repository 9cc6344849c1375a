# Sourced by scripts/test.sh and scripts/app.sh: what both need from the system.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# What building Confab needs: a C toolchain for the crates that build C (ring, SQLite;
# cmake for libopus), CA roots for wss:// clients, ALSA headers for cpal, and WebKitGTK
# and friends for the desktop app.
BUILD_PACKAGES=(build-essential pkg-config ca-certificates cmake libasound2-dev
    libwebkit2gtk-4.1-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
    file)

# Installs, with apt, those of the Debian packages named that are missing.
install_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        printf '\n==> installing %s\n' "${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

check_rust() {
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs), 1.89 or newer" >&2
        exit 1
    fi
}

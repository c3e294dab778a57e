#!/usr/bin/env bash
# Chromium and its driver for tests/test_browser.py, installed when missing: `make test` runs this
# before pytest, so the README's one command does the whole set-up. Installs Debian's packages
# chromium and chromium-driver with apt-get, as root or through sudo; where that is not possible it
# stops with one line saying exactly what to install. CHROMIUM and CHROMEDRIVER name the paths
# checked (default: where the browser test looks).
set -euo pipefail
chromium=${CHROMIUM:-/usr/bin/chromium}
driver=${CHROMEDRIVER:-/usr/bin/chromedriver}
need="make test: tests/test_browser.py needs Chromium at $chromium and its driver at $driver: install Debian's \
packages with \`sudo apt-get update && sudo apt-get install -y chromium chromium-driver\` (elsewhere: put Chromium \
and a matching chromedriver at those paths), then run make test again"

installed() { [ -x "$chromium" ] && [ -x "$driver" ]; }

installed && exit 0
if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null; then
        sudo="sudo"
    else
        echo "$need" >&2
        exit 1
    fi
    echo "make test: installing chromium and chromium-driver with apt-get (for tests/test_browser.py)" >&2
    if $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
        chromium-driver && installed; then
        exit 0
    fi
fi
echo "$need" >&2
exit 1

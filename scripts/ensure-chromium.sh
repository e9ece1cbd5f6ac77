#!/bin/sh
# The HTML report test renders the page in Debian's Chromium; install it when missing and root.
# Not root and no Chromium: say so and exit 0; the test itself fails under CI=true, skips locally.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: $CHROMIUM missing and not root; install Debian's chromium package" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version

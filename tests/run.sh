#!/bin/sh
# Installs everything Kinko's tests need, then runs them: the README's test command.
# Debian packages the tests drive for real (openssl, the sqlite3 CLI, GnuTLS tools, nginx,
# curl, NSS tools, a JDK, Chromium with its driver and a Japanese font, node for the enrollment
# page's script, PostgreSQL for the second store backend) are installed when missing; Python
# packages go into ./.venv.
set -eu
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="openssl sqlite3 gnutls-bin nginx curl libnss3-tools default-jdk-headless iproute2 chromium chromium-driver fonts-ipafont-gothic nodejs postgresql"
missing=""
for package in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
done
python3 -c "import ensurepip" 2>/dev/null || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo"
    echo "installing Debian packages:$missing"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $missing >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# Tools installed by pip (pkilint's lint_* commands) are run by the tests by name.
PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/python -m pytest -q "$@"

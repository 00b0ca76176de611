#!/bin/sh
# Builds the enrollment page's one script, enroll/enroll.js, from src/enroll.js and the npm packages
# pinned in package-lock.json (pkijs, asn1js; esbuild bundles them). With --check, builds into a
# temporary file and fails if the committed bundle differs from what its sources make.
set -eu
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund --silent
out=enroll/enroll.js
if [ "${1:-}" = --check ]; then
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
fi
./node_modules/.bin/esbuild src/enroll.js --bundle --format=iife --target=es2020 --charset=utf8 \
    --minify --legal-comments=eof --log-level=warning --outfile="$out"
if [ "${1:-}" = --check ]; then
    cmp -s "$out" enroll/enroll.js || { echo "ca/web/enroll/enroll.js differs from what ca/web/build.sh makes: run it and commit" >&2; exit 1; }
    echo "ca/web/enroll/enroll.js matches its sources"
fi

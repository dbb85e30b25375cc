#!/usr/bin/env bash
# The dashboard test (ctest integration/test_dashboard): installs playwright-core (the
# driver only, no browser download) into DEPSDIR once, then drives Debian's chromium
# against tallyd with test_dashboard.mjs. Screenshots and the final results go to OUTDIR.
# usage: run.sh TALLYD OUTDIR DEPSDIR [DROP_TOPICS]   (DROP_TOPICS: the helper deleting the
# server mode's topics at the end)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tallyd=$1 outdir=$2 depsdir=$3
chromium=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
  echo "FAIL: no chromium at \"$chromium\": install Debian's chromium (scripts/setup does) or set CHROMIUM" >&2
  exit 1
fi
command -v node >/dev/null || { echo "FAIL: node not found (Node.js 18 or later is needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "FAIL: npm not found" >&2; exit 1; }

# Reinstall only when package.json changed (the one network use, on first run or upgrade).
mkdir -p "$depsdir" "$outdir"
if ! cmp -s "$here/package.json" "$depsdir/package.json" || [ ! -d "$depsdir/node_modules/playwright-core" ]; then
  cp "$here/package.json" "$depsdir/package.json"
  echo "dashboard: npm install in $depsdir" >&2
  (cd "$depsdir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error) || {
    rm -f "$depsdir/package.json"
    echo "FAIL: npm install of playwright-core failed (network?)" >&2
    exit 1
  }
fi
rm -f "$outdir"/*.png
export CHROMIUM="$chromium"
[ -n "${4:-}" ] && export TALLY_DASHBOARD_DROP_TOPICS=$4
exec node "$here/test_dashboard.mjs" "$tallyd" "$outdir" "$depsdir"

#!/usr/bin/env bash
# Install Debian's Chromium when the machine lacks it, for tests/test_admin.py's browser test.
# Never fails: without apt-get, or when the install does not work, the test skips and says
# why. About 100 MB from the Debian mirror; a minute or two on a fresh machine, nothing when
# it is already installed.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and no apt-get here; the browser test will skip" >&2
  exit 0
fi
log=$(mktemp)
started=$SECONDS
if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends chromium; } >"$log" 2>&1; then
  echo "chromium: installed in $((SECONDS - started)) s" >&2
else
  echo "chromium: could not be installed; the browser test will skip. apt-get said:" >&2
  tail -n 5 "$log" >&2
fi
rm -f "$log"
exit 0

#!/usr/bin/env bash
# A mock run's HTML report, and a screenshot of it for the README
# (docs/report.png), taken with Debian's headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
need chromium chromium
out=target/report-demo
mkdir -p "$out" docs
target/release/periscope run --mock --scenario spike --max-vus 16 --duration 40s \
  --mock-args "--ttft 80ms --itl 12ms --jitter 0.3 --max-concurrency 10" \
  --json "$out/result.json" --html "$out/report.html" --csv "$out/requests.csv" \
  --progress-every 10 > "$out/report.md"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
  --user-data-dir="$profile" --window-size=1200,2200 \
  --screenshot="$PWD/docs/report.png" "file://$PWD/$out/report.html" 2>/dev/null
echo "report: $out/report.html, screenshot: docs/report.png" >&2

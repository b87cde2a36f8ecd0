#!/usr/bin/env bash
# A CI job that loads a day's orders and fails the build on any bad row or broken invariant.
# Usage: examples/ci-import.sh ORDERS_FILE [DB]
set -euo pipefail
orders=${1:?usage: ci-import.sh ORDERS_FILE [DB]}
export REALORDERS_DB=${2:-ci-orders.db}
here=$(cd "$(dirname "$0")" && pwd)

realorders init --inventory "$here/inventory.csv"

# Keep going on bad rows so the report lists all of them; remember the verdict.
status=0
realorders import "$orders" --errors-file rejected-rows.ndjson --json > import-summary.json || status=$?

realorders run --until-idle           # process everything, then return
realorders check                      # exit 1 if any invariant fails
realorders stats --json > stats.json
realorders list --status rejected --format csv > rejected-orders.csv

if [ "$status" -ne 0 ]; then
  echo "import refused $(python3 -c 'import json,sys;print(json.load(open("import-summary.json"))["rejected"])') rows; see rejected-rows.ndjson" >&2
fi
exit "$status"

#!/usr/bin/env bash
# The demo's tour, against a running `gatehouse demo --at 02:00`:
# sign in, bulk-download at night, blocked, alert received; then verify the
# audit log offline and write the compliance report.
#   scripts/demo-tour.sh [DATA_DIR] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-data/demo}
port=${2:-8443}
gh=${GATEHOUSE:-bin/gatehouse}
"$gh" demo tour --dir "$dir" --port "$port"
echo "5. the audit log verifies offline"
"$gh" audit verify "$dir/audit" --key "$dir/keys/audit.pub"
echo "6. the compliance report lists the anomaly and the action: $dir/report.html"
"$gh" audit report "$dir/audit" --key "$dir/keys/audit.pub" --format html --out "$dir/report.html"
grep -c "bulk-download-at-night" "$dir/report.html" >/dev/null && echo "   report mentions bulk-download-at-night"

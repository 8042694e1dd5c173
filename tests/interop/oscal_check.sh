#!/usr/bin/env bash
# The evidence report's OSCAL document, checked by an independent OSCAL
# implementation: compliance-trestle's models of the NIST OSCAL 1.1 schema.
# Usage: tests/interop/oscal_check.sh target/debug/phivault
set -euo pipefail
PV=${1:-target/debug/phivault}
W=$(mktemp -d)
trap 'kill $SRV 2>/dev/null && wait $SRV 2>/dev/null; rm -rf "$W"' EXIT
"$PV" --data-dir "$W/d" --json serve --dev --listen 127.0.0.1:0 --log warn > "$W/ready" 2> "$W/log" &
SRV=$!
for _ in $(seq 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
ADDR=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['listening'].split('//')[1])" "$W/ready")
# A dev deployment fails controls (dev keystore, no backup): exit 10 is expected.
"$PV" --data-dir "$W/d" --insecure-dev -q evidence --addr "$ADDR" --out "$W/ev" > /dev/null 2>&1 || [ $? -eq 10 ]
python3 - "$W/ev/evidence.oscal.json" <<'PY'
import json, sys
from trestle.oscal.assessment_results import AssessmentResults
doc = json.load(open(sys.argv[1]))
ar = AssessmentResults.parse_obj(doc["assessment-results"])
r = ar.results[0]
assert len(r.findings) == 22, len(r.findings)
assert r.observations, "no observations"
print(f"OSCAL OK: assessment-results with {len(r.findings)} findings, {len(r.observations)} observations")
PY

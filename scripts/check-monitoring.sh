#!/usr/bin/env bash
# Checks the alert rules with promtool: `promtool check rules` on the PrometheusRule's
# spec, then the unit tests in tests/rules-test.yaml beside it.
# Usage: scripts/check-monitoring.sh [path/to/prometheusrule.yaml]
# Exit 0 when both pass; on a rejection one line naming the file and the first
# complaint, exit 2. Nothing is written outside a temporary directory.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rule="${1:-$here/deploy/monitoring/prometheusrule.yaml}"
tests="$(dirname "$rule")/tests/rules-test.yaml"
[ -f "$tests" ] || tests="$here/deploy/monitoring/tests/rules-test.yaml"
command -v promtool >/dev/null || { echo "check-monitoring: promtool is not installed (Debian package prometheus)" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if ! err="$(python3 - "$rule" "$work/rules.yaml" 2>&1 <<'PY'
import sys, yaml
try:
    doc = yaml.safe_load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"not YAML: {str(e).splitlines()[0]}")
if not isinstance(doc, dict) or doc.get("kind") != "PrometheusRule" or not isinstance(doc.get("spec"), dict):
    sys.exit("not a PrometheusRule with a spec")
yaml.safe_dump(doc["spec"], open(sys.argv[2], "w"), sort_keys=False)
PY
)"; then
  echo "$rule: ${err##*$'\n'}" >&2; exit 2
fi
if ! out="$(promtool check rules "$work/rules.yaml" 2>&1)"; then
  first="$(grep -m1 -vE '^(Checking|  FAILED:|$)' <<<"$out" | sed 's/^[[:space:]]*//')"
  first="${first//$work\/rules.yaml: /}"
  echo "$rule: promtool check rules rejects it: ${first:-$out}" >&2; exit 2
fi
cp "$tests" "$work/rules-test.yaml"
if ! out="$(cd "$work" && promtool test rules rules-test.yaml 2>&1)"; then
  first="$(grep -m1 -E 'alertname:|error|Error' <<<"$out" | sed 's/^[[:space:]]*//')"
  echo "$rule: promtool test rules fails ($tests): ${first:-see promtool output}" >&2; exit 2
fi
echo "$rule: $(grep -c -E '^\s+- (alert|record):' "$rule") rules checked, $(grep -c 'alertname:' "$tests") alert expectations pass"

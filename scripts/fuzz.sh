#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (-sanitize=fuzzer,address) and runs each for a bounded
# time: `scripts/fuzz.sh [SECONDS]` (default 60; `make fuzz FUZZ_S=…`). Regressions are replayed
# first; a crash leaves its input in Fuzz/crashes/ and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds="${1:-60}"
targets=(watch-lines kubeconfig dockerconfigjson jwt-expiry api-answer)
flags=(-c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
       -Xcxx -fsanitize=fuzzer-no-link,address)
swift build "${flags[@]}" >/dev/null 2>build.log.tmp || { cat build.log.tmp >&2; rm -f build.log.tmp; echo "fuzz: build failed" >&2; exit 2; }
rm -f build.log.tmp
bin="$(swift build "${flags[@]}" --show-bin-path)"
mkdir -p crashes
printf '%-18s %12s %10s %8s %8s\n' target executions exec/s corpus crashes
failed=0
for t in "${targets[@]}"; do
  work=".build/corpus/$t"
  mkdir -p "$work"
  log=".build/fuzz-$t.log"
  # Known crashers first: each must now run clean.
  shopt -s nullglob
  regressions=(regressions/"$t"/*)
  shopt -u nullglob
  if [ ${#regressions[@]} -gt 0 ]; then
    FUZZ_TARGET="$t" "$bin/kubetrace-fuzz" "${regressions[@]}" >"$log" 2>&1 || { echo "fuzz: $t fails a kept regression input:" >&2; tail -20 "$log" >&2; failed=1; continue; }
  fi
  # kube-apiserver's own serialization fixtures (beside the repository, never copied into it)
  # seed the watch-line target as one-line watch events of every kind.
  extra=()
  fixtures="../../shared/fixtures/kubernetes-api"
  if [ "$t" = watch-lines ] && [ -d "$fixtures" ]; then
    mkdir -p .build/corpus-fixtures
    python3 - "$fixtures" .build/corpus-fixtures <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
for release in sorted(os.listdir(src)):
    folder = os.path.join(src, release)
    if not os.path.isdir(folder): continue
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"): continue
        obj = json.load(open(os.path.join(folder, name)))
        with open(os.path.join(dst, f"{release}-{name}"), "w") as out:
            for kind in ("ADDED", "MODIFIED", "DELETED"):
                out.write(json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n")
PY
    extra=(.build/corpus-fixtures)
  fi
  status=0
  FUZZ_TARGET="$t" "$bin/kubetrace-fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="crashes/$t-" "$work" "corpus/$t" "${extra[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(ls "$work" | wc -l)
  crashes=0
  if [ "$status" -ne 0 ]; then crashes=1; failed=1; fi
  printf '%-18s %12s %10s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "$size" "$crashes"
  if [ "$status" -ne 0 ]; then
    grep -E "ERROR|invariant|SUMMARY|artifact" "$log" | head -8 >&2
  fi
done
exit $failed

#!/usr/bin/env bash
# The main job on the bundled samples: pack a single-file archive -> co-sign -> verify it from a pipe
# -> inspect -> replay into a real OpenTelemetry collector (rotel, from the `rotel` package on PyPI),
# all on this machine.
# Needs `bundlekit` and `python` of an environment with bundlekit[test] installed on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/bundlekit-demo.XXXXXX")
collector_pid=""
cleanup() {
    if [ -n "$collector_pid" ]; then kill "$collector_pid" 2>/dev/null || true; wait "$collector_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bundle="$work/incident.bundle.tar"
step "pack the samples into one archive, signed with the SAMPLE key (keys/sample-do-not-use.key)"
bundlekit pack samples/otlp/traces.binpb samples/otlp/metrics.binpb samples/otlp/logs.binpb \
    --config samples/config/collector.yaml --dashboards samples/dashboards \
    --profile forensic --operator demo --case-id DEMO-1 --reason "README demo" \
    --key keys/sample-do-not-use.key --archive --out "$bundle"

step "co-sign with a second, freshly generated key"
bundlekit keygen --out "$work/auditor" --no-passphrase
bundlekit sign "$bundle" --key "$work/auditor.key"

step "verify offline from a pipe (as off removable media): both signatures required, every record decoded"
cat "$bundle" | bundlekit verify - --key keys/trust/sample-do-not-use.pub --key "$work/auditor.pub" \
    --threshold 2 --deep

step "inspect"
bundlekit inspect "$bundle" --trust keys/trust

step "replay into a real collector (rotel) on loopback, timestamps rebased to now"
agent=$(python -c "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))")
read -r grpc_port http_port < <(python - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
"$agent" start --otlp-grpc-endpoint "127.0.0.1:$grpc_port" --otlp-http-endpoint "127.0.0.1:$http_port" \
    --exporter blackhole --debug-log traces --debug-log metrics --debug-log logs \
    --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" > "$work/collector.out" 2>&1 &
collector_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
    sleep 0.1
done
bundlekit replay "$bundle" --trust keys/trust --endpoint "http://127.0.0.1:$grpc_port" --rebase now
sleep 0.5
echo "the collector received:"
sed 's/\x1b\[[0-9;]*m//g' "$work/collector.out" | grep -o 'Received [a-z]*\..*' | \
    awk '{kind=$2; sub(/\.$/, "", kind); n=$NF; sub(/.*=/, "", n); total[kind]+=n} END {for (k in total) printf "  %-8s %d\n", k, total[k]}'
step "done"

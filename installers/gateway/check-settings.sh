#!/usr/bin/env bash
# Checks karte-gateway.toml with the real karte-server binary, without Docker (what the project could verify for
# the gateway example; README "Gateway deployment (upstream mode)"):
#   1. the file as shipped is accepted: karte-server reads it and gets as far as loading the TLS certificate,
#      which does not exist outside the container (an unknown key or a bad value would stop it earlier, naming
#      the setting);
#   2. the same file with only the machine-specific values replaced (listen on loopback, a throwaway self-signed
#      certificate, a temporary token store, the upstream = a running llama-server) serves: /health answers 200
#      with that upstream "up".
# Usage: check-settings.sh KARTE_SERVER_BIN UPSTREAM_URL      (e.g. a llama-server on http://127.0.0.1:8081)
set -euo pipefail
bin=$1 upstream=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

echo "== 1. karte-gateway.toml as shipped"
set +e
KARTE_SETTINGS=$here/karte-gateway.toml "$bin" --listen 127.0.0.1:0 --data-dir "$tmp/data1" --log-level warn >"$tmp/out1" 2>&1
rc=$?
set -e
cat "$tmp/out1"
grep -q "TLS の設定を読み込めません（証明書）" "$tmp/out1" || { echo "FAIL: expected the TLS-file error (rc $rc)"; exit 1; }
echo "ok: settings accepted (stopped at the missing TLS certificate, rc $rc)"

echo "== 2. the same settings, machine-specific values replaced, in front of $upstream"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$tmp/tls.key" -out "$tmp/tls.crt" \
  2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^listen = .*|listen = \"127.0.0.1:$port\"|" \
    -e "s|^tls_cert = .*|tls_cert = \"$tmp/tls.crt\"|" \
    -e "s|^tls_key = .*|tls_key = \"$tmp/tls.key\"|" \
    -e "s|^data_dir = .*|data_dir = \"$tmp/data2\"|" \
    -e "s|^upstreams = .*|upstreams = [\"$upstream\"]|" \
    "$here/karte-gateway.toml" >"$tmp/settings.toml"
diff "$here/karte-gateway.toml" "$tmp/settings.toml" || true
KARTE_SETTINGS=$tmp/settings.toml KARTE_ADMIN_TOKEN=check-admin "$bin" --log-level warn >"$tmp/out2" 2>&1 &
pid=$!
for _ in $(seq 1 60); do
  code=$(curl -sk -o "$tmp/health.json" -w '%{http_code}' "https://127.0.0.1:$port/health" || true)
  [ "$code" = 200 ] && break
  sleep 0.5
done
echo "/health: HTTP $code $(cat "$tmp/health.json" 2>/dev/null)"
[ "$code" = 200 ] && grep -q '"state":"up"' "$tmp/health.json" || { cat "$tmp/out2"; echo "FAIL"; exit 1; }
metrics=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/metrics")
echo "/metrics (the liveness probe in k8s.yaml): HTTP $metrics"
[ "$metrics" = 200 ] || { echo FAIL; exit 1; }
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "== 3. with the upstream gone: /health must be 503 (readiness drops, liveness on /metrics stays)"
sed -i "s|^upstreams = .*|upstreams = [\"http://127.0.0.1:9\"]|" "$tmp/settings.toml"
KARTE_SETTINGS=$tmp/settings.toml "$bin" --log-level warn >"$tmp/out3" 2>&1 &
pid=$!
sleep 3
code=$(curl -sk -o "$tmp/health.json" -w '%{http_code}' "https://127.0.0.1:$port/health" || true)
metrics=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/metrics" || true)
echo "/health: HTTP $code $(cat "$tmp/health.json" 2>/dev/null); /metrics: HTTP $metrics"
[ "$code" = 503 ] && [ "$metrics" = 200 ] || { cat "$tmp/out3"; echo FAIL; exit 1; }
echo "ok: all checks passed"

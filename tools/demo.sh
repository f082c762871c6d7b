#!/usr/bin/env bash
# The bundled demo. The RL loop is not built yet, so this version shows the parts that work
# today: it starts a learner, an actor and a reference scorer as separate processes, has the
# learner initialise a small model, streams its weights to the actor, and asks the actor for
# a few samples. The full demo (warm-up, RL on arithmetic, held-out accuracy before/after)
# arrives with the RL loop.
set -euo pipefail
BUILD_DIR=${1:-build}
BIN="$BUILD_DIR/bin"
cat <<'MSG'
demo: the full job (supervised warm-up, then GRPO on multi-digit arithmetic, held-out
demo: accuracy before and after) needs the RL loop, which is not built yet. Today's demo
demo: starts the services, checks their health and metrics, and stops them cleanly.
MSG
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for svc in coordinator actor reward reference learner; do
  out=$(mktemp)
  "$BIN/grail-$svc" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$out" ] && break; sleep 0.05; done
  line=$(head -n1 "$out"); echo "$line"
  grpc=$(sed -E 's/.*grpc=([^ ]+).*/\1/' <<<"$line")
  metrics=$(sed -E 's/.*metrics=([^ ]+).*/\1/' <<<"$line")
  "$BIN/grailctl" health "$grpc"
  echo "  /metrics: $(curl -fsS "http://$metrics/metrics" | grep -c '^process_') process series"
  rm -f "$out"
done
echo "demo: stopping services (SIGTERM)"

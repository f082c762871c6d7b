#!/usr/bin/env bash
# The bundled demo: starts the local cluster (coordinator, two actors, reward, reference,
# learner), submits deploy/demo/arithmetic.yaml (supervised warm-up of a small model from
# scratch, then GRPO on 2-digit addition), shows progress, and reports greedy accuracy on 500
# held-out problems before and after RL. wall_seconds counts from starting the cluster to
# the end of the final evaluation.
#
#   tools/demo.sh [BUILD_DIR] [SPEC]
#   PROMETHEUS_PORT=9090 tools/demo.sh   also runs Prometheus on that port (see deploy/prometheus)
#   LEARNER_RANKS=2 tools/demo.sh        trains on a 2-rank data-parallel learner group
#   SEED=3 tools/demo.sh                 run seed and model init seed 3 (the spec says 1)
set -euo pipefail
BUILD_DIR=${1:-build}
SPEC=${2:-deploy/demo/arithmetic.yaml}
BIN="$(cd "$BUILD_DIR/bin" && pwd)"
REPO="$(pwd)"
STATE=$(mktemp -d /tmp/grail-demo.XXXXXX)

cleanup() { deploy/local/cluster.sh stop "$STATE" >/dev/null 2>&1 || true; }
trap cleanup EXIT

start=$(date +%s.%N)
extra=()
if [ -n "${PROMETHEUS_PORT:-}" ]; then extra+=(--prometheus="$PROMETHEUS_PORT"); fi
if [ -n "${LEARNER_RANKS:-}" ]; then extra+=(--learner_ranks="$LEARNER_RANKS"); fi
# The services' data root (checkpoints, e.g. a staged run's) is $STATE/data, not the checkout.
mkdir -p "$STATE/data"
(cd "$STATE/data" && "$REPO/deploy/local/cluster.sh" start "$STATE" --bin="$BIN" "${extra[@]}")
# shellcheck disable=SC1091
source "$STATE/cluster.env"
echo "demo: logs in $STATE; coordinator metrics at http://$COORDINATOR_METRICS/metrics"
if [ -n "${PROMETHEUS:-}" ]; then
  echo "demo: Prometheus at $PROMETHEUS (try grail_coordinator_reward_mean; alerts at $PROMETHEUS/alerts);"
  echo "demo: Grafana: add it as a data source and import deploy/grafana/dashboards/grail.json"
else
  echo "demo: PROMETHEUS_PORT=9090 make demo also starts Prometheus scraping every service"
fi
if [ -n "${SEED:-}" ]; then
  case $SEED in *[!0-9]*) echo "demo: SEED must be a non-negative integer, got '$SEED'" >&2; exit 2;; esac
  sed -E -e "s/^seed: .*/seed: $SEED/" -e "s/^(  init_seed:) .*/\1 $SEED/" "$SPEC" >"$STATE/spec.yaml"
  SPEC="$STATE/spec.yaml"
fi
run=$("$BIN/grailctl" --coordinator="$COORDINATOR" submit "$SPEC")
echo "demo: submitted $run ($SPEC)"
"$BIN/grailctl" --coordinator="$COORDINATOR" watch "$run" | tee "$STATE/watch.log"
end=$(date +%s.%N)
before=$(sed -nE 's/^summary heldout_accuracy_before=(.*)$/\1/p' "$STATE/watch.log")
after=$(sed -nE 's/^summary heldout_accuracy_after=(.*)$/\1/p' "$STATE/watch.log")
# A staged run: its stages in the order they reported ("STAGE | ..." lines).
stages=$(sed -nE 's/^([A-Za-z0-9_.-]+) \| .*/\1/p' "$STATE/watch.log" | uniq)
if [ -n "$stages" ]; then
  "$BIN/grailctl" --coordinator="$COORDINATOR" probes "$run" --plot="$STATE/probes.svg" >/dev/null 2>&1 &&
    echo "demo: learning-dynamics probes drawn in $STATE/probes.svg"
fi
cleanup
trap - EXIT
if [ -n "$stages" ]; then
  line="demo: heldout_accuracy"
  for s in $stages; do
    acc=$(sed -nE "s/^summary $s\.heldout_accuracy_after=(.*)$/\1/p" "$STATE/watch.log")
    line+=$(printf ' after_%s=%.3f' "$s" "${acc:-nan}")
  done
  printf '%s wall_seconds=%.0f\n' "$line" "$(echo "$end - $start" | bc)"
  exit 0
fi
printf 'demo: heldout_accuracy_before=%.3f heldout_accuracy_after=%.3f wall_seconds=%.0f\n' \
  "$before" "$after" "$(echo "$end - $start" | bc)"

#!/usr/bin/env bash
# One-machine grail cluster on loopback: coordinator, N actors, reward, reference, learner as
# separate processes with free ports.
#
#   deploy/local/cluster.sh start STATE_DIR [--actors=N] [--bin=DIR] [--threads=N] [--learner_threads=N]
#                                          [--learner_ranks=N] [--prometheus=PORT]
#   (--threads: LibTorch threads per actor, default 1; --learner_threads: for each learner
#   rank and the reference scorer, default 2; --learner_ranks: data-parallel learner ranks,
#   default 1; --prometheus: also start Debian's prometheus on 127.0.0.1:PORT scraping every
#   service, with deploy/prometheus's rules)
#   deploy/local/cluster.sh stop STATE_DIR
#
# `start` waits until every service reports SERVING and writes STATE_DIR/cluster.env
# (COORDINATOR=HOST:PORT, one <NAME>_METRICS=HOST:PORT per service, PROMETHEUS=URL) and
# STATE_DIR/pids. Logs go to STATE_DIR/<service>.log. `stop` sends SIGTERM to all and waits.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1; state=$2; shift 2
root="$(cd "$(dirname "$0")/../.." && pwd)"
actors=2; bin="$root/build/bin"; threads=1; learner_threads=2; learner_ranks=1; prometheus_port=""
for arg in "$@"; do
  case $arg in
    --actors=*) actors=${arg#*=} ;;
    --bin=*) bin=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --learner_threads=*) learner_threads=${arg#*=} ;;
    --learner_ranks=*) learner_ranks=${arg#*=} ;;
    --prometheus=*) prometheus_port=${arg#*=} ;;
    *) echo "cluster.sh: unknown option $arg" >&2; usage ;;
  esac
done

stop_all() {
  [ -f "$state/pids" ] || return 0
  # Coordinator first, so that no run is mid-call when the services go away.
  for pid in $(tac "$state/pids"); do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $(cat "$state/pids"); do
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$state/pids"
}

# launch_service NAME BINARY ARGS...: starts it in the background (PID in LAUNCHED).
launch_service() {
  local name=$1 binary=$2; shift 2
  "$bin/$binary" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 "$@" \
      >"$state/$name.out" 2>"$state/$name.log" &
  LAUNCHED=$!
  echo "$LAUNCHED" >>"$state/pids"
}

# start_service NAME BINARY ARGS...: starts it, waits for its ready line, sets ADDR and METRICS.
start_service() {
  launch_service "$@"
  await_service "$1" "$LAUNCHED"
}

# await_service NAME PID: waits for its ready line and SERVING health, sets ADDR and METRICS.
await_service() {
  local name=$1 pid=$2
  for _ in $(seq 1 600); do
    [ -s "$state/$name.out" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: $name exited during start-up; see $state/$name.log" >&2; tail -5 "$state/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  local line; line=$(head -n1 "$state/$name.out")
  ADDR=$(sed -nE 's/.* grpc=([^ ]+) .*/\1/p' <<<"$line")
  METRICS=$(sed -nE 's/.* metrics=([^ ]+)$/\1/p' <<<"$line")
  [ -n "$ADDR" ] || { echo "cluster.sh: $name printed no ready line" >&2; return 1; }
  "$bin/grailctl" health "$ADDR" >/dev/null
  echo "$(tr 'a-z-' 'A-Z_' <<<"$name")_METRICS=$METRICS" >>"$state/cluster.env"
  targets+=("{\"targets\": [\"$METRICS\"], \"labels\": {\"service\": \"${name%%-*}\", \"name\": \"$name\"}}")
  echo "cluster: $name grpc=$ADDR metrics=$METRICS"
}

# Copies deploy/prometheus to STATE_DIR/prometheus, writes the scrape targets, starts
# prometheus and waits until it answers.
start_prometheus() {
  local dir="$state/prometheus"
  rm -rf "$dir"; mkdir -p "$dir/targets"
  cp -r "$root/deploy/prometheus/prometheus.yml" "$root/deploy/prometheus/rules" "$dir/"
  (IFS=,; echo "[${targets[*]}]") >"$dir/targets/grail.json"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
      --web.listen-address="127.0.0.1:$prometheus_port" >"$state/prometheus.log" 2>&1 &
  echo $! >>"$state/pids"
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null \
      || { echo "cluster.sh: prometheus did not start; see $state/prometheus.log" >&2; return 1; }
  echo "PROMETHEUS=http://127.0.0.1:$prometheus_port" >>"$state/cluster.env"
  echo "cluster: prometheus http://127.0.0.1:$prometheus_port (targets: $dir/targets/grail.json)"
}

targets=()
case $cmd in
  start)
    mkdir -p "$state"
    stop_all
    : >"$state/cluster.env"
    trap 'stop_all' ERR
    actor_addrs=()
    for i in $(seq 1 "$actors"); do
      start_service "actor-$i" grail-actor --threads="$threads"; actor_addrs+=("$ADDR")
    done
    start_service reward grail-reward --data_root="$PWD"; reward=$ADDR
    start_service reference grail-reference --threads="$learner_threads"; reference=$ADDR
    if [ "$learner_ranks" -le 1 ]; then
      start_service learner grail-learner --threads="$learner_threads" --data_root="$PWD"; learner=$ADDR
    else
      # The ranks rendezvous before serving, so all start before any is awaited.
      master_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      rank_pids=()
      for r in $(seq 0 $((learner_ranks - 1))); do
        launch_service "learner-$r" grail-learner --threads="$learner_threads" --data_root="$PWD" \
            --rank="$r" --world_size="$learner_ranks" --master_addr=127.0.0.1 --master_port="$master_port"
        rank_pids+=("$LAUNCHED")
      done
      learner_addrs=()
      for r in $(seq 0 $((learner_ranks - 1))); do
        await_service "learner-$r" "${rank_pids[$r]}"; learner_addrs+=("$ADDR")
      done
      learner=$(IFS=,; echo "${learner_addrs[*]}")
    fi
    start_service coordinator grail-coordinator --actors="$(IFS=,; echo "${actor_addrs[*]}")" \
        --reward="$reward" --reference="$reference" --learner="$learner" --data_root="$PWD" \
        --run_store="$state/grail-coordinator.sqlite"
    echo "COORDINATOR=$ADDR" >>"$state/cluster.env"
    if [ -n "$prometheus_port" ]; then
      start_prometheus
    fi
    trap - ERR
    ;;
  stop)
    stop_all
    echo "cluster: stopped"
    ;;
  *) usage ;;
esac

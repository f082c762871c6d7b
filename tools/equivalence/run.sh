#!/usr/bin/env bash
# Runs the equivalence specs in this folder on a local cluster built from BIN_DIR and writes
# each run's step reports as text (timing metrics removed) to OUT_DIR/<spec>.txt. Two trees
# that give the same files behave the same on these runs (issue 11's "no behaviour change"
# check: run it with the binaries before and after a refactor and diff the folders).
#
#   tools/equivalence/run.sh BIN_DIR OUT_DIR
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,8p' "$0"; exit 2; }
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(cd "$1" && pwd)"; out=$2
mkdir -p "$out"; out="$(cd "$out" && pwd)"
state=$(mktemp -d /tmp/grail-equivalence.XXXXXX)
trap '"$root/deploy/local/cluster.sh" stop "$state" >/dev/null 2>&1 || true' EXIT
# The learner and coordinator keep their data (checkpoints, run store) in the state folder.
(cd "$state" && "$root/deploy/local/cluster.sh" start "$state" --bin="$bin" >/dev/null)
# shellcheck disable=SC1091
source "$state/cluster.env"
for spec in "$root"/tools/equivalence/*.yaml; do
  name=$(basename "$spec" .yaml)
  run=$("$bin/grailctl" --coordinator="$COORDINATOR" submit "$spec")
  "$bin/grailctl" --coordinator="$COORDINATOR" watch "$run" >"$out/$name.watch" || true
  echo "$name: $(tail -n1 "$out/$name.watch")"
done
"$root/deploy/local/cluster.sh" stop "$state" >/dev/null
python3 - "$state/grail-coordinator.sqlite" "$root" "$out" <<'PY'
import re, sqlite3, subprocess, sys
db, root, out = sys.argv[1:]
con = sqlite3.connect(db)
names = {}
for run_id, blob in con.execute("SELECT run_id, run FROM runs ORDER BY run_id"):
    text = subprocess.run(["protoc", "-I", root, "--decode=grail.v1.Run",
                           "proto/grail/v1/coordinator.proto"], input=blob, capture_output=True, check=True).stdout.decode()
    names[run_id] = re.search(r'name: "equivalence-([^"]+)"', text).group(1)
timing = re.compile(r'metrics \{\n\s+key: "(time_[a-z_]+|tokens_per_second|wall_seconds)"\n\s+value: [^\n]+\n\s*\}\n')
for run_id, name in names.items():
    with open(f"{out}/{name}.txt", "w") as f:
        for idx, blob in con.execute("SELECT idx, report FROM reports WHERE run_id=? ORDER BY idx", (run_id,)):
            text = subprocess.run(["protoc", "-I", root, "--decode=grail.v1.StepReport",
                                   "proto/grail/v1/coordinator.proto"], input=blob, capture_output=True,
                                  check=True).stdout.decode()
            f.write(f"# report {idx}\n" + timing.sub("", text))
PY
ls "$out"

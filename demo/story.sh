#!/usr/bin/env bash
# The demo story on the local platform: first deploy, a healthy change, a broken deploy that
# rolls back by itself and says why, then status, history and `why`. Run by `make demo`; cleans
# up after itself.
set -uo pipefail
cd "$(dirname "$0")/.."
SD=".venv/bin/safedeploy"
MANIFEST=manifests/demo.yaml
export SAFEDEPLOY_STATE_DIR="$PWD/demo/.safedeploy"
rm -rf "$SAFEDEPLOY_STATE_DIR"
mkdir -p "$SAFEDEPLOY_STATE_DIR/secrets"
# The local secret source: one file per secret. The value never appears in any output.
printf 'demo-signing-key-%s' "$RANDOM$RANDOM" > "$SAFEDEPLOY_STATE_DIR/secrets/session-signing-key"

cleanup() {
  .venv/bin/python - <<'PY'
import os
from pathlib import Path
from safedeploy.providers.local import LocalProvider
state = Path(os.environ["SAFEDEPLOY_STATE_DIR"])
LocalProvider("demo-api", state, Path("manifests").resolve(), os.environ).stop_all()
print("demo: stopped the demo's processes")
PY
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; echo "(exit code $?)"; }

step "1. Plan the first deploy: everything is new" \
  $SD plan $MANIFEST --var GREETING=hello --var BREAK_HEALTH=0
step "2. Deploy it: start, probe /health, serve" \
  $SD deploy $MANIFEST --var GREETING=hello --var BREAK_HEALTH=0 --yes

printf '\n\033[1m== Meanwhile someone sets a variable by hand, outside safedeploy\033[0m\n'
.venv/bin/python - <<'PY'
import json, os
from pathlib import Path
path = Path(os.environ["SAFEDEPLOY_STATE_DIR"]) / "demo-api" / "service.json"
state = json.loads(path.read_text())
state["revisions"][state["active"]]["env"]["FEATURE_FLAGS_URL"] = "https://flags.example.com"
path.write_text(json.dumps(state, indent=2))
print("FEATURE_FLAGS_URL=https://flags.example.com added to the live service")
PY

step "3. A healthy change: the greeting changes, FEATURE_FLAGS_URL is kept" \
  $SD deploy $MANIFEST --var GREETING=bonjour --var BREAK_HEALTH=0 --yes
step "4. A broken deploy: the app now needs PAYMENTS_API_KEY, which nobody set; it rolls back by itself (exit 3) and says why" \
  $SD deploy $MANIFEST --env payments --var GREETING=bonjour --var BREAK_HEALTH=0 --yes
step "5. The previous revision serves again" \
  $SD status $MANIFEST
step "6. Every release, with its outcome" \
  $SD history $MANIFEST
step "7. Later, anyone can ask why the last failed release failed" \
  $SD why $MANIFEST

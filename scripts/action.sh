#!/usr/bin/env bash
# The shell half of action.yml: run `safedeploy plan` or `deploy` with the action's inputs and
# write the step's outputs. Inputs arrive as INPUT_* variables, so a test can run this file on a
# laptop with fake GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files. safedeploy itself appends its
# markdown to GITHUB_STEP_SUMMARY.
set -uo pipefail

mode="${INPUT_MODE:-plan}"
plan_path="${INPUT_PLAN_PATH:-safedeploy-plan.json}"
base="${plan_path%.json}"
# Words split on spaces and new lines; globs such as manifests/*.yaml expand here.
# shellcheck disable=SC2206
manifests=(${INPUT_MANIFESTS:-})
if [[ ${#manifests[@]} -eq 0 ]]; then
  echo "error: the manifests input is empty" >&2
  exit 1
fi

args=(--parallel "${INPUT_PARALLEL:-4}")
if [[ -n "${INPUT_ENV:-}" ]]; then
  args+=(--env "$INPUT_ENV")
fi
# One NAME=VALUE a line; blank lines and # comments are skipped, each line trimmed (a stray
# carriage return from a Windows editor must not end up in a value).
while IFS= read -r line; do
  line="${line%$'\r'}"
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line%"${line##*[![:space:]]}"}"
  if [[ -n "$line" && "$line" != \#* ]]; then
    args+=(--var "$line")
  fi
done <<< "${INPUT_VARS:-}"

case "$mode" in
  plan)
    comment="$base.md"
    results=""
    safedeploy plan "${manifests[@]}" "${args[@]}" \
      --format markdown --out "$plan_path" --detailed-exitcode > "$comment"
    code=$?
    cat "$comment"
    if [[ ! -s "$comment" ]]; then
      comment=""  # no plan to show: the error is in the log
    fi
    changed=$([[ $code -eq 2 ]] && echo true || echo false)
    ;;
  deploy)
    comment=""
    if [[ -f "$plan_path" ]]; then
      args+=(--plan "$plan_path")
    else
      echo "::notice::no saved plan at $plan_path: planning and deploying at once"
    fi
    results="$base.results.json"
    safedeploy deploy "${manifests[@]}" "${args[@]}" --yes --format json > "$results"
    code=$?
    # Changed: some service now serves a new revision.
    changed=$(grep -q '"outcome": "succeeded"' "$results" && echo true || echo false)
    ;;
  *)
    echo "error: mode must be plan or deploy, not '$mode'" >&2
    exit 1
    ;;
esac

{
  echo "changed=$changed"
  echo "exit-code=$code"
  echo "plan-path=$plan_path"
  echo "comment-path=$comment"
  echo "results-path=$results"
} >> "${GITHUB_OUTPUT:-/dev/null}"

# A plan with changes exits 2: that is the news, not a failure.
if [[ "$mode" == plan && $code -eq 2 ]]; then
  exit 0
fi
exit "$code"

#!/usr/bin/env bash
# Submit a data-generation job to a Ray cluster:
#
#   RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh INPUT... --store URL [hop-data generate options]
#
# wraps `ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml
# -- python -m hop_data.service ...`: the checkout (this repository, minus the
# runtime env's excludes) is uploaded and the service runs on the cluster,
# joining it (the job's RAY_ADDRESS). INPUTs and --store must be paths every
# node sees (a shared filesystem) or URLs (e.g. s3://bucket/hop/store.zarr).
#
# RAY_ADDRESS (or RAY_API_SERVER_ADDRESS): the cluster's dashboard / job API;
#   keep it on loopback and reach a remote head through an SSH tunnel
#   (`ray dashboard cluster/cluster.yaml`), never by opening port 8265.
# Token authentication: the cluster's token must be known here, in
#   ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN, with RAY_AUTH_MODE=token.
# HOP_RUNTIME_ENV   another runtime env YAML (default cluster/runtime_env.yaml)
# HOP_JOB_PYTHON    the python on the cluster (default: python)
# HOP_SUBMIT_ARGS   more `ray job submit` options, e.g. "--no-wait --submission-id hop-corpus-1"
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
RAY_BIN="${RAY_BIN:-ray}"
if ! command -v "$RAY_BIN" >/dev/null; then
    RAY_BIN="$(dirname "$0")/../.venv/bin/ray"
fi
ADDRESS="${RAY_API_SERVER_ADDRESS:-${RAY_ADDRESS:-http://127.0.0.1:8265}}"
RUNTIME_ENV="${HOP_RUNTIME_ENV:-cluster/runtime_env.yaml}"
# shellcheck disable=SC2086  # HOP_SUBMIT_ARGS is a list of options on purpose
exec "$RAY_BIN" job submit --address "$ADDRESS" --working-dir . --runtime-env "$RUNTIME_ENV" \
    ${HOP_SUBMIT_ARGS:-} -- "${HOP_JOB_PYTHON:-python}" -m hop_data.service "$@"

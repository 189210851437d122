#!/bin/sh
# The smoke test `cargo xtask deploy --env <env> --smoke scripts/smoke.sh` runs after
# `wrangler deploy`. A non-zero exit makes the xtask roll the Worker back to the version
# that was live, then the database to its restore point. It gets XTASK_ENV,
# XTASK_WORKER_VERSION, XTASK_CONFIG, XTASK_D1_BINDING, XTASK_WRANGLER_FLAGS and the
# project's wrangler first on PATH (docs/deploy.md).
set -eu

# 1. The version just deployed is the one serving all traffic.
wrangler deployments status --env "$XTASK_ENV" --config "$XTASK_CONFIG" \
  | grep -q "(100%) $XTASK_WORKER_VERSION" \
  || { echo "smoke: $XTASK_WORKER_VERSION is not serving 100% of $XTASK_ENV" >&2; exit 1; }

# 2. The tables the Worker's routes read are there, in the database it is bound to.
# shellcheck disable=SC2086 # the flags are meant to split
wrangler d1 execute "$XTASK_D1_BINDING" $XTASK_WRANGLER_FLAGS --config "$XTASK_CONFIG" --json \
  --command "SELECT count(*) AS n FROM products WHERE stock > 0" > /dev/null \
  || { echo "smoke: the products query failed on $XTASK_ENV" >&2; exit 1; }

# 3. Where the Worker can be reached (SMOKE_URL, e.g. its workers.dev address), its
#    health route answers with the newest migration.
if [ -n "${SMOKE_URL:-}" ]; then
  curl -fsS "$SMOKE_URL/health" | grep -q '"ok":true' \
    || { echo "smoke: $SMOKE_URL/health did not answer ok" >&2; exit 1; }
fi
echo "smoke: $XTASK_ENV serves $XTASK_WORKER_VERSION"

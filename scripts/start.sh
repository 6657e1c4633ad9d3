#!/usr/bin/env bash
# npm start [-- --fresh]: install what a fresh clone lacks, build, and run the local stack (scripts/stack.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
export METADATA_SERVER_DETECTION=none
# The gateway runs compiled (dist/); the reference EKM package (@openekm/reference-ekm) is TypeScript source,
# loaded through tsx.
exec node --enable-source-maps --import tsx dist/scripts/stack.js "$@"

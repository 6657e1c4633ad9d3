#!/usr/bin/env bash
# npm test: install what a fresh clone lacks, type-check, lint and format-check, then run every test against a
# real Firestore emulator (and the reference EKM, started by the tests that need it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
echo "== type-check (tsc)"
npx tsc -p tsconfig.json --noEmit
echo "== lint and format (biome)"
npx biome check .
echo "== layering (dependency-cruiser) and dead code (knip)"
npx depcruise --no-progress shared functions reference-ekm scripts test bench firebase/emulators.ts
npx knip --no-progress
echo "== tests (node:test, Firestore emulator)"
export METADATA_SERVER_DETECTION=none
exec npx tsx scripts/run-tests.ts "$@"

#!/usr/bin/env bash
# npm test: install what a fresh clone lacks, type-check, lint and format-check, then run every test against a
# real Firestore emulator (and the reference EKM, started by the tests that need it).
#
# What npm can install is installed on first use (and again when a lock file changes): the root packages and the
# Firebase emulator tooling (firebase/, for test/firebase/). System packages some tests need — SoftHSM2 and
# Chromium — are installed with apt-get when this runs as root; otherwise their tests are skipped, each with one
# loud line naming the package and the command that installs it. With CI=true nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci when node_modules is missing or older than the lock file.
ensure_npm() {
  local dir=$1
  shift
  if [ ! -e "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "== installing $dir packages (npm ci $*)"
    npm ci --no-audit --no-fund "$@"
  fi
}
ensure_npm .
# firebase-tools (~280 MB) apart from the root package; --ignore-scripts skips re2's native build, which the
# emulator does not need.
ensure_npm firebase --ignore-scripts --prefix firebase

missing=()
softhsm=(/usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so)
found=no
for f in "${softhsm[@]}"; do [ -e "$f" ] && found=yes; done
[ $found = yes ] || missing+=(softhsm2)
if [ -z "${OPENEKM_CHROMIUM:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  missing+=(chromium fonts-liberation)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]} (apt-get)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      echo "!! apt-get could not install ${missing[*]}: the tests that need them are reported below" >&2
    fi
  fi
fi

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

#!/usr/bin/env bash
# Issue 33's "count it": the figures of the code's shape at a revision (default: the working tree).
# Usage: scripts/house-count.sh [REV]   — prints one table; generated code (*.pb.swift, *.grpc.swift,
# Sources/*/Generated) is left out of every figure.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
tree=$(mktemp -d); trap 'rm -rf "$tree"' EXIT
if [ $# -ge 1 ]; then
  paths=$(git -C "$repo" ls-tree --name-only "$rev" Sources Tests Fuzz Package.swift)
  git -C "$repo" archive "$rev" $paths | tar -x -C "$tree"
else
  (cd "$repo" && git ls-files -co --exclude-standard Sources Tests Fuzz Package.swift | tar -cf - -T -) | tar -x -C "$tree"
fi
# Generated code is not anybody's writing: out of every figure.
find "$tree" \( -name '*.pb.swift' -o -name '*.grpc.swift' -o -path '*/Generated/*' \) -delete
cd "$tree"
handwritten() { find "$@" -name '*.swift' ! -name '*.pb.swift' ! -name '*.grpc.swift' ! -path '*/Generated/*' 2>/dev/null; }

echo "## lines per module (handwritten Swift), largest file"
for d in Sources/*/; do
  t=$(basename "$d")
  files=$(handwritten "$d")
  [ -z "$files" ] && continue
  total=$(cat $files | wc -l)
  largest=$(wc -l $files | grep -v ' total$' | sort -n | tail -1 | awk '{print $1" "$2}')
  printf '%-18s %6d   %s\n' "$t" "$total" "$largest"
done
echo "all: $(handwritten Sources | xargs cat | wc -l) lines in $(handwritten Sources | wc -l) files"
echo
echo "## unstructured tasks (Task { / Task.detached / Task(priority:) in Sources)"
handwritten Sources | xargs grep -nE '(^|[^A-Za-z.])Task(\.detached)? *(\(priority:[^)]*\))? *\{' | wc -l
echo
echo "## blocking mechanisms in Sources (kind: sites)"
for k in DispatchSemaphore NIOThreadPool 'Thread(' 'Thread {' NSCondition ConditionLock DispatchQueue pthread_create BlockingExecutor ClientThread BlockingLane; do
  n=$(handwritten Sources | xargs grep -F -- "$k" | wc -l || true)
  [ "$n" -gt 0 ] && printf '%-18s %d\n' "$k" "$n"
done
echo
echo "## public / package declarations (handwritten Sources)"
modifiers='^[[:space:]]*((@[^[:space:]]+|static|final|override|nonisolated|mutating|convenience|required|indirect|lazy|class)[[:space:]]+)*'
echo "public:  $(handwritten Sources | xargs grep -E "${modifiers}public[[:space:]]" | wc -l)"
echo "package: $(handwritten Sources | xargs grep -E "${modifiers}package[[:space:]]" | wc -l)"
echo
echo "## duplicates pairs (Sources, Tests, Fuzz; generated code left out)"
duplicates --repo "$tree" --most 1 --seconds 300 | head -1

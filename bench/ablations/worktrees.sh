#!/bin/sh
# Build the measurement-only checkouts of issue 22's step-by-step comparison (docs/decisions.md,
# "Each step of issue 22, measured"): one git worktree per diff in this directory, under DIR
# (default /tmp/ablations), each with this checkout's .venv linked in, for bench.paired.
#
#   22-old-*.diff apply to 5889583 (the code before issue 22), cumulatively: each holds the ones
#   before it.  22-new-*.diff apply to ac3b566 (the code they were measured on); each stands
#   alone.  None of them is product code: they take guarantees out, or put removed pieces back.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
dir=${1:-/tmp/ablations}
mkdir -p "$dir"

add() {  # add NAME COMMIT [DIFF]
    git -C "$repo" worktree add -q --detach "$dir/$1" "$2"
    ln -s "$repo/.venv" "$dir/$1/.venv"
    if [ $# -eq 3 ]; then git -C "$dir/$1" apply "$here/$3"; fi
    echo "$dir/$1"
}

add before 5889583
for diff in "$here"/22-old-*.diff "$here"/22-new-*.diff; do
    name=$(basename "$diff" .diff)
    case $name in 22-old-*) base=5889583 ;; *) base=ac3b566 ;; esac
    add "${name#22-}" "$base" "$(basename "$diff")"
done

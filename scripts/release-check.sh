#!/usr/bin/env bash
# release-check.sh proves that a release is reproducible: it builds the release files twice, in
# two directories, from the same commit, checks that every file is byte-for-byte identical, and
# that each SHA256SUMS verifies (sha256sum -c). The second build comes mostly from Go's build
# cache, but the linker, the zip and the checksums all run again.
#
# usage: scripts/release-check.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export VERSION=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
export COMMIT=${COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

"$root/scripts/release.sh" "$work/a"
"$root/scripts/release.sh" "$work/b"

status=0
for f in "$work"/a/*; do
	name=$(basename "$f")
	if ! cmp -s "$f" "$work/b/$name"; then
		echo "release-check.sh: $name differs between two builds of the same commit" >&2
		status=1
	fi
done
[[ $(ls "$work/a") == "$(ls "$work/b")" ]] || { echo "release-check.sh: the two builds hold different files" >&2; status=1; }
for d in a b; do
	(cd "$work/$d" && sha256sum --quiet -c SHA256SUMS) || { echo "release-check.sh: SHA256SUMS does not verify ($d)" >&2; status=1; }
done
((status == 0)) && echo "release-check.sh: two builds of $VERSION ($COMMIT) are identical; checksums verify" >&2
exit "$status"

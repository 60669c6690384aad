#!/usr/bin/env bash
# release.sh builds what a release publishes, into one directory (default dist/):
#
#   entra-revoke.zip         the deployment package (scripts/package.sh): deploy it as it is
#   handler-linux-amd64      the operator CLI (and server) for each platform; the same binary as
#   handler-linux-arm64      the handler inside the zip for linux/amd64
#   handler-darwin-arm64
#   handler-windows-amd64.exe
#   SHA256SUMS               sha256sum's format: verify with `sha256sum -c SHA256SUMS`
#
# Every file is reproducible (scripts/build.sh, scripts/package.sh): scripts/release-check.sh
# builds twice and compares the bytes.
#
# usage: scripts/release.sh [DIR]
# VERSION, COMMIT and SOURCE_DATE_EPOCH may be set in the environment (see build.sh, package.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-$root/dist}
case $dir in
/*) ;;
*) dir=$PWD/$dir ;;
esac
export VERSION=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
export COMMIT=${COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

# Only the files of a release, so that SHA256SUMS never lists a leftover from another build.
mkdir -p "$dir"
rm -f "$dir"/entra-revoke.zip "$dir"/handler-* "$dir"/SHA256SUMS

targets=(linux/amd64 linux/arm64 darwin/arm64 windows/amd64)
files=()
for t in "${targets[@]}"; do
	goos=${t%/*} goarch=${t#*/}
	name=handler-$goos-$goarch
	[[ $goos == windows ]] && name+=.exe
	"$root/scripts/build.sh" "$goos" "$goarch" "$dir/$name"
	files+=("$name")
done
HANDLER=$dir/handler-linux-amd64 "$root/scripts/package.sh" "$dir/entra-revoke.zip"
files+=(entra-revoke.zip)

cd "$dir"
mapfile -t files < <(printf '%s\n' "${files[@]}" | LC_ALL=C sort)
sha256sum -- "${files[@]}" >SHA256SUMS
sha256sum --quiet -c SHA256SUMS
echo "release.sh: $VERSION ($COMMIT) in $dir:" >&2
cat SHA256SUMS >&2

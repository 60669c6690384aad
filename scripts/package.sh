#!/usr/bin/env bash
# package.sh builds the deployment package the Azure Functions host expects and zips it:
#
#   handler                    the custom handler for linux/amd64, built with CGO_ENABLED=0 so that
#                              it is static and needs nothing from the Functions image's C library
#   host.json
#   <function>/function.json   one folder per function (every top-level folder with a function.json)
#
# The handler keeps its executable bit in the zip: the host starts it directly, and a handler
# without x permission fails to start on Linux. local.settings.json is never packaged.
#
# usage: scripts/package.sh [OUTPUT.zip]     (default dist/entra-revoke.zip)
# VERSION and COMMIT may be set in the environment; they default to git describe / rev-parse.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/dist/entra-revoke.zip}
case $out in
/*) ;;
*) out=$PWD/$out ;;
esac

version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

[[ -f $root/host.json ]] || { echo "package.sh: $root/host.json is missing" >&2; exit 1; }

echo "package.sh: building handler $version ($commit) for linux/amd64" >&2
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
	-ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$stage/handler" .)
chmod 0755 "$stage/handler"

cp "$root/host.json" "$stage/host.json"
functions=()
for f in "$root"/*/function.json; do
	[[ -f $f ]] || continue
	name=$(basename "$(dirname "$f")")
	mkdir -p "$stage/$name"
	cp "$f" "$stage/$name/function.json"
	functions+=("$name")
done
((${#functions[@]})) || { echo "package.sh: no <function>/function.json under $root" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
rm -f "$out"
entries=(handler host.json "${functions[@]}")
if command -v zip >/dev/null 2>&1; then
	# -X leaves out extra timestamps and uid/gid; the Unix mode, which carries the x bit, stays.
	(cd "$stage" && zip -q -X -r "$out" "${entries[@]}")
else
	# Python's zipfile records each file's Unix mode as well.
	(cd "$stage" && python3 -m zipfile -c "$out" "${entries[@]}")
fi
echo "package.sh: wrote $out (functions: ${functions[*]})" >&2

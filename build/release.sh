#!/usr/bin/env bash
# Makes the release artifacts of vethtrace (issue 18): per platform, the Native AOT executable in a tarball with its
# SHA-256 checksum, the native symbols in a second tarball, and the .NET tool packages (build/pack-tool.sh).
#   out/release/vethtrace-VERSION-RID.tar.gz           vethtrace-VERSION-RID/{vethtrace, README.md, docs/, completions/vethtrace.bash}
#   out/release/vethtrace-VERSION-RID.tar.gz.sha256    `sha256sum -c` checks it
#   out/release/vethtrace-VERSION-RID-symbols.tar.gz   vethtrace.dbg, for perf and gdb (the executable names it by build-id)
#   out/release/SHA256SUMS                             every file above
#   out/release/nuget/                                 the tool packages: a folder to `dotnet tool install --add-source`
# VERSION is the project's <Version>; the commit is git's HEAD, recorded in the executable (`vethtrace --version`).
# The tree must be clean, so that the commit names the sources (VETHTRACE_RELEASE_DIRTY=1 overrides, for a try).
# Needs: the .NET SDK, clang; for linux-arm64 on an x64 host: gcc-aarch64-linux-gnu libc6-dev-arm64-cross.
# Usage: build/release.sh [OUT_DIR [RID...]]   (default out/release; RIDs as build/pack-tool.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=$(realpath -m "${1:-out/release}")
shift || true
project=src/VethTrace.Cli

if [[ -n $(git status --porcelain --untracked-files=no) && ${VETHTRACE_RELEASE_DIRTY:-0} != 1 ]]; then
    echo "release.sh: the working tree has uncommitted changes; commit them first (or VETHTRACE_RELEASE_DIRTY=1)" >&2
    exit 1
fi
version=$(dotnet msbuild "$project" -getProperty:Version -nologo)
commit=$(git rev-parse HEAD)
# Every file in the tarballs gets the commit's time, owner 0 and a fixed order. (The tarball is still not
# reproducible bit for bit: two Native AOT builds of one commit differ, same size, other bytes and build-id.)
stamp=$(git log -1 --format=%ct HEAD)
echo "vethtrace $version, commit $commit"

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/vethtrace-release.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The tool packages first: pack-tool.sh knows which RIDs this host can link, and the tarballs follow its choice.
bash build/pack-tool.sh "$out/nuget" "$@"
mapfile -t rids < <(ls "$out/nuget" | sed -n "s/^vethtrace\.\(.*\)\.$version\.nupkg$/\1/p")

for rid in "${rids[@]}"; do
    name=vethtrace-$version-$rid
    # ContinuousIntegrationBuild: source paths in the executable are mapped to /_/, so where the clone sits does not matter.
    dotnet publish "$project" -c Release -r "$rid" -o "$work/$rid" -p:ContinuousIntegrationBuild=true -nologo -v quiet -clp:ErrorsOnly
    mkdir -p "$work/$name/completions"
    cp "$work/$rid/vethtrace" "$work/$name/"
    cp README.md "$work/$name/"
    cp -r docs "$work/$name/"   # the README links into docs/
    cp completions/vethtrace.bash "$work/$name/completions/"
    tar_options=(--sort=name --mtime="@$stamp" --owner=0 --group=0 --numeric-owner)
    tar -C "$work" "${tar_options[@]}" -cf - "$name" | gzip -n9 >"$out/$name.tar.gz"
    tar -C "$work/$rid" "${tar_options[@]}" -cf - vethtrace.dbg | gzip -n9 >"$out/$name-symbols.tar.gz"
    (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
done
(cd "$out" && sha256sum ./*.tar.gz | sed 's| \./| |' >SHA256SUMS)
echo
ls -l "$out" "$out/nuget"
echo
cat "$out/SHA256SUMS"

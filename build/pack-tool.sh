#!/usr/bin/env bash
# Packs vethtrace as a .NET tool into a folder that serves as a NuGet feed (issue 18):
#   vethtrace.VERSION.nupkg       the pointer package: names the platforms, carries no code;
#   vethtrace.RID.VERSION.nupkg   one per platform, with the Native AOT executable alone.
# `dotnet tool install` and `dotnet dnx` read the pointer package and fetch the package of the machine's RID.
# RIDs: linux-x64 and linux-arm64 by default. A RID other than the host's needs a cross linker and C library
# (linux-arm64 on a Debian x64 host: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross); without them that
# RID is left out, saying so, unless it was asked for by name.
# Usage: build/pack-tool.sh [OUT_DIR [RID...]]   (default OUT_DIR: out/tool)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=$(realpath -m "${1:-out/tool}")
shift || true
explicit=$#
rids=("$@")
[[ ${#rids[@]} -gt 0 ]] || rids=(linux-x64 linux-arm64)
host_rid=$(dotnet --info | sed -n 's/^ *RID: *//p')
project=src/VethTrace.Cli
mkdir -p "$out"
work=$(mktemp -d /tmp/vethtrace-pack.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Whether clang can link for RID on this host: the host's own RID always; linux-arm64 with Debian's cross packages.
can_link() {
    case $1 in
        "$host_rid") return 0 ;;
        linux-arm64) command -v aarch64-linux-gnu-ld.bfd >/dev/null && [[ -f /usr/aarch64-linux-gnu/lib/crti.o ]] ;;
        linux-x64) command -v x86_64-linux-gnu-ld.bfd >/dev/null && [[ -f /usr/x86_64-linux-gnu/lib/crti.o ]] ;;
        *) return 1 ;;
    esac
}

dotnet pack "$project" -c Release -o "$out" -nologo -v quiet -clp:ErrorsOnly
for rid in "${rids[@]}"; do
    if ! can_link "$rid"; then
        if [[ $explicit -gt 0 ]]; then
            echo "pack-tool.sh: no linker for $rid on this $host_rid host (see the header of this script)" >&2
            exit 1
        fi
        echo "pack-tool.sh: $rid left out: no cross linker and C library for it on this $host_rid host" >&2
        continue
    fi
    # A publish folder of its own: pack takes every file in it, and an earlier publish may have left others.
    dotnet pack "$project" -c Release -r "$rid" -o "$out" -p:PublishDir="$work/$rid/" -nologo -v quiet -clp:ErrorsOnly
done
ls -l "$out"/*.nupkg

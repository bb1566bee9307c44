#!/usr/bin/env bash
# Runs every VethTrace test on this machine, from a fresh clone:
#   1. installs what the tests need (Debian packages: tshark, tcpdump, docker.io, …) — tests/lab/install.sh;
#   2. expands the compressed bulk capture — captures/expand.sh;
#   3. builds the whole solution in Release (the benchmarks included, so CI keeps them compiling);
#   4. brings the Docker lab up (containerd, dockerd, two busybox containers, the `upstream` namespace),
#      unless VETHTRACE_SKIP_LAB=1;
#   5. runs the xunit suite, a dry run of the parser benchmarks, the tool install (packed with Native AOT into a
#      temporary feed, installed with `dotnet tool install --tool-path`, run on a shipped capture) and short fuzz runs
#      (tests/fuzz/run.sh), then takes the lab down again;
#   6. prints "N passed, N failed" and exits non-zero when a test failed or a step broke.
# Must run as root (it installs packages, starts dockerd, creates namespaces): run by a user who is not root, it runs
# itself again through sudo, keeping PATH (where dotnet is) and VETHTRACE_SKIP_LAB; without sudo it says so and stops.
# So `tests/run.sh` is the one command for both (issue 18), and `sudo tests/run.sh` works too.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

step() { printf '\n== %s\n' "$*"; }
fail() { echo "tests/run.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || fail "run as root: the tests install packages and build a Docker lab (no sudo here)"
    echo "tests/run.sh: not root; running it again with sudo (the tests install packages and build a Docker lab)" >&2
    exec sudo -- env "PATH=$PATH" ${VETHTRACE_SKIP_LAB:+"VETHTRACE_SKIP_LAB=$VETHTRACE_SKIP_LAB"} bash "$root/tests/run.sh" "$@"
fi

step "install test dependencies"
bash tests/lab/install.sh || fail "tests/lab/install.sh failed"

step "expand captures"
bash captures/expand.sh || fail "captures/expand.sh failed"

step "build (Release)"
dotnet build -c Release VethTrace.sln -nologo -clp:ErrorsOnly || fail "build failed"

lab_up=0
if [[ ${VETHTRACE_SKIP_LAB:-0} != 1 ]]; then
    step "docker lab up"
    if bash tests/lab/lab-up.sh --skip-install; then
        lab_up=1
        export VETHTRACE_LAB_ENV=/run/vethtrace-lab/env
    else
        echo "tests/run.sh: the Docker lab did not come up; the lab tests will fail" >&2
    fi
fi
cleanup() { if [[ $lab_up == 1 ]]; then step "docker lab down"; bash tests/lab/lab-down.sh || true; fi; }
trap cleanup EXIT

step "test"
results=$(mktemp -d /tmp/vethtrace-tests.XXXXXX)
filter=()
[[ ${VETHTRACE_SKIP_LAB:-0} == 1 ]] && filter=(--filter "Category!=Lab")
dotnet test tests/VethTrace.Tests -c Release --no-build -nologo "${filter[@]}" \
    --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory "$results"
rc=$?

trx="$results/results.trx"
if [[ -f $trx ]]; then
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
    passed=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
    failed=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
    errors=$(sed -n 's/.* error="\([0-9]*\)".*/\1/p' <<<"$counters")
    failed=$(( ${failed:-0} + ${errors:-0} ))
else
    passed=0
    failed=1
fi
if [[ $rc != 0 && $failed == 0 ]]; then failed=1; fi

# A dry, in-process run of the parser benchmarks: proves the suite still runs on the shipped captures
# (its setup checks that VethTrace and PacketDotNet read equal fields). Counted as one test.
step "benchmark smoke run"
if dotnet run -c Release --no-build --project benchmarks/VethTrace.Benchmarks -- --filter '*ParserBenchmarks*' --job dry --inProcess >"$results/bench.log" 2>&1; then
    passed=$(( ${passed:-0} + 1 ))
else
    tail -30 "$results/bench.log"
    failed=$(( failed + 1 ))
    rc=1
fi

# The install path users take (issue 18): the tool packed with its Native AOT executable for this machine into a
# temporary feed (build/pack-tool.sh), installed with `dotnet tool install --tool-path` from that feed alone, and the
# installed vethtrace replaying a shipped capture: it must be the AOT executable (an ELF file, no vethtrace.dll beside
# it) and print exactly the JIT build's report, table and JSON. Counted as one test; about 1-2 minutes, the AOT
# compilation most of it.
step "tool install (Native AOT)"
tool=$(mktemp -d /tmp/vethtrace-tool.XXXXXX)
# A subshell with set -e, run as a command of its own: as the condition of an if, set -e would be ignored inside it.
(
    set -e
    rid=$(dotnet --info | sed -n 's/^ *RID: *//p')
    bash build/pack-tool.sh "$tool/feed" "$rid"
    # Only the local feed: offline, and never a package of the same name from elsewhere.
    printf '<configuration><packageSources><clear/><add key="vethtrace" value="%s"/></packageSources></configuration>\n' "$tool/feed" >"$tool/nuget.config"
    dotnet tool install vethtrace --tool-path "$tool/bin" --configfile "$tool/nuget.config"
    installed=$(readlink -f "$tool/bin/vethtrace")
    [[ $(file -b "$installed") == "ELF 64-bit"* ]]
    shopt -s nullglob
    managed=("$(dirname "$installed")"/*.dll)
    [[ ${#managed[@]} == 0 ]] || { echo "the installed tool is not the AOT executable: ${managed[*]}" >&2; exit 1; }
    jit=(dotnet src/VethTrace.Cli/bin/Release/net10.0/vethtrace.dll)
    for format in table json; do
        "$tool/bin/vethtrace" replay captures/masquerade-multi.pcapng --format $format >"$tool/installed.$format"
        "${jit[@]}" replay captures/masquerade-multi.pcapng --format $format >"$tool/jit.$format"
        cmp "$tool/installed.$format" "$tool/jit.$format"
    done
    "$tool/bin/vethtrace" --version
    [[ $("$tool/bin/vethtrace" --version) == $("${jit[@]}" --version) ]]
) >"$results/tool.log" 2>&1
if [[ $? == 0 ]]; then
    passed=$(( ${passed:-0} + 1 ))
    tail -1 "$results/tool.log"
else
    tail -30 "$results/tool.log"
    failed=$(( failed + 1 ))
    rc=1
fi
rm -rf "$tool"

trap - EXIT
cleanup

# Short fuzz runs (SharpFuzz + AFL++, tests/fuzz/run.sh): a fixed number of executions per target, with a fixed
# AFL seed; a crash or a hang fails the run and is listed with the command that replays it. One test per target.
# replay runs a whole correlation per execution (about a tenth of the readers' rate), so it gets fewer; the four
# take about 2 minutes together, publishing, instrumenting and seeding included.
step "fuzz (short)"
for target in parser pcap pcapng replay; do
    execs=${VETHTRACE_FUZZ_EXECS:-100000}
    [[ $target == replay ]] && execs=${VETHTRACE_FUZZ_REPLAY_EXECS:-30000}
    if bash tests/fuzz/run.sh "$target" "$execs" >"$results/fuzz-$target.log" 2>&1; then
        passed=$(( ${passed:-0} + 1 ))
        tail -1 "$results/fuzz-$target.log"
    else
        tail -30 "$results/fuzz-$target.log"
        failed=$(( failed + 1 ))
        rc=1
    fi
done
echo
echo "${passed:-0} passed, ${failed} failed"
exit $(( rc != 0 || failed != 0 ))

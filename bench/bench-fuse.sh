#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The FUSE export benchmark: fio (libaio, direct=1, iodepth=16) through a loop device
# (losetup --direct-io=on) over
#   plain  a sparse image file on this machine's disk, and
#   lvss   an lvss volume (same disk) served by lvss-fuse-export,
# each case with the same fio job on both, reported as IOPS, MiB/s, the ratio lvss/plain, and CPU
# time per I/O: the I/O path's (fio's, the exporter's, and the kernel threads' and interrupts':
# loop, FUSE, the host filesystem; not unrelated programs') and the exporter's alone, both in
# microseconds per I/O.
#
# Cases, in this order, on one volume (prefilled once with 1 MiB writes, not measured):
#   rand4k      4 KiB random writes, time-based, no snapshot
#   seq1m       1 MiB sequential writes, time-based, no snapshot
#   first4k     after a fresh snapshot: one 4 KiB write into each 64 KiB chunk, in random order
#               (every write copies its chunk first), at most the run time
#   rewrite4k   4 KiB random writes again (every chunk already preserved), time-based
#   first1m     after a fresh snapshot (the previous one deleted): 1 MiB sequential writes once
#               over the volume (every write copies 16 chunks), at most the run time
#   rewrite1m   1 MiB sequential writes again, time-based
# "plain" runs the same jobs without snapshots, so each ratio compares like with like.
#
#   bench/bench-fuse.sh                        the full run (about 2.5 minutes)
#   bench/bench-fuse.sh --runtime 3 --size 256M   a quick one
#   bench/bench-fuse.sh --targets lvss --export-opts "--cache=page"   one setting, lvss only
#
# Options: --runtime S (10), --size SIZE (1G), --dir DIR (/var/tmp; the disk under test),
# --targets "plain lvss", --cases "rand4k seq1m ...", --export-opts "OPTIONS for the exporter",
# --repeat N (each case N times, the median reported; default 1), --persistent (persistent
# snapshots: each copy-on-write waits for a journal commit; default non-persistent, as backups).
# Before each case the script's files are dropped from the host page cache (see evict).
# Environment: LVSS_BENCH_BUILDDIR (default build-bench at the top of the tree), or
# LVSS_ENGINE_BIN and LVSS_FUSE_EXPORT_BIN to use installed binaries. Needs root, fio, python3.
# Everything it makes (exporter, loop devices, mounts, files) goes away on exit, failure or ^C.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runtime=10
size=1G
disk=/var/tmp
targets="plain lvss"
cases="rand4k seq1m first4k rewrite4k first1m rewrite1m"
export_opts=""
repeat=1
snap_kind=

while [ $# -gt 0 ]; do
        case $1 in
        --runtime) runtime=${2:?}; shift ;;
        --size) size=${2:?}; shift ;;
        --dir) disk=${2:?}; shift ;;
        --targets) targets=${2:?}; shift ;;
        --cases) cases=${2:?}; shift ;;
        --export-opts) export_opts=$2; shift ;;
        --repeat) repeat=${2:?}; shift ;;
        --persistent) snap_kind=persistent ;;
        -h|--help) sed -n '4,/^set -e/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
        *) echo "bench-fuse.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        esac
        shift
done

say() { printf '# %s\n' "$*" >&2; }
die() { echo "bench-fuse.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (loop devices and FUSE mounts)"
command -v fio >/dev/null || die "fio is missing: apt-get install fio"
command -v python3 >/dev/null || die "python3 is missing"

# ---- binaries ----
# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
lib_build "$src" || die "cannot build or find the binaries"

# ---- scratch space and cleanup: exactly what this script made ----
work='' loopdev='' exporter_pid='' fuse_mnt=''
cleanup() {
        local rc=$?
        set +e
        [ -n "$loopdev" ] && losetup -d "$loopdev"
        [ -n "$exporter_pid" ] && lib_stop "$exporter_pid"
        [ -n "$fuse_mnt" ] && mountpoint -q "$fuse_mnt" && umount -l "$fuse_mnt"
        [ -n "$work" ] && rm -rf "$work"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "$disk/lvss-bench-fuse.XXXXXX")
bytes=$(numfmt --from=iec "$size")
chunk=65536
hz=$(getconf CLK_TCK)

# Sends one command to the exporter's control socket; prints the reply, fails on "error".
ctl() { lib_ctl "$work/ctl" "$@"; }

# cpu_sample FILE: the CPU of the kernel threads, irqs and the exporter (see lib_cpu_sample).
cpu_sample() { lib_cpu_sample "$1" "${exporter_pid:-0}"; }

# The random-order iolog of first4k: one 4 KiB write at the start of every chunk.
lib_first4k_iolog "$work/first4k.iolog" "$bytes" "$chunk"

# fio_job CASE DEV: the fio arguments of a case.
fio_job() {
        local c=$1 dev=$2
        local common=(--name="$c" --filename="$dev" --ioengine=libaio --direct=1 --iodepth=16
                      --numjobs=1 --group_reporting --output-format=json --size="$bytes")
        case $c in
        rand4k|rewrite4k) echo "${common[@]}" --rw=randwrite --bs=4k --time_based --runtime="$runtime" ;;
        seq1m|rewrite1m) echo "${common[@]}" --rw=write --bs=1M --time_based --runtime="$runtime" ;;
        first4k) echo "${common[@]}" --read_iolog="$work/first4k.iolog" --replay_redirect="$dev" \
                        --replay_no_stall=1 --runtime="$runtime" ;;
        first1m) echo "${common[@]}" --rw=write --bs=1M --runtime="$runtime" ;;
        fill) echo "${common[@]}" --rw=write --bs=1M ;;
        esac
}

results=$work/results
: >"$results"

# Drops this script's files from the host page cache (after sync; see lib_evict).
evict() { lib_evict "$work"; }

# run_case TARGET CASE: runs fio once, appends "TARGET CASE iops MiB/s cpu_us/io exporter_us/io
# fio_usr% fio_sys% ios" to the results (cpu: fio's + the exporter's + the kernel's, see above).
run_case() {
        local target=$1 c=$2 out=$work/fio.json
        sync
        evict
        cpu_sample "$work/cpu0.json"
        # shellcheck disable=SC2046
        fio $(fio_job "$c" "$loopdev") >"$out"
        cpu_sample "$work/cpu1.json"
        python3 - "$out" "$target" "$c" "$work/cpu0.json" "$work/cpu1.json" "$hz" >>"$results" <<'EOF'
import json, sys
path, target, case, s0, s1, hz = sys.argv[1:7]
a, b = json.load(open(s0)), json.load(open(s1))
kt = sum(t - a["kthreads"].get(pid, 0) for pid, t in b["kthreads"].items()) + b["irq"] - a["irq"]
pt = b["exporter"] - a["exporter"]
text = open(path).read()
j = json.loads(text[text.index("{"):])
job = j["jobs"][0]
w = job["write"]
ios = max(w["total_ios"], 1)
us = 1e6 / int(hz)
fio_us = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] * 1e3
print(f"{target} {case} {w['iops']:.0f} {w['bw_bytes'] / 2**20:.1f} {(fio_us + (kt + pt) * us) / ios:.1f} "
      f"{pt * us / ios:.1f} {job['usr_cpu']:.1f} {job['sys_cpu']:.1f} {ios}")
EOF
        tail -1 "$results" | awk '{printf "#   %-6s %-10s %8s IOPS %8s MiB/s  %7s us/io  %7s us/io in the exporter\n", $1, $2, $3, $4, $5, $6}' >&2
}

# snapshot_for CASE: the snapshot a case starts from (lvss only).
snapshot_for() {
        case $1 in
        first4k|first1m)
                if [ -n "${snap:-}" ]; then ctl "delete $snap" >/dev/null; fi
                snap=$(ctl snapshot $snap_kind | sed -n 's/.*shadow=\([^ ]*\).*/\1/p')
                say "snapshot $snap"
                ;;
        esac
}

for target in $targets; do
        snap=
        case $target in
        plain)
                truncate -s "$bytes" "$work/plain.img"
                loopdev=$(losetup --direct-io=on -f --show "$work/plain.img")
                ;;
        lvss)
                "$engine" create "$work/vol" --size "$bytes" --chunk-size "$chunk" >/dev/null
                fuse_mnt=$work/mnt
                mkdir -p "$fuse_mnt"
                # shellcheck disable=SC2086
                "$exporter" --mount "$fuse_mnt" --volume v="$work/vol" --control "$work/ctl" --foreground \
                        $export_opts >"$work/exporter.out" 2>"$work/exporter.err" &
                exporter_pid=$!
                for _ in $(seq 100); do [ -e "$work/ctl" ] && ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
                ctl ping >/dev/null || die "the exporter did not start: $(cat "$work/exporter.err")"
                loopdev=$(losetup --direct-io=on -f --show "$fuse_mnt/volumes/v")
                [ "$(losetup -n -O DIO "$loopdev" | tr -d ' ')" = 1 ] || die "loop device without direct I/O"
                ;;
        *) die "unknown target '$target'" ;;
        esac
        say "$target on $loopdev: prefilling $size"
        # shellcheck disable=SC2046
        fio $(fio_job fill "$loopdev") >/dev/null
        for c in $cases; do
                for _ in $(seq "$repeat"); do
                        [ "$target" = lvss ] && snapshot_for "$c"
                        run_case "$target" "$c"
                done
        done
        if [ "$target" = lvss ]; then
                say "exporter: $(ctl stats)"
        fi
        losetup -d "$loopdev"
        loopdev=
        if [ -n "$exporter_pid" ]; then
                kill -TERM "$exporter_pid"
                wait "$exporter_pid" || die "the exporter exited with $?: $(cat "$work/exporter.err")"
                exporter_pid=
                fuse_mnt=
        fi
        rm -rf "$work/plain.img" "$work/vol"
done

# ---- the table: medians per target and case, ratio to plain ----
python3 - "$results" "$cases" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cases = sys.argv[2].split()
med = {}
for t, c, *v in rows:
    med.setdefault((t, c), []).append([float(x) for x in v])
def m(t, c, i):
    v = med.get((t, c))
    return statistics.median(r[i] for r in v) if v else None
print(f"{'case':<10} {'target':<6} {'IOPS':>8} {'MiB/s':>8} {'ratio':>6} {'cpu us/io':>9} {'exporter':>8} {'fio usr%':>8} {'fio sys%':>8}")
for c in cases:
    for t in ("plain", "lvss"):
        if (t, c) not in med:
            continue
        iops, bw, mus, pus, usr, sys_ = (m(t, c, i) for i in range(6))
        base = m("plain", c, 1)
        ratio = f"{bw / base:.2f}" if base else "-"
        exp = f"{pus:.1f}" if t == "lvss" else "-"
        print(f"{c:<10} {t:<6} {iops:>8.0f} {bw:>8.1f} {ratio:>6} {mus:>9.1f} {exp:>8} {usr:>8.1f} {sys_:>8.1f}")
EOF

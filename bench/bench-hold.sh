#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# hold_ms through the daemon: how long lvssd keeps a two-volume set frozen (its first FIFREEZE to
# its last thaw) under an fio load, beside the plain fsfreeze of the same filesystems under the
# same load.
#
# Setup: lvssd (--foreground, a state directory on the disk under test, a short runtime directory
# in /tmp), two cow volumes a and b (1 GiB, the default chunk), each attached with
# `lvss volume attach` (a loop device with direct I/O), ext4 on a, xfs on b, both mounted, a
# preallocated load file in each. Then for each load:
#   direct        fio libaio, direct=1, iodepth 16, 4 KiB random writes, one job on each fs
#   buffered      fio psync, direct=0, 4 KiB random writes, one job on each fs (with
#                 --dirty-limit 0, keeps a few hundred MiB dirty: up to the load file's size on
#                 each fs; lvssd's default dirty limit throttles it)
#   buffered-seq  fio psync, direct=0, 64 KiB sequential writes, one job on each fs
# the load runs on both filesystems, 3 s pass, then ROUNDS rounds of, in an order that rotates by
# round and each after the same pause (--gap) so that as much gets dirtied before each:
#   lvss    `lvss --json create MNT_A MNT_B`: hold_ms from its reply, freeze_ms from lvssd's log
#           line "hold X ms (freeze Y ms)" (stderr, to a file); the set deleted right after
#           (`lvss delete --set ID`, outside the timing); also the command's wall time (its
#           syncfs passes, the freeze and the call)
#   one     `fsfreeze -f MNT_A; fsfreeze -u MNT_A`, timed here with date +%s%N (each step too)
#   seq     `fsfreeze -f MNT_A; fsfreeze -f MNT_B; fsfreeze -u MNT_B; fsfreeze -u MNT_A`: the two
#           filesystems frozen one after the other, as a naive tool would
# The Dirty line of /proc/meminfo is sampled just before each (machine-wide: other programs and
# the engine's own image writes, through the host page cache, count too).
# The fsfreeze timings include forking date and fsfreeze: the table says how much that costs.
#
#   bench/bench-hold.sh                 the full run: 7 rounds a load (about 5-6 minutes)
#   bench/bench-hold.sh --quick         a smoke run (about 1-2 minutes: 2 rounds, 1 s gaps; noisy)
#
# Options: --rounds N (7), --gap S (2: the pause before each measurement), --loads "direct
# buffered buffered-seq" (any of them; the ratios need direct), --load-size SIZE (256M: each
# load file), --dir DIR (default $LVSS_BENCH_DIR or /var/tmp: where lvssd's state goes; a disk,
# not tmpfs), --save FILE (the raw samples), --lvssd-args "ARGS" (more arguments for lvssd,
# split on blanks, e.g. "--dirty-limit 0"; recorded in the output with the dirty limits the
# loop devices got), --quick.
# Each load's write rate over its phase (warm-up, rounds and pauses, freezes included): fio's
# (its JSON summary when it is stopped: what the writers got, into the page cache for the
# buffered loads) and the loop devices' (sectors written, /sys/block/loopN/stat: what reached
# the volumes, journals and metadata included).
# Environment: LVSS_BENCH_BUILDDIR (default build-bench at the top of the tree: configured and
# built as needed; point it at another tree's build to measure that tree's lvssd), or LVSSD_BIN
# and LVSS_BIN to use installed binaries; LVSS_BENCH_DIR. Needs root, fio, xfsprogs, python3.
# Everything it makes (lvssd, fio, mounts, loop devices, volumes, directories) goes away on
# exit, failure or ^C.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=7
gap=2
loads="direct buffered buffered-seq"
load_size=256M
vol_size=1G
disk=${LVSS_BENCH_DIR:-/var/tmp}
save=
quick=0
lvssd_args=

while [ $# -gt 0 ]; do
        case $1 in
        --rounds) rounds=${2:?}; shift ;;
        --gap) gap=${2:?}; shift ;;
        --loads) loads=${2:?}; shift ;;
        --load-size) load_size=${2:?}; shift ;;
        --dir) disk=${2:?}; shift ;;
        --save) save=${2:?}; shift ;;
        --lvssd-args) lvssd_args=${2?}; shift ;;
        --quick) quick=1 ;;
        -h|--help) sed -n '4,/^set -e/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
        *) echo "bench-hold.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        esac
        shift
done
[ "$quick" = 1 ] && rounds=2 gap=1
for l in $loads; do
        case $l in direct|buffered|buffered-seq) ;; *) echo "bench-hold.sh: unknown load '$l'" >&2; exit 2 ;; esac
done

say() { printf '# %s\n' "$*" >&2; }
die() { echo "bench-hold.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (loop devices, mounts, fsfreeze)"
command -v python3 >/dev/null || die "python3 is missing"
need=()
command -v fio >/dev/null || need+=(fio)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v fsfreeze >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"

# ---- binaries: lvssd and lvss of a release build ----
builddir=${LVSS_BENCH_BUILDDIR:-$src/build-bench}
lvssd=${LVSSD_BIN:-}
lvss=${LVSS_BIN:-}
if [ -z "$lvssd" ] || [ -z "$lvss" ]; then
        if [ ! -f "$builddir/build.ninja" ]; then
                say "configuring a release build in $builddir"
                meson setup "$builddir" "$src" --buildtype=release >&2
        fi
        ninja -C "$builddir" service/lvssd cli/lvss >&2
        lvssd=$builddir/service/lvssd
        lvss=$builddir/cli/lvss
fi
if [ ! -x "$lvssd" ] || [ ! -x "$lvss" ]; then die "$lvssd or $lvss is missing"; fi

[ -d "$disk" ] || die "$disk is not a directory"
fstype=$(stat -f -c %T "$disk")
case $fstype in
tmpfs|ramfs) die "$disk is on $fstype: give a directory on a disk (--dir or LVSS_BENCH_DIR)" ;;
esac

# ---- what this script made, and its cleanup ----
work='' rt='' lvssd_pid='' mnt_a='' mnt_b=''
declare -A LOADS=() HELPERS=() MNTS=() VOLS=() LOOPDEV=()
cleanup() {
        local rc=$?
        set +eu
        local m p v
        trap '' INT TERM
        for m in "${!MNTS[@]}"; do fsfreeze -u "$m" 2>/dev/null; done
        for p in "${!HELPERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
        for p in "${!LOADS[@]}"; do lib_stop "$p"; wait "$p" 2>/dev/null; done
        for m in "${!MNTS[@]}"; do
                umount "$m" 2>/dev/null || { sleep 1; umount "$m"; } || umount -l "$m"
        done
        if [ -n "$lvssd_pid" ] && kill -0 "$lvssd_pid" 2>/dev/null; then
                for v in "${!VOLS[@]}"; do "$lvss" --socket "$rt/lvssd.sock" volume detach "$v" >/dev/null; done
        fi
        # Whatever `volume detach` left (lvssd gone): only the devices attached for this run,
        # and only while they still serve this run's files.
        for v in "${!LOOPDEV[@]}"; do
                case $(losetup -n -O BACK-FILE "${LOOPDEV[$v]}" 2>/dev/null) in
                "$rt"/*) losetup -d "${LOOPDEV[$v]}" ;;
                esac
        done
        [ -n "$lvssd_pid" ] && lib_stop "$lvssd_pid"
        [ -n "$lvssd_pid" ] && wait "$lvssd_pid" 2>/dev/null
        if [ -n "$rt" ]; then
                # lvssd's FUSE mount, if a SIGKILL left it.
                awk -v r="$rt/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r |
                        while read -r m; do umount -l "$m"; done
        fi
        for d in "$work" "$rt"; do
                [ -n "$d" ] || continue
                if awk -v r="$d/" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts; then
                        say "WARNING: something is still mounted under $d: left in place"
                else
                        rm -rf "$d"
                fi
        done
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "$disk/lvss-bench-hold.XXXXXX")
rt=$(mktemp -d /tmp/lvh.XXXXXX)
samples=$work/samples
: >"$samples"
t_start=$(date +%s)
L() { "$lvss" --socket "$rt/lvssd.sock" "$@"; }

{
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel: $(uname -r); $(nproc) CPUs; $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; vm.dirty_background_ratio=$(cat /proc/sys/vm/dirty_background_ratio) dirty_ratio=$(cat /proc/sys/vm/dirty_ratio) dirty_expire_centisecs=$(cat /proc/sys/vm/dirty_expire_centisecs)"
        echo "state dir: $work/state ($fstype on $(df --output=source "$disk" | tail -1)); runtime dir: $rt"
        echo "lvssd: $lvssd ($("$lvssd" --version 2>/dev/null | head -1)); $(fio --version)"
        echo "lvssd args: --state-dir STATE --runtime-dir RT --foreground${lvssd_args:+ $lvssd_args}"
        echo "rounds=$rounds gap=${gap}s loads=\"$loads\" load file=$load_size a fs, volumes $vol_size"
        echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$work/notes"
sed 's/^/# /' "$work/notes" >&2

# ---- lvssd, the volumes, the filesystems ----
read -r -a extra <<<"$lvssd_args"
"$lvssd" --state-dir "$work/state" --runtime-dir "$rt" --foreground "${extra[@]}" >"$work/lvssd.out" 2>"$work/lvssd.err" &
lvssd_pid=$!
for _ in $(seq 100); do
        [ -S "$rt/lvssd.sock" ] && L volume list >/dev/null 2>&1 && break
        kill -0 "$lvssd_pid" 2>/dev/null || die "lvssd exited: $(cat "$work/lvssd.err")"
        sleep 0.1
done
L volume list >/dev/null || die "lvssd does not answer: $(cat "$work/lvssd.err")"

mnt_a=$work/a
mnt_b=$work/b
for v in a b; do
        L volume create "$v" --size "$vol_size" >/dev/null
        VOLS[$v]=1
        dev=$(L volume attach "$v")
        [ -b "$dev" ] || die "lvss volume attach $v printed '$dev'"
        LOOPDEV[$v]=$dev
        case $v in
        a) mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$dev" ;;
        b) mkfs.xfs -q -f -K "$dev" ;;
        esac
        m=$work/$v
        mkdir -p "$m"
        mount "$dev" "$m"
        MNTS[$m]=1
        fio --name=layout --filename="$m/load" --size="$load_size" --rw=write --bs=1M \
                --ioengine=libaio --direct=1 --iodepth=4 >/dev/null
        say "volume $v on $dev ($(L volume path "$v")): $( [ "$v" = a ] && echo ext4 || echo xfs) on $m"
done
bdi_info() {  # DEV: its bdi's dirty limits
        local b
        b=/sys/class/bdi/$(lsblk -ndo MAJ:MIN "$1" | tr -d ' ')
        echo "max_bytes=$(cat "$b/max_bytes" 2>/dev/null || echo -) strict_limit=$(cat "$b/strict_limit" 2>/dev/null || echo -)"
}
echo "loop devices' dirty limits: a ${LOOPDEV[a]} $(bdi_info "${LOOPDEV[a]}"); b ${LOOPDEV[b]} $(bdi_info "${LOOPDEV[b]}")" >>"$work/notes"
tail -1 "$work/notes" | sed 's/^/# /' >&2
sync -f "$mnt_a"; sync -f "$mnt_b"; sync -f "$work"

# What the fsfreeze timings cost by themselves: date and a command forked, as each step is timed.
spawn_ms=$(for _ in $(seq 9); do
        a=$(date +%s%N); /bin/true; b=$(date +%s%N); echo $(( (b - a) / 1000 ))
done | sort -n | sed -n 5p | awk '{printf "%.3f", $1 / 1000}')
echo "spawn $spawn_ms" >>"$samples"

ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e6}'; }
dirty_kb() { awk '/^Dirty:/ {print $2}' /proc/meminfo; }

# cachestat.py FILE_A FILE_B PERIOD_MS: the dirty page cache of the two load files, in MiB, by
# cachestat(2) (what a freeze of their filesystems has to write): "A B" once if PERIOD_MS is 0,
# else a line "REALTIME_NS A B" every PERIOD_MS until killed. files_dirty: once.
cat >"$work/cachestat.py" <<'PYEOF'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
class Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recent")]
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:3]]
rng, st = Range(0, 0), Stat()
page = os.sysconf("SC_PAGE_SIZE")
def sample():
    out = []
    for fd in fds:
        if libc.syscall(451, fd, ctypes.byref(rng), ctypes.byref(st), 0) != 0:  # cachestat
            return None
        out.append(f"{st.dirty * page / 2**20:.1f}")
    return out
period = int(sys.argv[3]) / 1000
if not period:
    print(" ".join(sample() or ["-", "-"]))
    sys.exit(0)
while True:
    v = sample()
    if v is None:
        sys.exit(1)
    print(time.time_ns(), *v, flush=True)
    time.sleep(period)
PYEOF
files_dirty() { python3 "$work/cachestat.py" "$mnt_a/load" "$mnt_b/load" 0; }
# loop_sectors: sectors written to the two loop devices so far.
loop_sectors() {
        local n=0 v
        for v in a b; do n=$(( n + $(awk '{print $7}' "/sys/block/${LOOPDEV[$v]#/dev/}/stat") )); done
        echo "$n"
}
# fio_rates JSON_A JSON_B: "A B", each fio job's write rate in MiB/s (its JSON summary, written
# when it is stopped, after a line of its own).
fio_rates() {
        python3 - "$@" <<'PYEOF'
import json, sys
out = []
for p in sys.argv[1:]:
    try:
        t = open(p).read()
        w = json.loads(t[t.index("{"):])["jobs"][0]["write"]
        out.append(f"{w['bw_bytes'] / 2**20:.1f}")
    except (OSError, ValueError, KeyError, IndexError):
        out.append("-")
print(" ".join(out))
PYEOF
}

# measure_lvss LOAD ROUND
measure_lvss() {
        local d fd t0 t1 out set hold line freeze lhold sp at
        d=$(dirty_kb)
        fd=$(files_dirty)
        # The load files' dirty pages while the command runs, every 5 ms: what the freeze finds
        # is the last sample before lvssd's window began (its end, the reply, minus hold_ms).
        python3 "$work/cachestat.py" "$mnt_a/load" "$mnt_b/load" 5 >"$work/trace" &
        sp=$!  # python itself: killing it ends the sampling
        HELPERS[$sp]=1
        for _ in $(seq 100); do [ -s "$work/trace" ] && break; sleep 0.01; done
        t0=$(date +%s%N)
        if ! out=$(L --json create "$mnt_a" "$mnt_b" 2>"$work/create.err"); then
                t1=$(date +%s%N)
                kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true; unset "HELPERS[$sp]"
                say "  $1 $2 lvss: create failed after $(ms "$t0" "$t1") ms: $(cat "$work/create.err")"
                echo "$1 $2 lvss-fail $d $(ms "$t0" "$t1")" >>"$samples"
                return 0
        fi
        t1=$(date +%s%N)
        kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true; unset "HELPERS[$sp]"
        set=$(sed -n 's/.*"set":"\([^"]*\)".*/\1/p' <<<"$out")
        hold=$(sed -n 's/.*"hold_ms":\([0-9.]*\).*/\1/p' <<<"$out")
        if [ -z "$set" ] || [ -z "$hold" ]; then die "unexpected reply to create: $out"; fi
        L delete --set "$set" >/dev/null || die "lvss delete --set $set failed"
        for _ in $(seq 20); do
                line=$(grep -F "set $set " "$work/lvssd.err" || true)
                [ -n "$line" ] && break
                sleep 0.05
        done
        lhold=$(sed -n 's/.* hold \([0-9.]*\) ms .*/\1/p' <<<"$line")
        freeze=$(sed -n 's/.*(freeze \([0-9.]*\) ms).*/\1/p' <<<"$line")
        [ -n "$freeze" ] || die "no line for set $set in lvssd's log"
        # The window's start: the command's end less the window and ~5 ms (the reply, the exit,
        # date's fork).
        at=$(awk -v t="$(( t1 - 5000000 ))" -v h="$hold" 'BEGIN {s = t - h * 1e6} $1 <= s {v = $2 " " $3} END {print (v == "" ? "- -" : v)}' "$work/trace")
        echo "$1 $2 lvss $d $(ms "$t0" "$t1") $hold $freeze $lhold $fd $at" >>"$samples"
        say "  $1 $2 lvss: hold_ms $hold (freeze $freeze); the command $(ms "$t0" "$t1") ms; dirty before $((d / 1024)) MiB; load files dirty (ext4 xfs MiB) before $fd, at the freeze $at"
}

# measure_one LOAD ROUND: fsfreeze -f A; fsfreeze -u A
measure_one() {
        local d fd t0 t1 t2
        d=$(dirty_kb)
        fd=$(files_dirty)
        t0=$(date +%s%N)
        if ! fsfreeze -f "$mnt_a"; then
                echo "$1 $2 one-fail $d" >>"$samples"
                return 0
        fi
        t1=$(date +%s%N)
        fsfreeze -u "$mnt_a" || { sleep 0.2; fsfreeze -u "$mnt_a"; }
        t2=$(date +%s%N)
        echo "$1 $2 one $d $(ms "$t0" "$t2") $(ms "$t0" "$t1") $(ms "$t1" "$t2") $fd" >>"$samples"
        say "  $1 $2 fsfreeze ext4: $(ms "$t0" "$t2") ms (-f $(ms "$t0" "$t1"), -u $(ms "$t1" "$t2")); load files dirty before $fd"
}

# measure_seq LOAD ROUND: fsfreeze -f A; fsfreeze -f B; fsfreeze -u B; fsfreeze -u A
measure_seq() {
        local d fd t0 t1 t2 t3 t4
        d=$(dirty_kb)
        fd=$(files_dirty)
        t0=$(date +%s%N)
        if ! fsfreeze -f "$mnt_a"; then
                echo "$1 $2 seq-fail $d" >>"$samples"
                return 0
        fi
        t1=$(date +%s%N)
        if ! fsfreeze -f "$mnt_b"; then
                fsfreeze -u "$mnt_a"
                echo "$1 $2 seq-fail $d" >>"$samples"
                return 0
        fi
        t2=$(date +%s%N)
        fsfreeze -u "$mnt_b" || { sleep 0.2; fsfreeze -u "$mnt_b"; }
        t3=$(date +%s%N)
        fsfreeze -u "$mnt_a" || { sleep 0.2; fsfreeze -u "$mnt_a"; }
        t4=$(date +%s%N)
        echo "$1 $2 seq $d $(ms "$t0" "$t4") $(ms "$t0" "$t1") $(ms "$t1" "$t2") $(ms "$t2" "$t3") $(ms "$t3" "$t4") $fd" >>"$samples"
        say "  $1 $2 fsfreeze ext4+xfs in turn: $(ms "$t0" "$t4") ms (-f ext4 $(ms "$t0" "$t1"), -f xfs $(ms "$t1" "$t2"), -u xfs $(ms "$t2" "$t3"), -u ext4 $(ms "$t3" "$t4")); load files dirty before $fd"
}

# ---- the loads ----
kinds=(lvss one seq)
for load in $loads; do
        case $load in
        direct) job=(--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1) ;;
        buffered) job=(--rw=randwrite --bs=4k --ioengine=psync --direct=0) ;;
        buffered-seq) job=(--rw=write --bs=64k --ioengine=psync --direct=0) ;;
        esac
        pids=()
        sect0=$(loop_sectors)
        p0=$(date +%s%N)
        for v in a b; do
                m=$work/$v
                fio --name="load" --filename="$m/load" --size="$load_size" "${job[@]}" \
                        --time_based --runtime=3600 --output-format=json --output="$work/fio-$load-$v.json" \
                        >/dev/null 2>&1 &
                LOADS[$!]=1
                pids+=($!)
        done
        say "$load load on ext4 and xfs ($(cut -d' ' -f1-3 /proc/loadavg))"
        sleep 3
        for r in $(seq "$rounds"); do
                k=$(( (r - 1) % 3 ))
                for kind in "${kinds[@]:k}" "${kinds[@]:0:k}"; do
                        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || die "fio ($load) stopped"; done
                        sleep "$gap"
                        "measure_$kind" "$load" "$r"
                done
        done
        for p in "${pids[@]}"; do
                lib_stop "$p"
                wait "$p" 2>/dev/null || true
                unset "LOADS[$p]"
        done
        p1=$(date +%s%N)
        sect1=$(loop_sectors)
        rate=$(fio_rates "$work/fio-$load-a.json" "$work/fio-$load-b.json")
        dev_rate=$(awk -v s0="$sect0" -v s1="$sect1" -v t="$(( p1 - p0 ))" \
                'BEGIN {printf "%.1f", (s1 - s0) * 512 / 1048576 / (t / 1e9)}')
        echo "$load 0 rate $rate $dev_rate $(ms "$p0" "$p1")" >>"$samples"
        say "$load: fio wrote ext4 / xfs $rate MiB/s over the phase; the loop devices took $dev_rate MiB/s"
        sync -f "$mnt_a"; sync -f "$mnt_b"
done

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); total time $(( $(date +%s) - t_start )) s" >>"$work/notes"
if [ -n "$save" ]; then
        { sed 's/^/# /' "$work/notes"; cat "$samples"; } >"$save"
fi

# ---- the tables ----
python3 - "$samples" "$work/notes" "$loads" <<'EOF'
import statistics as st, sys
samples, notes, loads = sys.argv[1], sys.argv[2], sys.argv[3].split()
med = st.median
rows = [l.split() for l in open(samples)]
spawn = [float(r[1]) for r in rows if r[0] == "spawn"]
rows = [r for r in rows if r[0] != "spawn"]
def num(x):
    try:
        return float(x)
    except ValueError:
        return None
def col(load, kind, i):
    v = [num(r[i]) for r in rows if r[0] == load and r[2] == kind and len(r) > i]
    return [x for x in v if x is not None]
def col2(load, kind, i):  # ext4 + xfs
    v = [(num(r[i]), num(r[i + 1])) for r in rows if r[0] == load and r[2] == kind and len(r) > i + 1]
    return [a + b for a, b in v if a is not None and b is not None]
def fmt(v, p=1):
    return f"{med(v):.{p}f} ({min(v):.{p}f}-{max(v):.{p}f})" if v else "-"
def fails(load):
    n = {k: sum(1 for r in rows if r[0] == load and r[2] == k + "-fail") for k in ("lvss", "one", "seq")}
    return ", ".join(f"{k} {v}" for k, v in n.items() if v) or "none"
print("```")
print(open(notes).read().rstrip())
print("```")
print()
print("Medians (min-max) over the rounds, ms. lvss hold_ms: lvssd's first FIFREEZE to its last thaw (the")
print("reply's hold_ms); plain: `fsfreeze -f ext4; fsfreeze -u ext4`; in turn: `fsfreeze -f ext4; -f xfs;")
print("-u xfs; -u ext4`, both timed with date +%s%N.")
print()
print("| load | lvss hold_ms | / direct | fsfreeze -f;-u ext4 | / direct | fsfreeze both in turn | / direct | lvss / in turn |")
print("|---|---|---|---|---|---|---|---|")
hm = {}
def rel(v, load, kind, i):
    d = col("direct", kind, i)
    return f"{med(v) / med(d):.2f}" if v and d else "-"
for load in loads:
    h, o, s = col(load, "lvss", 5), col(load, "one", 4), col(load, "seq", 4)
    if h:
        hm[load] = med(h)
    ratio = f"{med(h) / med(s):.2f}" if h and s else "-"
    print(f"| {load} | {fmt(h)} | {rel(h, load, 'lvss', 5)} | {fmt(o)} | {rel(o, load, 'one', 4)} | {fmt(s)} | {rel(s, load, 'seq', 4)} | {ratio} |")
print()
print("Inside lvss's window (from lvssd's log line \"hold X ms (freeze Y ms)\"): freeze_ms = the start of the")
print("window (the watchdog thread and the guardian process started, then every FIFREEZE at once) to the")
print("last FIFREEZE returned; hold - freeze = the holds, the snapshots, the releases and the thaws.")
print("Dirty: /proc/meminfo just before each create (MiB, machine-wide). create: the `lvss create` command's")
print("wall time (its syncfs passes, the freeze, the call). Plain -u: `fsfreeze -u ext4` alone, a thaw.")
print()
print("| load | dirty MiB before create | lvss create, wall | freeze_ms | hold - freeze | plain -f ext4 | plain -u ext4 | in turn: -f ext4 / -f xfs / -u xfs / -u ext4 | failed |")
print("|---|---|---|---|---|---|---|---|---|")
for load in loads:
    d = [x / 1024 for x in col(load, "lvss", 3)]
    w, h, f = col(load, "lvss", 4), col(load, "lvss", 5), col(load, "lvss", 6)
    hf = [a - b for a, b in zip(h, f)]
    of, ou = col(load, "one", 5), col(load, "one", 6)
    turn = " / ".join(f"{med(v):.1f}" if v else "-" for v in (col(load, "seq", i) for i in (5, 6, 7, 8)))
    print(f"| {load} | {fmt(d, 0)} | {fmt(w)} | {fmt(f)} | {fmt(hf)} | {fmt(of)} | {fmt(ou)} | {turn} | {fails(load)} |")
print()
print("The load files' dirty page cache (cachestat(2)), ext4's + xfs's, MiB: just before each measurement, and for")
print("lvss at the start of its window (the last of samples every 5 ms during the command, taken at the reply's")
print("time less hold_ms and ~5 ms), after its syncfs passes. Only ext4's counts for the plain single freeze.")
print()
print("| load | before lvss create | at lvss's freeze | before fsfreeze ext4 (ext4's) | before both in turn |")
print("|---|---|---|---|---|")
for load in loads:
    print(f"| {load} | {fmt(col2(load, 'lvss', 8), 0)} | {fmt(col2(load, 'lvss', 10), 0)} | "
          f"{fmt(col(load, 'one', 7), 0)} | {fmt(col2(load, 'seq', 9), 0)} |")
rates = {r[0]: r for r in rows if r[2] == "rate"}
if rates:
    print()
    print("Write rates over each load's phase (its warm-up, rounds and pauses, the freezes included), MiB/s:")
    print("fio's (what the writers got: into the page cache for the buffered loads) on ext4, xfs and both;")
    print("the loop devices' (sectors written to both: what reached the volumes, journals included).")
    print()
    print("| load | fio ext4 | fio xfs | fio both | loop devices | phase, s |")
    print("|---|---|---|---|---|---|")
    for load in loads:
        r = rates.get(load)
        if not r:
            continue
        a, b = num(r[3]), num(r[4])
        both = f"{a + b:.1f}" if a is not None and b is not None else "-"
        print(f"| {load} | {r[3]} | {r[4]} | {both} | {r[5]} | {float(r[6]) / 1000:.0f} |")
if spawn:
    print(f"\n(each fsfreeze step timed here includes forking date and the command: {spawn[0]:.1f} ms for the same around /bin/true)")
print()
print("Targets:")
if "direct" in hm:
    for load in loads:
        if load != "direct" and load in hm:
            v = hm[load] / hm["direct"]
            print(f"  lvss hold_ms {load} / direct {v:8.2f}  (<= 1.3)  {'PASS' if v <= 1.3 else 'MISS'}")
for load in loads:
    h, f = col(load, "lvss", 5), col(load, "lvss", 6)
    if h:
        v = med(a - b for a, b in zip(h, f))
        print(f"  lvss inside the freeze (hold - freeze), {load}, ms {v:8.2f}  (<= 5)  {'PASS' if v <= 5 else 'MISS'}")
EOF

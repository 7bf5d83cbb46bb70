#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss against qemu-storage-daemon (the issue's benchmark), side by side in one run: fio
# (libaio, direct=1, iodepth=16) through a loop device (losetup --direct-io=on) over
#   plain       a raw image file on this machine's disk,
#   lvss        an lvss volume (same disk, 64 KiB chunks) served by lvss-fuse-export,
#   qsd-direct  a raw image file served by qemu-storage-daemon's FUSE export, cache.direct=on
#               (O_DIRECT, aio=native), and/or
#   qsd-page    the same with cache.direct=off (the host page cache, aio=threads, as the lvss
#               engine writes its image),
# in these cases:
#   rand4k      4 KiB random writes, time-based, no shadow
#   seq1m       1 MiB sequential writes, time-based, no shadow
#   first4k     after a fresh shadow: one 4 KiB write into each 64 KiB chunk, in random order
#               (every write copies its chunk first), once
#   rewrite4k   4 KiB random writes again, shadow still present (no copies), time-based
#   first1m     after a fresh shadow: 1 MiB sequential writes once over the whole image (every
#               write copies 16 chunks)
#   rewrite1m   1 MiB sequential writes again, shadow still present, time-based
# The lvss shadow is a non-persistent snapshot taken through lvss-fuse-export's control socket.
# The qemu shadow is image fleecing: qemu-storage-daemon restarted with a copy-before-write filter
# (cbw0: file=the image's raw node, target=a fresh sparse raw file of the same size; block-copy
# cluster 64 KiB) under the export, and a snapshot-access node over it exported read-only, as
# lvss exports its shadow. "plain" runs the same jobs with no shadow.
#
# Each round runs every case on every target, one target after the other (the order rotates by
# round), so that the load of the machine hits all of them alike; the tables give medians over
# the rounds. Ratios are medians of the per-round ratios (same round, same case). CPU per I/O is
# fio's user+sys, the server process's (lvss-fuse-export or qemu-storage-daemon, all threads,
# /proc/PID/stat before and after), every kernel thread's (loop workers, kworkers, ksoftirqd, the
# host filesystem's) and the machine's irq and softirq time, over the fio run, divided by the
# writes; "server" is the server process alone.
#
# Then hold_ms: two lvss volumes (ext4 and xfs, mounted from loop devices over lvss-fuse-export),
# a fio load on each (4 KiB random writes, iodepth 16, direct=1, then buffered: direct=0), and
# under that load, in turn, lvss-fuse-export's "freeze-snapshot MNT_EXT4 MNT_XFS" (its reply's
# hold_ms and freeze_ms; the two shadows are deleted after each), a plain
# "fsfreeze -f MNT; fsfreeze -u MNT" of each filesystem, timed here with date +%s%N, and the set's
# freeze without lvss: syncfs each, FIFREEZE each, FITHAW each in reverse (the order of
# freeze-snapshot), by ioctl, timed in-process, which gives the thaw's share of hold_ms.
#
#   bench/bench-qsd.sh                    the full run: 5 rounds, 5 s a timed case (12-15 minutes)
#   bench/bench-qsd.sh --rounds 3         a shorter one (CI)
#   bench/bench-qsd.sh --quick            a smoke run (~2 minutes; figures not meaningful)
#
# Options: --rounds N (5), --runtime S (5; time-based cases), --size SIZE (1G), --dir DIR
# (default $LVSS_BENCH_DIR or /var/tmp: the disk under test, not tmpfs), --qsd-cache
# direct|page|both (both), --qsd-target raw|qcow2 (raw: the fleecing target's format),
# --targets "plain lvss qsd-direct qsd-page", --cases "rand4k ...", --hold-samples N (= rounds),
# --no-hold, --hold-only, --save FILE (the raw results, one line a run).
# Environment: LVSS_BENCH_BUILDDIR (default build-bench at the top of the tree), or
# LVSS_ENGINE_BIN and LVSS_FUSE_EXPORT_BIN to use installed binaries; LVSS_BENCH_DIR. Needs root;
# installs fio, qemu-system-common (qemu-storage-daemon), xfsprogs with apt-get if missing.
# Everything it makes (servers, loop devices, mounts, files) goes away on exit, failure or ^C.

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5
runtime=5
size=1G
disk=${LVSS_BENCH_DIR:-/var/tmp}
chunk=65536
qsd_cache=both
qsd_target=raw
targets=
cases="rand4k seq1m first4k rewrite4k first1m rewrite1m"
hold_samples=
do_fio=1
do_hold=1
quick=0
save=
hold_size=1G
load_size=256M

while [ $# -gt 0 ]; do
        case $1 in
        --rounds) rounds=${2:?}; shift ;;
        --runtime) runtime=${2:?}; shift ;;
        --size) size=${2:?}; shift ;;
        --dir) disk=${2:?}; shift ;;
        --qsd-cache) qsd_cache=${2:?}; shift ;;
        --qsd-target) qsd_target=${2:?}; shift ;;
        --targets) targets=${2:?}; shift ;;
        --cases) cases=${2:?}; shift ;;
        --hold-samples) hold_samples=${2:?}; shift ;;
        --no-hold) do_hold=0 ;;
        --hold-only) do_fio=0 ;;
        --save) save=${2:?}; shift ;;
        --quick) quick=1 ;;
        -h|--help) sed -n '4,/^set -e/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
        *) echo "bench-qsd.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        esac
        shift
done
if [ "$quick" = 1 ]; then
        rounds=1 runtime=2 size=256M hold_size=512M load_size=64M
        hold_samples=${hold_samples:-2}
fi
hold_samples=${hold_samples:-$rounds}
if [ -z "$targets" ]; then
        case $qsd_cache in
        direct) targets="plain lvss qsd-direct" ;;
        page) targets="plain lvss qsd-page" ;;
        both) targets="plain lvss qsd-direct qsd-page" ;;
        *) echo "bench-qsd.sh: --qsd-cache is direct, page or both" >&2; exit 2 ;;
        esac
fi
case $qsd_target in raw|qcow2) ;; *) echo "bench-qsd.sh: --qsd-target is raw or qcow2" >&2; exit 2 ;; esac

say() { printf '# %s\n' "$*" >&2; }
die() { echo "bench-qsd.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (loop devices, FUSE mounts, fsfreeze)"
command -v python3 >/dev/null || die "python3 is missing"

# ---- tools: installed if missing ----
need=()
command -v fio >/dev/null || need+=(fio)
command -v qemu-storage-daemon >/dev/null || need+=(qemu-system-common)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v fsfreeze >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

# ---- binaries ----
# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
lib_build "$src" || die "cannot build or find the binaries"

# ---- the disk under test: not tmpfs ----
[ -d "$disk" ] || die "$disk is not a directory"
fstype=$(stat -f -c %T "$disk")
case $fstype in
tmpfs|ramfs) die "$disk is on $fstype: give a directory on a disk (--dir or LVSS_BENCH_DIR)" ;;
esac

# ---- scratch space and cleanup: exactly what this script made ----
declare -A LOOPS=() PIDS=() FUSEMNTS=() FSMNTS=() dev=() pid=() shadow=() snap=()
work=''
cleanup() {
        local rc=$?
        set +eu
        local p m d
        for m in "${!FSMNTS[@]}"; do fsfreeze -u "$m" 2>/dev/null; done
        for p in "${!PIDS[@]}"; do [ "${PIDS[$p]}" = load ] && lib_stop "$p"; done
        for m in "${!FSMNTS[@]}"; do umount "$m" || umount -l "$m"; done
        for d in "${!LOOPS[@]}"; do losetup -d "$d"; done
        for p in "${!PIDS[@]}"; do lib_stop "$p"; done
        for m in "${!FUSEMNTS[@]}"; do
                if grep -q " $m fuse" /proc/mounts; then umount -l "$m"; fi
        done
        [ -n "$work" ] && rm -rf "$work"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "$disk/lvss-bench-qsd.XXXXXX")
bytes=$(numfmt --from=iec "$size")
hz=$(getconf CLK_TCK)
results=$work/results
holds=$work/holds
: >"$results"
: >"$holds"
t_start=$(date +%s)

# ---- machine notes ----
{
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel: $(uname -r); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | head -1)); $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
        src_dev=$(df --output=source "$disk" | tail -1)
        blk=$(lsblk -no pkname "$src_dev" 2>/dev/null | head -1)
        blk=${blk:-$(basename "$src_dev")}
        echo "disk: $disk on $src_dev ($fstype, $(df -h --output=size,avail "$disk" | tail -1 | awk '{print $1 " size, " $2 " free"}'), rotational=$(cat "/sys/block/$blk/queue/rotational" 2>/dev/null || echo '?'))"
        echo "$(qemu-storage-daemon --version | head -1); $(fio --version); $("$exporter" --version 2>/dev/null | head -1)"
        echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "rounds=$rounds runtime=${runtime}s size=$size chunk=$chunk targets=\"$targets\" qsd target=$qsd_target hold_samples=$hold_samples"
} >"$work/notes"
sed 's/^/# /' "$work/notes" >&2

# loop_attach VAR FILE: a loop device with direct I/O over FILE, its name in VAR. The machine is
# shared and other programs attach and detach loop devices at the low numbers (a stale
# "losetup -d" of theirs can hit a device this script reused), so take them from /dev/loop64 up,
# creating the device if needed.
loop_attach() {
        local n d
        for n in $(seq 64 255); do
                d=/dev/loop$n
                if [ ! -b "$d" ]; then
                        python3 -c 'import fcntl, os, sys
fcntl.ioctl(os.open("/dev/loop-control", os.O_RDWR), 0x4C80, int(sys.argv[1]))' "$n" 2>/dev/null || true
                        for _ in $(seq 40); do [ -b "$d" ] && break; sleep 0.05; done
                        [ -b "$d" ] || continue
                fi
                losetup "$d" >/dev/null 2>&1 && continue
                losetup --direct-io=on "$d" "$2" 2>/dev/null || continue
                LOOPS[$d]=$2
                printf -v "$1" %s "$d"
                [ "$(losetup -n -O DIO "$d" | tr -d ' ')" = 1 ] || die "$d: the loop device has no direct I/O"
                return 0
        done
        die "no free loop device from /dev/loop64 to /dev/loop255"
}
loop_detach() {
        losetup -d "$1"
        unset "LOOPS[$1]"
}
# loop_check VAR: reattaches the loop device in VAR if something else detached it.
loop_check() {
        local d=${!1} f
        f=${LOOPS[$d]}
        [ "$(losetup -n -O BACK-FILE "$d" 2>/dev/null)" = "$f" ] && return 0
        say "WARNING: $d no longer serves $f (detached by another program?): reattaching"
        unset "LOOPS[$d]"
        loop_attach "$1" "$f"
}

# mounted FILE: whether something (FUSE) is mounted on FILE.
mounted() { [ "$(stat -c %d "$1" 2>/dev/null)" != "$(stat -c %d "$(dirname "$1")")" ]; }

# ---- lvss ----
# lvss_start NAME VOLUMES...: creates each volume (name=dir under $work/NAME), serves them from
# one lvss-fuse-export on $work/NAME.mnt with the control socket $work/NAME.ctl.
lvss_start() {
        local name=$1 v args=()
        shift
        mkdir -p "$work/$name.mnt" "$work/$name"
        for v in "$@"; do
                "$engine" create "$work/$name/$v" --size "$lvss_size" --chunk-size "$chunk" >/dev/null
                args+=(--volume "$v=$work/$name/$v")
        done
        "$exporter" --mount "$work/$name.mnt" "${args[@]}" --control "$work/$name.ctl" --foreground \
                >"$work/$name.out" 2>"$work/$name.err" &
        pid[$name]=$!
        PIDS[$!]=server
        FUSEMNTS[$work/$name.mnt]=1
        for _ in $(seq 100); do
                [ -e "$work/$name.ctl" ] && lib_ctl "$work/$name.ctl" ping >/dev/null 2>&1 && return 0
                kill -0 "${pid[$name]}" 2>/dev/null || break
                sleep 0.1
        done
        die "lvss-fuse-export did not start: $(cat "$work/$name.err")"
}
lvss_stop() {
        local name=$1 p=${pid[$1]}
        kill -TERM "$p"
        wait "$p" || die "lvss-fuse-export exited with $?: $(cat "$work/$name.err")"
        unset "PIDS[$p]" "FUSEMNTS[$work/$name.mnt]" "pid[$name]"
}

# ---- qemu-storage-daemon ----
# qsd_start T SHADOW: serves $work/T.img (raw) on the regular file $work/T.export, through a
# copy-before-write filter with a fresh target if SHADOW is 1, and attaches dev[T] to it.
qsd_start() {
        local t=$1 sh=$2 fopts node=fmt0 tgt
        case $t in
        qsd-direct) fopts="cache.direct=on,aio=native" ;;
        qsd-page) fopts="cache.direct=off,aio=threads" ;;
        esac
        local args=(--blockdev "driver=file,node-name=file0,filename=$work/$t.img,$fopts"
                    --blockdev "driver=raw,node-name=fmt0,file=file0")
        if [ "$sh" = 1 ]; then
                tgt=$work/$t.fleece.$qsd_target
                rm -f "$tgt"
                if [ "$qsd_target" = raw ]; then
                        truncate -s "$bytes" "$tgt"
                else
                        qemu-img create -q -f qcow2 "$tgt" "$bytes"
                fi
                : >"$work/$t.shadow"
                args+=(--blockdev "driver=file,node-name=tgtfile,filename=$tgt,$fopts"
                       --blockdev "driver=$qsd_target,node-name=tgt0,file=tgtfile"
                       --blockdev "driver=copy-before-write,node-name=cbw0,file=fmt0,target=tgt0"
                       --blockdev "driver=snapshot-access,node-name=acc0,file=cbw0"
                       --export "type=fuse,id=exp1,node-name=acc0,mountpoint=$work/$t.shadow")
                node=cbw0
                FUSEMNTS[$work/$t.shadow]=1
        fi
        : >"$work/$t.export"
        args+=(--export "type=fuse,id=exp0,node-name=$node,mountpoint=$work/$t.export,writable=on")
        FUSEMNTS[$work/$t.export]=1
        qemu-storage-daemon "${args[@]}" >"$work/$t.log" 2>&1 &
        pid[$t]=$!
        PIDS[$!]=server
        for _ in $(seq 100); do
                if mounted "$work/$t.export" && { [ "$sh" = 0 ] || mounted "$work/$t.shadow"; }; then
                        shadow[$t]=$sh
                        loop_attach "dev[$t]" "$work/$t.export"
                        return 0
                fi
                kill -0 "${pid[$t]}" 2>/dev/null || break
                sleep 0.05
        done
        die "qemu-storage-daemon did not start: $(cat "$work/$t.log")"
}
qsd_stop() {
        local t=$1 p=${pid[$1]}
        loop_detach "${dev[$t]}"
        kill -TERM "$p"
        wait "$p" || die "qemu-storage-daemon exited with $?: $(cat "$work/$t.log")"
        unset "PIDS[$p]" "pid[$t]"
        for _ in $(seq 50); do mounted "$work/$t.export" || break; sleep 0.05; done
}

# shadow_set T 0|1: no shadow, or a fresh one (the previous one deleted first).
shadow_set() {
        local t=$1 want=$2
        case $t in
        plain) ;;
        lvss)
                if [ -n "${snap[lvss]:-}" ]; then
                        lib_ctl "$work/lvss.ctl" "delete ${snap[lvss]}" >/dev/null
                        snap[lvss]=
                fi
                if [ "$want" = 1 ]; then
                        snap[lvss]=$(lib_ctl "$work/lvss.ctl" snapshot | sed -n 's/.*shadow=\([^ ]*\).*/\1/p')
                        [ -n "${snap[lvss]}" ] || die "lvss: no snapshot"
                fi
                ;;
        qsd-*)
                if [ "$want" = 1 ] || [ "${shadow[$t]}" = 1 ]; then
                        qsd_stop "$t"
                        qsd_start "$t" "$want"
                fi
                ;;
        esac
}

# fio_job CASE DEV: the fio arguments of a case. The "first" cases write each chunk once and stop
# (at most 120 s).
fio_job() {
        local c=$1 d=$2
        local common=(--name="$c" --filename="$d" --ioengine=libaio --direct=1 --iodepth=16
                      --numjobs=1 --group_reporting --output-format=json --size="$bytes")
        case $c in
        rand4k|rewrite4k) echo "${common[@]}" --rw=randwrite --bs=4k --time_based --runtime="$runtime" ;;
        seq1m|rewrite1m) echo "${common[@]}" --rw=write --bs=1M --time_based --runtime="$runtime" ;;
        first4k) echo "${common[@]}" --read_iolog="$work/first4k.iolog" --replay_redirect="$d" \
                        --replay_no_stall=1 --runtime=120 ;;
        first1m) echo "${common[@]}" --rw=write --bs=1M --runtime=120 ;;
        fill) echo "${common[@]}" --rw=write --bs=1M ;;
        esac
}

# run_case ROUND TARGET CASE: runs fio once, appends "ROUND TARGET CASE iops MiB/s cpu_us/io
# server_us/io fio_usr% fio_sys% ios" to the results.
run_case() {
        local r=$1 t=$2 c=$3 out=$work/fio.json
        sync -f "$work"  # this disk only: a global sync waits for every filesystem of the machine
        lib_evict "$work"
        loop_check "dev[$t]"
        lib_cpu_sample "$work/cpu0.json" "${pid[$t]:-0}"
        # shellcheck disable=SC2046
        if ! fio $(fio_job "$c" "${dev[$t]}") >"$out"; then
                loop_check "dev[$t]"
                say "  fio failed on $t $c: once more"
                case $c in first*) shadow_set "$t" 1 ;; esac
                lib_cpu_sample "$work/cpu0.json" "${pid[$t]:-0}"
                # shellcheck disable=SC2046
                fio $(fio_job "$c" "${dev[$t]}") >"$out"
        fi
        lib_cpu_sample "$work/cpu1.json" "${pid[$t]:-0}"
        python3 - "$out" "$r $t $c" "$work/cpu0.json" "$work/cpu1.json" "$hz" >>"$results" <<'EOF'
import json, sys
path, label, s0, s1, hz = sys.argv[1:6]
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
print(f"{label} {w['iops']:.0f} {w['bw_bytes'] / 2**20:.1f} {(fio_us + (kt + pt) * us) / ios:.1f} "
      f"{pt * us / ios:.1f} {job['usr_cpu']:.1f} {job['sys_cpu']:.1f} {ios}")
EOF
        tail -1 "$results" | awk '{printf "#   round %s %-10s %-9s %8s IOPS %8s MiB/s %8s us/io %8s us/io in the server\n", $1, $2, $3, $4, $5, $6, $7}' >&2
        case $c in
        first4k) [ "$(tail -1 "$results" | awk '{print $10}')" -ge $((bytes / chunk)) ] || say "  $t $c stopped at 120 s before the end" ;;
        first1m) [ "$(tail -1 "$results" | awk '{print $10}')" -ge $((bytes >> 20)) ] || say "  $t $c stopped at 120 s before the end" ;;
        esac
}

# ================= part 1: fio through the loop devices =================
if [ "$do_fio" = 1 ]; then
        lvss_size=$size
        lib_first4k_iolog "$work/first4k.iolog" "$bytes" "$chunk"
        for t in $targets; do
                case $t in
                plain)
                        truncate -s "$bytes" "$work/plain.img"
                        loop_attach "dev[plain]" "$work/plain.img"
                        ;;
                lvss)
                        lvss_start lvss v
                        loop_attach "dev[lvss]" "$work/lvss.mnt/volumes/v"
                        ;;
                qsd-direct|qsd-page)
                        truncate -s "$bytes" "$work/$t.img"
                        qsd_start "$t" 0
                        ;;
                *) die "unknown target '$t'" ;;
                esac
                say "$t on ${dev[$t]}: prefilling $size"
                # shellcheck disable=SC2046
                fio $(fio_job fill "${dev[$t]}") >/dev/null
        done

        read -ra tl <<<"$targets"
        n=${#tl[@]}
        for r in $(seq "$rounds"); do
                k=$(( (r - 1) % n ))
                order=("${tl[@]:k}" "${tl[@]:0:k}")
                say "round $r of $rounds ($(cut -d' ' -f1-3 /proc/loadavg)): ${order[*]}"
                for phase in none shadow4k shadow1m; do
                        case $phase in
                        none) pc="rand4k seq1m" sh=0 ;;
                        shadow4k) pc="first4k rewrite4k" sh=1 ;;
                        shadow1m) pc="first1m rewrite1m" sh=1 ;;
                        esac
                        run=()
                        for c in $pc; do [[ " $cases " == *" $c "* ]] && run+=("$c"); done
                        [ ${#run[@]} -gt 0 ] || continue
                        for t in "${order[@]}"; do shadow_set "$t" "$sh"; done
                        for c in "${run[@]}"; do
                                for t in "${order[@]}"; do run_case "$r" "$t" "$c"; done
                        done
                done
        done
        [[ " $targets " == *" lvss "* ]] && say "lvss-fuse-export: $(lib_ctl "$work/lvss.ctl" stats)"

        for t in $targets; do
                case $t in
                plain) loop_detach "${dev[plain]}" ;;
                lvss) shadow_set lvss 0; loop_detach "${dev[lvss]}"; lvss_stop lvss ;;
                qsd-*) qsd_stop "$t" ;;
                esac
        done
        rm -rf "$work"/*.img "$work"/*.fleece.* "$work/lvss"
fi

# ================= part 2: hold_ms of a two-volume set under load =================
# freeze_pair MNT: the milliseconds of "fsfreeze -f MNT; fsfreeze -u MNT", timed from here.
freeze_pair() {
        local a b
        a=$(date +%s%N)
        fsfreeze -f "$1"
        fsfreeze -u "$1" || { sleep 0.2; fsfreeze -u "$1"; }
        b=$(date +%s%N)
        echo "$(( (b - a) / 1000 ))" | awk '{printf "%.3f", $1 / 1000}'
}

# freeze_set MNT...: freeze-snapshot without lvss: syncfs each, then (timed, in ms) FIFREEZE each in
# order and FITHAW each in reverse, by ioctl as lvss-fuse-export does; prints "total freeze thaw".
freeze_set() {
        python3 - "$@" <<'PYEOF'
import ctypes, fcntl, os, sys, time
FIFREEZE, FITHAW = 0xC0045877, 0xC0045878
libc = ctypes.CDLL(None, use_errno=True)
fds = [os.open(m, os.O_RDONLY | os.O_DIRECTORY) for m in sys.argv[1:]]
for fd in fds:
    libc.syncfs(fd)
frozen = []
try:
    t0 = time.monotonic()
    for fd in fds:
        fcntl.ioctl(fd, FIFREEZE, 0)
        frozen.append(fd)
    t1 = time.monotonic()
finally:
    for fd in reversed(frozen):
        fcntl.ioctl(fd, FITHAW, 0)
    t2 = time.monotonic()
print(f"{(t2 - t0) * 1e3:.3f} {(t1 - t0) * 1e3:.3f} {(t2 - t1) * 1e3:.3f}")
PYEOF
}

if [ "$do_hold" = 1 ]; then
        lvss_size=$hold_size
        lvss_start set ext4 xfs
        declare -A fsmnt=()
        for fs in ext4 xfs; do
                loop_attach "dev[$fs]" "$work/set.mnt/volumes/$fs"
                case $fs in
                ext4) mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "${dev[$fs]}" ;;
                xfs) mkfs.xfs -q -f -K "${dev[$fs]}" ;;
                esac
                fsmnt[$fs]=$work/fs-$fs
                mkdir -p "${fsmnt[$fs]}"
                mount "${dev[$fs]}" "${fsmnt[$fs]}"
                FSMNTS[${fsmnt[$fs]}]=1
                fio --name=layout --filename="${fsmnt[$fs]}/load" --size="$load_size" --rw=write --bs=1M \
                        --ioengine=libaio --direct=1 --iodepth=4 >/dev/null
        done
        sync -f "${fsmnt[ext4]}"; sync -f "${fsmnt[xfs]}"; sync -f "$work"

        # What forking date and fsfreeze twice costs by itself: the same timing around two /bin/true.
        spawn_ms=$(for _ in 1 2 3 4 5; do
                a=$(date +%s%N); /bin/true; /bin/true; b=$(date +%s%N); echo $(( (b - a) / 1000 ))
        done | sort -n | sed -n 3p | awk '{printf "%.3f", $1 / 1000}')
        echo "spawn $spawn_ms" >>"$holds"

        for mode in direct buffered; do
                d=1; [ "$mode" = buffered ] && d=0
                loads=()
                for fs in ext4 xfs; do
                        fio --name="load-$fs" --filename="${fsmnt[$fs]}/load" --size="$load_size" --rw=randwrite \
                                --bs=4k --ioengine=libaio --iodepth=16 --direct=$d --time_based --runtime=3600 \
                                --output=/dev/null >/dev/null 2>&1 &
                        PIDS[$!]=load
                        loads+=($!)
                done
                say "hold: $mode load on ext4 and xfs ($(cut -d' ' -f1-3 /proc/loadavg))"
                sleep 3
                for i in $(seq "$hold_samples"); do
                        reply=$(lib_ctl "$work/set.ctl" freeze-snapshot "${fsmnt[ext4]}" "${fsmnt[xfs]}") ||
                                die "freeze-snapshot: $reply"
                        hold=$(sed -n 's/.*hold_ms=\([^ ]*\).*/\1/p' <<<"$reply")
                        frz=$(sed -n 's/.*freeze_ms=\([^ ]*\).*/\1/p' <<<"$reply")
                        for s in $(sed -n 's/.*shadows=\([^ ]*\).*/\1/p' <<<"$reply" | tr , ' '); do
                                lib_ctl "$work/set.ctl" "delete $s" >/dev/null
                        done
                        sleep 0.5
                        fe=$(freeze_pair "${fsmnt[ext4]}"); sleep 0.5
                        fx=$(freeze_pair "${fsmnt[xfs]}"); sleep 0.5
                        read -r st sf sth < <(freeze_set "${fsmnt[ext4]}" "${fsmnt[xfs]}"); sleep 0.5
                        echo "$mode $i $hold $frz $fe $fx $st $sf $sth" >>"$holds"
                        say "  $mode $i: hold_ms=$hold freeze_ms=$frz; fsfreeze pair ext4 $fe xfs $fx;" \
                            "the set without lvss: $st (freeze $sf, thaw $sth)"
                done
                for p in "${loads[@]}"; do
                        lib_stop "$p"
                        wait "$p" 2>/dev/null || true
                        unset "PIDS[$p]"
                done
        done
        for fs in ext4 xfs; do
                umount "${fsmnt[$fs]}"
                unset "FSMNTS[${fsmnt[$fs]}]"
                loop_detach "${dev[$fs]}"
        done
        lvss_stop set
fi

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); total time $(( $(date +%s) - t_start )) s" >>"$work/notes"
if [ -n "$save" ]; then
        { sed 's/^/# /' "$work/notes"; sed 's/^/fio /' "$results"; sed 's/^/hold /' "$holds"; } >"$save"
fi

# ================= the tables =================
python3 - "$results" "$holds" "$targets" "$cases" "$work/notes" <<'EOF'
import statistics as st, sys
res, holds, targets, cases, notes = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), sys.argv[5]
med = st.median
print("```")
print(open(notes).read().rstrip())
print("```")
rows = {}
for l in open(res):
    r, t, c, *v = l.split()
    rows[(int(r), t, c)] = [float(x) for x in v]  # iops mib cpu srv usr sys ios
rounds = sorted({k[0] for k in rows})
checks = []
def paired(t, u, c, i=1):
    v = [rows[(r, t, c)][i] / rows[(r, u, c)][i] for r in rounds
         if (r, t, c) in rows and (r, u, c) in rows and rows[(r, u, c)][i] > 0]
    return med(v) if v else None
if rows:
    qsds = [t for t in targets if t.startswith("qsd")]
    print()
    print(f"Medians of {len(rounds)} round(s). ratio: to plain (same round). CPU: us per write, fio + server + kernel threads + irq; server: the server process alone.")
    print()
    print("| case | target | IOPS | MiB/s | ratio | CPU us/IO | server us/IO |")
    print("|---|---|---|---|---|---|---|")
    for c in cases:
        for t in targets:
            v = [rows[(r, t, c)] for r in rounds if (r, t, c) in rows]
            if not v:
                continue
            m = [med(x[i] for x in v) for i in range(7)]
            ratio = paired(t, "plain", c) if t != "plain" else 1.0
            ratio = f"{ratio:.2f}" if ratio is not None else "-"
            srv = f"{m[3]:.1f}" if t != "plain" else "-"
            print(f"| {c} | {t} | {m[0]:.0f} | {m[1]:.1f} | {ratio} | {m[2]:.1f} | {srv} |")
    if "lvss" in targets and qsds:
        print()
        print("lvss against qemu-storage-daemon, medians of the per-round ratios (throughput >1: lvss faster; CPU <1: lvss cheaper):")
        print()
        print("| case | " + " | ".join(f"lvss/{q} MiB/s | lvss/{q} CPU" for q in qsds) + " |")
        print("|---|" + "---|---|" * len(qsds))
        for c in cases:
            cells = []
            for q in qsds:
                a, b = paired("lvss", q, c, 1), paired("lvss", q, c, 2)
                cells += [f"{a:.2f}" if a else "-", f"{b:.2f}" if b else "-"]
                if a is not None:
                    checks.append((f"lvss faster than {q}, {c}", a, ">", 1.0))
            print(f"| {c} | " + " | ".join(cells) + " |")
    for c, lim in (("rand4k", 0.85), ("seq1m", 0.65)):
        a = paired("lvss", "plain", c)
        if a is not None:
            checks.append((f"lvss no shadow {c} vs plain", a, ">=", lim))
hold = [l.split() for l in open(holds)]
spawn = [float(l[1]) for l in hold if l[0] == "spawn"]
hold = [l for l in hold if l[0] != "spawn"]
if hold:
    print()
    print("hold_ms of a two-volume set (ext4 + xfs) under fio load, medians (min-max), ms. \"set\": the same syncfs,")
    print("FIFREEZE ext4, FIFREEZE xfs, FITHAW xfs, FITHAW ext4 without lvss (ioctls timed in-process);")
    print("lvss inside = hold_ms - freeze_ms - the set's thaw (same sample): lvss's hold, snapshots and release.")
    print()
    print("| load | hold_ms | freeze_ms | hold - freeze | set total | set freeze | set thaw | lvss inside | fsfreeze -f/-u ext4 | xfs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    hm = {}
    for mode in ("direct", "buffered"):
        v = [[float(x) for x in l[2:]] for l in hold if l[0] == mode]
        if not v:
            continue
        h, f, fe, fx, tt, tf, tth = ([x[i] for x in v] for i in range(7))
        inside = [a - b - c for a, b, c in zip(h, f, tth)]
        cols = [h, f, [a - b for a, b in zip(h, f)], tt, tf, tth, inside, fe, fx]
        hm[mode] = (med(h), med(inside))
        print(f"| {mode} | " + " | ".join(f"{med(c):.1f} ({min(c):.1f}-{max(c):.1f})" for c in cols) + " |")
    if spawn:
        print(f"\n(the fsfreeze timings include forking date and fsfreeze twice: {spawn[0]:.1f} ms for the same around two /bin/true)")
    if "direct" in hm and "buffered" in hm:
        checks.append(("hold_ms buffered / direct", hm["buffered"][0] / hm["direct"][0], "<=", 1.3))
    for mode, (h, extra) in hm.items():
        checks.append((f"lvss inside the freeze, {mode}, ms", extra, "<=", 5.0))
if checks:
    print()
    print("Targets:")
    for name, v, op, lim in checks:
        ok = v > lim if op == ">" else v >= lim if op == ">=" else v <= lim
        print(f"  {name:<52} {v:8.2f}  ({op} {lim})  {'PASS' if ok else 'MISS'}")
EOF

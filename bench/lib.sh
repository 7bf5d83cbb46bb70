# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Shell functions shared by bench/bench-fuse.sh and bench/bench-qsd.sh. Sourced, not run; bash.
# Each takes its paths as arguments and keeps no state of its own, except lib_build, which sets
# engine and exporter.

# lib_build SRC: sets engine and exporter to the lvss-engine and lvss-fuse-export binaries:
# $LVSS_ENGINE_BIN and $LVSS_FUSE_EXPORT_BIN if both are set, else those of a release build in
# $LVSS_BENCH_BUILDDIR (default SRC/build-bench), configured and built as needed.
lib_build() {
        local src=$1 builddir=${LVSS_BENCH_BUILDDIR:-$1/build-bench}
        engine=${LVSS_ENGINE_BIN:-}
        exporter=${LVSS_FUSE_EXPORT_BIN:-}
        if [ -z "$engine" ] || [ -z "$exporter" ]; then
                if [ ! -f "$builddir/build.ninja" ]; then
                        printf '# configuring a release build in %s\n' "$builddir" >&2
                        meson setup "$builddir" "$src" --buildtype=release >&2
                fi
                ninja -C "$builddir" tools/lvss-engine export/lvss-fuse-export >&2
                engine=$builddir/tools/lvss-engine
                exporter=$builddir/export/lvss-fuse-export
        fi
        if [ ! -x "$exporter" ]; then
                echo "$exporter is missing (is libfuse3-dev installed?)" >&2
                return 1
        fi
}

# lib_ctl SOCKET COMMAND...: sends one command to lvss-fuse-export's control socket; prints the
# reply line, fails if it is not "ok ...".
lib_ctl() {
        local sock=$1
        shift
        python3 - "$sock" "$*" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.write(sys.argv[2] + "\n"); f.flush()
reply = f.readline().strip()
print(reply)
sys.exit(0 if reply.startswith("ok") else 1)
EOF
}

# lib_cpu_sample FILE [PID]: writes the CPU ticks (JSON) of every kernel thread by PID (loop and
# FUSE workers, kworkers, ksoftirqd, the host filesystem's threads), the machine's irq and softirq
# time, and process PID's (all its threads, as "exporter"; 0 or none: no process). Between two
# samples, with fio's own CPU, that is the CPU the I/O path costs without the other programs the
# machine runs (machine-wide totals would count them). Kernel threads that exit between the
# samples are lost (a slight underestimate).
lib_cpu_sample() {
        python3 - "${2:-0}" "$1" <<'EOF'
import glob, json, sys
kthreads = {}
for path in glob.glob("/proc/[0-9]*/stat"):
    try:
        s = open(path).read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    if int(f[6]) & 0x00200000:  # PF_KTHREAD
        kthreads[path.split("/")[2]] = int(f[11]) + int(f[12])
cpu = open("/proc/stat").readline().split()
exp = 0
if sys.argv[1] != "0":
    try:
        f = open(f"/proc/{sys.argv[1]}/stat").read()
        f = f[f.rindex(")") + 2:].split()
        exp = int(f[11]) + int(f[12])
    except OSError:
        pass
json.dump({"kthreads": kthreads, "irq": int(cpu[6]) + int(cpu[7]), "exporter": exp}, open(sys.argv[2], "w"))
EOF
}

# lib_evict DIR: drops the files under DIR from the host page cache (call after sync), so that
# every case starts from the disk, whatever the previous one left cached: the engine writes its
# image through the page cache, and the size of the cached folios left by earlier writes changes
# what a 4 KiB write costs (ext4_block_write_begin walks every block of a large folio). Mount
# points under DIR (directories, or regular files a FUSE export is mounted on) are skipped.
lib_evict() {
        python3 - "$1" <<'EOF'
import os, sys
top = os.stat(sys.argv[1]).st_dev
for dirpath, dirs, names in os.walk(sys.argv[1]):
    dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(dirpath, d))]  # not the export
    for n in names:
        p = os.path.join(dirpath, n)
        try:
            if os.lstat(p).st_dev != top:
                continue  # a file something is mounted on
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        os.close(fd)
EOF
}

# lib_first4k_iolog PATH BYTES CHUNK: writes the fio iolog (version 2) of one 4 KiB write at the
# start of every CHUNK of BYTES, in a fixed random order: every write is a chunk's first.
lib_first4k_iolog() {
        python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
offs = list(range(0, size, chunk))
random.Random(1).shuffle(offs)
with open(path, "w") as f:
    f.write("fio version 2 iolog\n/dev/null add\n/dev/null open\n")
    for o in offs:
        f.write(f"/dev/null write {o} 4096\n")
    f.write("/dev/null close\n")
EOF
}

# lib_stop PID: SIGTERM, up to 5 s to exit, then SIGKILL. Only for a PID this script started.
lib_stop() {
        local pid=$1
        kill -0 "$pid" 2>/dev/null || return 0
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        return 0
}

#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Backup throughput, side by side in one run: a tree of --size (default 2 GiB) on an ext4 lvss
# volume (mounted from a direct-I/O loop device over the volume's file), and in each round,
# in an order that alternates:
#   tar     `tar -cf OUT.tar -C MNT .` from the live file system (GNU tar, what an admin would do
#           without shadow copies)
#   lvss    `lvss backup --to DIR MNT`: a set, the shadow exposed read-only, the pax tar, list,
#           BCD and manifest (SHA-256 of every file), the set released
# each after dropping the page cache (so that both read from the volume), then an incremental
# `lvss backup --type incremental --base DIR MNT` after changing --change (default 1%) of the
# files, to show what it reads. Prints medians, the throughput ratio lvss/tar (issue 5's target:
# >= 0.8) and the incremental's bytes read as a share of the tree. Not a test.
#
#   bench/bench-backup.py [--size 2G] [--rounds 3] [--dir /var/tmp]
#
# Binaries: $LVSS_LVSSD, $LVSS_CLI (or $LVSS_PREFIX), as the end-to-end tests find them. As root.

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import daemon as d  # noqa: E402

MiB = 1 << 20


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def drop_caches(paths):
    # sync -f of the file systems involved only: a plain sync waits for every file system of the
    # machine, and hangs behind any that another user has frozen or whose device has stopped
    for p in paths:
        subprocess.run(["sync", "-f", str(p)], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(argv, paths):
    drop_caches(paths)
    t0 = time.monotonic()
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return time.monotonic() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="2G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--change", type=float, default=1.0, help="percent of files changed for the incremental")
    ap.add_argument("--dir", default=os.environ.get("LVSS_BENCH_DIR", "/var/tmp"))
    args = ap.parse_args()
    size = parse_size(args.size)
    if os.geteuid() != 0:
        sys.exit("bench-backup: run as root")
    d.ensure_groups()
    work = Path(tempfile.mkdtemp(prefix="lvss-bench-backup-", dir=args.dir))
    lvssd = d.Daemon(d.lvssd_path(), d.cli_path(), d.new_root())
    lvssd.state = work / "state"  # the volume on the disk, not /tmp's file system if it differs
    try:
        lvssd.start()
        vol = max(size * 3 // 2, 256 * MiB)
        lvssd.create_volume("data", f"{vol // MiB}M")
        _, mnt = lvssd.host.new_fs(lvssd.volume_path("data"), "ext4", lvssd.root / "mnt")
        rng = random.Random(1)
        # A tree like a home directory: many small files, some medium, a few large.
        sizes, total = [], 0
        while total < size:
            s = rng.choice([4 << 10] * 6 + [64 << 10] * 3 + [1 * MiB] * 2 + [16 * MiB])
            sizes.append(s)
            total += s
        for i, s in enumerate(sizes):
            sub = mnt / f"d{i // 200:03d}"
            sub.mkdir(exist_ok=True)
            with open(sub / f"f{i:06d}", "wb") as f:
                f.write(os.urandom(s))
        subprocess.run(["sync", "-f", str(mnt)], check=True)
        print(f"bench-backup: {len(sizes)} files, {total / MiB:.0f} MiB, {args.rounds} rounds", flush=True)

        tar_s, lvss_s = [], []
        for r in range(args.rounds):
            for what in (["tar", "lvss"] if r % 2 == 0 else ["lvss", "tar"]):
                out = work / f"out-{what}-{r}"
                if what == "tar":
                    t, _ = timed(["tar", "-cf", str(out) + ".tar", "-C", str(mnt), "."], (mnt, work))
                    tar_s.append(t)
                    os.unlink(str(out) + ".tar")
                else:
                    t, res = timed([lvssd.cli, "--socket", str(lvssd.socket), "--json", "backup", "--to", str(out),
                                    str(mnt)], (mnt, work))
                    lvss_s.append(t)
                    if r < args.rounds - 1:
                        shutil.rmtree(out)
                    else:
                        full = out
                print(f"  round {r} {what}: {t:.2f} s", flush=True)

        # The incremental after changing a share of the files.
        changed = rng.sample(range(len(sizes)), max(1, int(len(sizes) * args.change / 100)))
        for i in changed:
            with open(mnt / f"d{i // 200:03d}" / f"f{i:06d}", "r+b") as f:
                f.write(os.urandom(min(4096, sizes[i])))
        subprocess.run(["sync", "-f", str(mnt)], check=True)
        t_inc, res = timed([lvssd.cli, "--socket", str(lvssd.socket), "--json", "backup", "--type", "incremental",
                            "--base", str(full), "--to", str(work / "inc"), str(mnt)], (mnt, work))
        inc = json.loads(res)

        mt, ml = statistics.median(tar_s), statistics.median(lvss_s)
        print(f"tar -cf (live):      {mt:.2f} s  {total / MiB / mt:.0f} MiB/s")
        print(f"lvss backup (full):  {ml:.2f} s  {total / MiB / ml:.0f} MiB/s")
        print(f"throughput lvss/tar: {mt / ml:.2f}x  (target >= 0.8)")
        print(f"incremental ({args.change:g}% of files changed, {len(changed)} files): {t_inc:.2f} s, "
              f"read {inc['bytes_read'] / MiB:.1f} MiB = {100 * inc['bytes_read'] / total:.2f}% of the tree, "
              f"stored {inc['entries_stored']} entries, wrote {inc['bytes_written'] / MiB:.1f} MiB")
    finally:
        lvssd.teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

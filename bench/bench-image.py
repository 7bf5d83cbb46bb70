#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Image backups, side by side in one run: an lvss volume of --size (default 2 GiB) whose chunks are
# --fill (default 60%) random data and the rest zeros, and in each round, in an order that
# alternates:
#   dd      `dd if=VOLUME of=OUT bs=1M conv=sparse` of the live volume (what an admin would do
#           without shadow copies: a raw copy, holes for zeros)
#   lvss    `lvss backup --image --to DIR data`: a set, the shadow read whole, T.img (sparse) and
#           T.map (SHA-256 of every stored chunk), the manifest; the set kept for the next one
# each after dropping the page cache; then --change (default 1%) of the volume's chunks rewritten
# at random and `lvss backup --image --type incremental`: what it reads, as a share of the volume
# (issue 5's target: <= 2% for 1% changed chunks), and its time. Not a test.
#
#   bench/bench-image.py [--size 2G] [--rounds 3] [--change 1] [--dir /var/tmp]
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


def drop_caches():
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(argv):
    drop_caches()
    t0 = time.monotonic()
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return time.monotonic() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="2G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fill", type=float, default=60.0, help="percent of chunks holding data")
    ap.add_argument("--change", type=float, default=1.0, help="percent of chunks changed for the incremental")
    ap.add_argument("--dir", default=os.environ.get("LVSS_BENCH_DIR", "/var/tmp"))
    args = ap.parse_args()
    size = parse_size(args.size)
    if os.geteuid() != 0:
        sys.exit("bench-image: run as root")
    d.ensure_groups()
    work = Path(tempfile.mkdtemp(prefix="lvss-bench-image-", dir=args.dir))
    lvssd = d.Daemon(d.lvssd_path(), d.cli_path(), d.new_root())
    lvssd.state = work / "state"
    try:
        lvssd.start()
        vol = lvssd.create_volume("data", f"{size // MiB}M")
        chunk = vol["chunk_size"]
        n_chunks = size // chunk
        rng = random.Random(1)
        path = lvssd.volume_path("data")
        filled = sorted(rng.sample(range(n_chunks), int(n_chunks * args.fill / 100)))
        with open(path, "r+b") as f:
            for c in filled:
                f.seek(c * chunk)
                f.write(rng.randbytes(chunk))
            os.fsync(f.fileno())
        print(f"bench-image: {size / MiB:.0f} MiB volume, chunks of {chunk // 1024} KiB, "
              f"{len(filled)} of {n_chunks} hold data, {args.rounds} rounds", flush=True)

        cli = [lvssd.cli, "--socket", str(lvssd.socket), "--json"]
        dd_s, full_s, inc_s, inc_read = [], [], [], []
        for r in range(args.rounds):
            full = work / f"full-{r}"
            for what in (["dd", "lvss"] if r % 2 == 0 else ["lvss", "dd"]):
                if what == "dd":
                    out = work / f"dd-{r}.img"
                    t, _ = timed(["dd", f"if={path}", f"of={out}", "bs=1M", "conv=sparse", "status=none"])
                    dd_s.append(t)
                    out.unlink()
                else:
                    t, res = timed(cli + ["backup", "--image", "--to", str(full), "data"])
                    full_s.append(t)
                print(f"  round {r} {what}: {t:.2f} s", flush=True)

            changed = rng.sample(range(n_chunks), max(1, int(n_chunks * args.change / 100)))
            with open(path, "r+b") as f:
                for c in changed:
                    f.seek(c * chunk)
                    f.write(rng.randbytes(chunk))
                os.fsync(f.fileno())
            t, res = timed(cli + ["backup", "--image", "--type", "incremental", "--base", str(full), "--to",
                                  str(work / f"inc-{r}"), "data"])
            inc = json.loads(res)
            inc_s.append(t)
            inc_read.append(inc["bytes_read"])
            print(f"  round {r} incremental ({len(changed)} chunks changed): {t:.2f} s, read "
                  f"{inc['bytes_read'] / MiB:.1f} MiB", flush=True)
            lvssd.ok("backup", "verify", str(work / f"inc-{r}"))
            shutil.rmtree(full)
            shutil.rmtree(work / f"inc-{r}")

        md, mf, mi = statistics.median(dd_s), statistics.median(full_s), statistics.median(inc_s)
        share = statistics.median(inc_read) / size
        print(f"dd of the live volume:   {md:.2f} s  {size / MiB / md:.0f} MiB/s")
        print(f"lvss backup --image:     {mf:.2f} s  {size / MiB / mf:.0f} MiB/s  ({md / mf:.2f}x dd)")
        print(f"incremental ({args.change:g}% of chunks changed): {mi:.2f} s, read {100 * share:.2f}% of the "
              f"volume (target <= 2%)")
    finally:
        lvssd.teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What writers cost a set, measured side by side in one run: lvssd with one ext4 volume (64 MiB,
# mounted from a loop device over the volume's file), and rounds of `lvss --json create MNT`
# with 0, 1 and 20 registered writers (tests/writers/lvss-test-writer, levels in turn, each with
# a component on the volume), the cases interleaved round by round. For each case:
#   wall_ms       the whole `lvss create` call (the writers' rounds, syncfs, freeze, snapshots)
#   hold_ms       lvssd's freeze window of the file systems (its reply)
#   frozen_ms     how long the writers stayed frozen: from the first writer's Freeze callback to
#                 the last writer's Thaw callback (the writers' shared log, CLOCK_MONOTONIC)
# Medians and the ratio of each case to "0 writers". The set is deleted after each round (outside
# the timing). Not a test: the figures go to bench/RESULTS.md.
#
#   bench/bench-writers.py [--rounds N] [--writers "0 1 20"]
#
# The binaries: $LVSS_LVSSD, $LVSS_CLI and $LVSS_TEST_WRITER, else under $LVSS_PREFIX, else on PATH
# (as the end-to-end tests find them). As root.

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import daemon as d  # noqa: E402


def test_writer():
    path = os.environ.get("LVSS_TEST_WRITER")
    if not path and os.environ.get("LVSS_PREFIX"):
        path = os.path.join(os.environ["LVSS_PREFIX"], "libexec", "lvss", "lvss-test-writer")
    if not path or not os.path.exists(path):
        sys.exit("bench-writers: lvss-test-writer not found: set LVSS_TEST_WRITER or LVSS_PREFIX")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--writers", default="0 1 20")
    args = ap.parse_args()
    counts = [int(x) for x in args.writers.split()]
    if os.geteuid() != 0:
        sys.exit("bench-writers: run as root")
    d.ensure_groups()
    lvssd = d.Daemon(d.lvssd_path(), d.cli_path(), d.new_root())
    procs = []
    samples = {n: {"wall": [], "hold": [], "frozen": []} for n in counts}
    try:
        lvssd.start()
        lvssd.create_volume("a", "64M")
        _, mnt = lvssd.host.new_fs(lvssd.volume_path("a"), "ext4", lvssd.root / "mnt")
        (mnt / "data").mkdir()
        log = lvssd.root / "writers.log"
        levels = ["front-end", "back-end", "system"]
        running = {}

        def start(i):
            ready = lvssd.root / f"ready-{i}"
            ready.unlink(missing_ok=True)
            p = subprocess.Popen(
                [test_writer(), "--socket", str(lvssd.socket), "--name", f"w{i:02d}", "--level",
                 levels[i % 3], "--path", str(mnt / "data"), "--log", str(log), "--ready-file",
                 str(ready)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            procs.append(p)
            running[i] = p
            while not ready.exists():
                assert p.poll() is None, f"writer {i} exited {p.returncode}"
                time.sleep(0.01)

        def stop(i):
            p = running.pop(i)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)

        for r in range(args.rounds):
            order = counts[r % len(counts):] + counts[:r % len(counts)]
            for n in order:
                # Exactly N writers registered for this case.
                for i in sorted(running):
                    if i >= n:
                        stop(i)
                for i in range(n):
                    if i not in running:
                        start(i)
                deadline = time.monotonic() + 5
                while len(lvssd.json("list", "writers")) != n:
                    assert time.monotonic() < deadline, "writers did not (un)register"
                    time.sleep(0.01)
                start_off = log.stat().st_size if log.exists() else 0
                t0 = time.monotonic()
                res = lvssd.json("create", mnt)
                wall = (time.monotonic() - t0) * 1000
                assert len(res["writers"]) == n and all(w["state"] == "stable" for w in res["writers"]), res
                samples[n]["wall"].append(wall)
                samples[n]["hold"].append(res["hold_ms"])
                if n > 0:
                    with open(log, "rb") as f:
                        f.seek(start_off)
                        rows = [x.split() for x in f.read().decode().splitlines()]
                    fr = [int(x[0]) for x in rows if x[2] == "freeze"]
                    th = [int(x[0]) for x in rows if x[2] == "thaw"]
                    assert len(fr) == n and len(th) == n, (n, rows)
                    samples[n]["frozen"].append((max(th) - min(fr)) / 1e6)
                lvssd.ok("delete", "--set", res["set"])
        base = statistics.median(samples[counts[0]]["wall"])
        print(f"bench-writers: {args.rounds} rounds, cases interleaved; medians (ms)")
        print(f"{'writers':>8} {'wall_ms':>9} {'x0':>6} {'hold_ms':>8} {'frozen_ms':>10}")
        for n in counts:
            s = samples[n]
            wall = statistics.median(s["wall"])
            frozen = statistics.median(s["frozen"]) if s["frozen"] else float("nan")
            print(f"{n:>8} {wall:>9.1f} {wall / base:>6.2f} {statistics.median(s['hold']):>8.2f} {frozen:>10.2f}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        lvssd.teardown()


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvssd under a fuzzer of its D-Bus API (lvss-bus-fuzz.c): random methods, signatures and
# arguments, raw garbage on the socket, floods and a misbehaving writer, for
# $LVSS_RELIABILITY_SECONDS (30) with a seed ($LVSS_RELIABILITY_SEED, else $LVSS_TEST_SEED,
# else a random one, printed). Afterwards lvssd must be the same process, answer `lvss list
# volumes`, not have grown (VmRSS after a warm-up phase vs. at the end), have reported nothing
# under the sanitizers, and the data of the two protected volumes must be unchanged: one left
# unmounted (its bytes, by sha256) and one mounted ext4 during the run (sets freeze it; its files
# compared, and fsck -n, after).
#
# Run as root, like tests/e2e, against built or installed programs:
#   LVSS_LVSSD=BUILD/service/lvssd LVSS_CLI=BUILD/cli/lvss \
#   [LVSS_BUS_FUZZ=BUILD/tests/reliability/lvss-bus-fuzz] python3 -m pytest tests/reliability/test_bus_fuzz.py
# lvss-bus-fuzz is found in $LVSS_BUS_FUZZ, else next to $LVSS_CLI in its build tree
# (BUILD/cli/lvss -> BUILD/tests/reliability/lvss-bus-fuzz).

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import daemon  # noqa: E402  (tests/e2e/daemon.py)

MiB = 1 << 20
PROTECTED_RAW = "keep-raw"  # never mounted during the run: its bytes must not change
PROTECTED_FS = "keep-fs"  # ext4, mounted during the run: its files must not change


def fuzz_binary():
    path = os.environ.get("LVSS_BUS_FUZZ")
    if path:
        return path
    cli = os.environ.get("LVSS_CLI")
    if cli:
        cand = Path(cli).resolve().parent.parent / "tests" / "reliability" / "lvss-bus-fuzz"
        if cand.exists():
            return str(cand)
    return None


def is_asan(binary):
    """Whether BINARY was built with AddressSanitizer (its RSS then says little about leaks)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def tree_digest(root):
    """{relative path: sha256} of every regular file under ROOT (lost+found aside)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "lost+found"]
        for name in filenames:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def write_tree(root, rng, n=60):
    for i in range(n):
        d = Path(root) / f"d{i % 7}"
        d.mkdir(exist_ok=True)
        size = rng.choice((rng.randrange(1, 4096), rng.randrange(4096, 256 * 1024)))
        (d / f"f{i:03d}").write_bytes(rng.randbytes(size))
    os.sync()


@pytest.fixture
def fuzz_env():
    """(Daemon started, fuzz binary): an lvssd of this test on its own directories."""
    if os.geteuid() != 0:
        pytest.skip("run as root (loop devices, mounts)")
    lvssd, cli = daemon.lvssd_path(), daemon.cli_path()
    if not lvssd or not cli:
        pytest.skip("lvssd or lvss not found: set LVSS_LVSSD and LVSS_CLI")
    fuzz = fuzz_binary()
    if not fuzz:
        pytest.skip("lvss-bus-fuzz not found: set LVSS_BUS_FUZZ, or LVSS_CLI to a build tree's cli/lvss")
    daemon.ensure_groups()
    d = daemon.Daemon(lvssd, cli, daemon.new_root())
    try:
        yield d.start(), fuzz
    finally:
        d.teardown()


def run_fuzz(d, fuzz, seconds, seed, scratch, timeout):
    argv = [fuzz, "--address", f"unix:path={d.socket}", "--seconds", str(seconds), "--seed", str(seed),
            "--timeout", str(timeout), "--protect", PROTECTED_RAW, "--protect", PROTECTED_FS,
            "--scratch", str(scratch)]
    print("$", " ".join(argv), flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300)
    print(proc.stdout, proc.stderr[-4000:], sep="\n", flush=True)
    assert proc.returncode == 0, (
        f"lvss-bus-fuzz exited {proc.returncode} (seed {seed}; replay: {' '.join(argv)}):\n"
        f"{proc.stdout}\n{proc.stderr[-8000:]}\n{d.log(120)}")
    summary = [line for line in proc.stdout.splitlines() if line.startswith("calls ")]
    assert summary, proc.stdout
    return summary[-1]


def test_bus_fuzz(fuzz_env):
    d, fuzz = fuzz_env
    seconds = float(os.environ.get("LVSS_RELIABILITY_SECONDS", "30"))
    seed = int(os.environ.get("LVSS_RELIABILITY_SEED") or os.environ.get("LVSS_TEST_SEED") or
               random.SystemRandom().randrange(1, 1 << 62))
    asan = is_asan(d.lvssd)
    call_timeout = 15 if asan else 5
    print(f"test_bus_fuzz: seed {seed} (LVSS_RELIABILITY_SEED={seed} replays it), {seconds:g} s, "
          f"lvssd {'ASan' if asan else 'plain'}", flush=True)
    rng = random.Random(seed)
    t0 = time.monotonic()

    def step(what):
        print(f"test_bus_fuzz: {time.monotonic() - t0:7.1f} s: {what}", flush=True)

    # Two protected volumes with known content, and one the fuzzer may destroy.
    d.create_volume(PROTECTED_RAW, "48M")
    d.create_volume(PROTECTED_FS, "64M")
    d.create_volume("victim", "32M")
    raw_path = d.volume_path(PROTECTED_RAW)
    daemon.write_durable(raw_path, rng.randbytes(8 * MiB), offset=0)
    daemon.write_durable(raw_path, rng.randbytes(1 * MiB), offset=40 * MiB)
    raw_sha = daemon.file_sha256(raw_path)

    mnt = d.root / "mnt"
    dev, _ = d.host.new_fs(d.volume_path(PROTECTED_FS), "ext4", mnt)
    write_tree(mnt, rng)
    fs_digest = tree_digest(mnt)
    assert len(fs_digest) == 60

    victim_dev, _ = d.host.new_fs(d.volume_path("victim"), "ext4", d.root / "victim-mnt")
    d.host.drop_fs(victim_dev, d.root / "victim-mnt")  # an ext4 on it, unmounted

    step("volumes made")
    scratch = d.root / "scratch"
    scratch.mkdir()
    pid = d.pid
    rss_start = vm_rss_kib(pid)

    # A warm-up (a third of the time), then the rest: the second part must not make lvssd grow.
    warm = max(2.0, seconds / 3)
    s1 = run_fuzz(d, fuzz, warm, seed, scratch, call_timeout)
    assert d.alive() and d.pid == pid, f"lvssd died during the warm-up (seed {seed}):\n{d.log(120)}"
    rss_warm = vm_rss_kib(pid)
    s2 = run_fuzz(d, fuzz, max(2.0, seconds - warm), seed + 1, scratch, call_timeout)
    assert d.alive() and d.pid == pid, f"lvssd died (seed {seed}):\n{d.log(120)}"
    rss_end = vm_rss_kib(pid)
    step("fuzzing done")
    growth = rss_end - rss_warm
    bound = max(64 * 1024, rss_warm // 2) if not asan else max(512 * 1024, rss_warm)
    print(f"test_bus_fuzz: lvssd VmRSS {rss_start} KiB at the start, {rss_warm} KiB after the warm-up, "
          f"{rss_end} KiB at the end (growth {growth} KiB, bound {bound} KiB)", flush=True)
    print(f"test_bus_fuzz: warm-up: {s1}\ntest_bus_fuzz: main: {s2}", flush=True)

    # lvssd answers, and still has the protected volumes.
    vols = d.volumes()
    assert PROTECTED_RAW in vols and PROTECTED_FS in vols, vols
    assert growth <= bound, (f"lvssd grew by {growth} KiB during the fuzzing after the warm-up "
                             f"({rss_warm} -> {rss_end} KiB; seed {seed})")

    step("lvssd answers")
    # The protected data: the raw volume byte for byte, the ext4 one file for file and clean.
    assert daemon.file_sha256(raw_path) == raw_sha, f"volume {PROTECTED_RAW} changed (seed {seed})"
    assert tree_digest(mnt) == fs_digest, f"files of volume {PROTECTED_FS} changed (seed {seed})"
    d.host.drop_fs(dev, mnt)
    dev = d.host.attach(d.volume_path(PROTECTED_FS))
    fsck = subprocess.run(["fsck.ext4", "-n", "-f", dev], capture_output=True, text=True)
    assert fsck.returncode == 0, f"fsck -n of {PROTECTED_FS} after the fuzzing (seed {seed}): {fsck.stdout}{fsck.stderr}"
    d.host.mount(dev, mnt, options="ro")
    assert tree_digest(mnt) == fs_digest, f"files of volume {PROTECTED_FS} changed after a remount (seed {seed})"
    d.host.umount(mnt)
    d.host.detach(dev)

    step("protected data checked")
    # Nothing from the sanitizers anywhere in the log (teardown looks at its tail only), and
    # lvssd still stops cleanly (leaks at exit are reported into the log: checked by teardown).
    log = d.log_path.read_text(errors="replace")
    assert "Sanitizer" not in log and "runtime error:" not in log, d.log(200)
    assert d.stop() == 0, f"lvssd exited {d.proc.returncode} on SIGTERM after the fuzzing:\n{d.log(120)}"
    log = d.log_path.read_text(errors="replace")
    assert "Sanitizer" not in log and "runtime error:" not in log, d.log(200)
    step("lvssd stopped")

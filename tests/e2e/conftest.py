# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Fixtures of the end-to-end tests. They drive the INSTALLED lvss-engine
# (path in $LVSS_ENGINE, else the one on PATH), as root, each test in its own
# temporary state directory. Loop devices and mounts a test makes are
# recorded by their exact device path and mount point and undone at teardown,
# even when the test fails.

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

SIGNAL_EXIT = "exited by signal"


def engine_path():
    path = os.environ.get("LVSS_ENGINE") or shutil.which("lvss-engine")
    if not path:
        pytest.exit("lvss-engine not found: set LVSS_ENGINE or put the installed one on PATH", returncode=2)
    return path


class Engine:
    """Runs lvss-engine on one volume directory and checks what it returns."""

    def __init__(self, path, volume):
        self.path = path
        self.dir = str(volume)

    def run(self, *args, input=None, timeout=300):
        proc = subprocess.run([self.path, *[str(a) for a in args]], input=input, capture_output=True,
                              timeout=timeout)
        assert proc.returncode >= 0, f"lvss-engine {args} {SIGNAL_EXIT} {-proc.returncode}: {proc.stderr!r}"
        return proc

    def ok(self, *args, input=None):
        proc = self.run(*args, input=input)
        assert proc.returncode == 0, f"lvss-engine {args} exited {proc.returncode}: {proc.stderr.decode()}"
        return proc.stdout.decode()

    def fails(self, code, *args, input=None):
        """Runs a command that must fail with exit CODE and one line on stderr; returns stderr."""
        proc = self.run(*args, input=input)
        err = proc.stderr.decode()
        assert proc.returncode == code, f"lvss-engine {args}: exit {proc.returncode}, want {code}: {err}"
        assert err.startswith("lvss-engine: "), err
        assert "Traceback" not in err and "AddressSanitizer" not in err, err
        return err

    def json(self, *args):
        return json.loads(self.ok("--json", *args))

    # Shorthands on this volume.
    def create(self, size, *opts):
        return self.json("create", self.dir, "--size", size, *opts)

    def info(self):
        return self.json("info", self.dir)

    def snapshots(self):
        return self.json("list", self.dir)

    def snapshot(self, *opts):
        return int(self.ok("snapshot", self.dir, *opts).strip())

    def write(self, offset, data):
        self.ok("write", self.dir, "--offset", offset, input=data)

    def read(self, offset=0, length=None, snapshot=None):
        args = ["read", self.dir, "--offset", offset]
        if length is not None:
            args += ["--length", length]
        if snapshot is not None:
            args += ["--snapshot", snapshot]
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    def changed(self, *ids):
        return self.json("changed", self.dir, *ids)


@pytest.fixture(scope="session")
def lvss_engine():
    return engine_path()


@pytest.fixture
def state(tmp_path):
    """The test's own state directory (removed by pytest's tmp_path rotation)."""
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def eng(lvss_engine, state):
    """An Engine on STATE/vol (not yet created)."""
    return Engine(lvss_engine, state / "vol")


@pytest.fixture
def rng(request):
    """A seeded random generator; the seed is printed so that a failure can be replayed."""
    seed = int(os.environ.get("LVSS_TEST_SEED", random.randrange(1 << 32)))
    print(f"seed {seed} (LVSS_TEST_SEED={seed} to replay)")
    return random.Random(seed)


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices and mounts)")


class Loops:
    """Loop devices and mounts made by one test, undone in reverse order at teardown."""

    def __init__(self):
        self.devices = []
        self.mounts = []

    def attach(self, image, read_only=False):
        args = ["losetup", "--find", "--show"] + (["--read-only"] if read_only else []) + [str(image)]
        dev = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
        assert dev.startswith("/dev/loop"), dev
        self.devices.append(dev)
        return dev

    def detach(self, dev):
        subprocess.run(["losetup", "--detach", dev], check=True)
        self.devices.remove(dev)

    def mount(self, dev, mountpoint, options=None, fstype=None):
        Path(mountpoint).mkdir(parents=True, exist_ok=True)
        args = ["mount"] + (["-t", fstype] if fstype else []) + (["-o", options] if options else [])
        subprocess.run(args + [dev, str(mountpoint)], check=True, capture_output=True)
        self.mounts.append(str(mountpoint))
        return Path(mountpoint)

    def umount(self, mountpoint):
        subprocess.run(["umount", str(mountpoint)], check=True)
        self.mounts.remove(str(mountpoint))

    def mount_image(self, image, mountpoint, options=None, fstype=None):
        """Attaches IMAGE to a loop device and mounts it; returns (device, mountpoint)."""
        ro = options is not None and "ro" in options.split(",")
        dev = self.attach(image, read_only=ro)
        return dev, self.mount(dev, mountpoint, options, fstype)

    def unmount_image(self, dev, mountpoint):
        self.umount(mountpoint)
        self.detach(dev)

    def cleanup(self):
        for m in reversed(self.mounts):
            for _ in range(10):
                if subprocess.run(["umount", m], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "--lazy", m], capture_output=True)
        for dev in reversed(self.devices):
            subprocess.run(["losetup", "--detach", dev], capture_output=True)
        self.mounts.clear()
        self.devices.clear()


@pytest.fixture
def loops():
    require_root()
    lp = Loops()
    yield lp
    lp.cleanup()


def kill_after(proc, seconds):
    """Sends SIGKILL to PROC after SECONDS unless it exited; returns True if it was killed."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


# ---- lvssd (the service) and lvss (its command): test_lvssd_*.py; helpers in daemon.py ----


@pytest.fixture(scope="session")
def lvssd_bins():
    """(lvssd, lvss) as installed; the groups lvss and lvss-admin exist afterwards."""
    import daemon

    require_root()
    lvssd, cli = daemon.lvssd_path(), daemon.cli_path()
    if not lvssd or not cli:
        pytest.exit("lvssd or lvss not found: set LVSS_LVSSD and LVSS_CLI (or LVSS_PREFIX), or put the "
                    "installed ones on PATH", returncode=2)
    daemon.ensure_groups()
    return lvssd, cli


@pytest.fixture
def lvssd_stopped(lvssd_bins):
    """A Daemon on its own directories, not started; everything undone at teardown."""
    import daemon

    d = daemon.Daemon(*lvssd_bins, daemon.new_root())
    yield d
    d.teardown()


@pytest.fixture
def lvssd(lvssd_stopped):
    """A running lvssd of this test alone (daemon.Daemon; its .host records loops and mounts)."""
    return lvssd_stopped.start()

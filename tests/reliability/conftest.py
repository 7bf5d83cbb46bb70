# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Fixtures of the reliability tests: the helpers of the end-to-end tests (tests/e2e/daemon.py: a
# Daemon runs lvssd on its own state and runtime directories, a Host undoes the loop devices and
# mounts a test made) and the binaries found as they find them ($LVSS_LVSSD, $LVSS_CLI, else
# $LVSS_PREFIX/sbin/lvssd and $LVSS_PREFIX/bin/lvss, else PATH). How long each test runs:
# --duration SECONDS, else $LVSS_RELIABILITY_SECONDS, else DEFAULT_SECONDS (small, for CI).

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import daemon  # noqa: E402

DEFAULT_SECONDS = 60.0


def pytest_addoption(parser):
    parser.addoption("--duration", type=float, default=None,
                     help="seconds each reliability test goes on killing lvssd (default "
                          f"$LVSS_RELIABILITY_SECONDS or {DEFAULT_SECONDS:g})")


@pytest.fixture(scope="session")
def duration(request):
    value = request.config.getoption("--duration")
    if value is None:
        value = float(os.environ.get("LVSS_RELIABILITY_SECONDS", DEFAULT_SECONDS))
    return value


@pytest.fixture
def rng():
    """A seeded random generator; the seed is printed so that a failure can be replayed."""
    seed = int(os.environ.get("LVSS_TEST_SEED", random.randrange(1 << 32)))
    print(f"\nseed {seed} (LVSS_TEST_SEED={seed} to replay)")
    r = random.Random(seed)
    r.lvss_seed = seed
    return r


@pytest.fixture(scope="session")
def lvssd_bins():
    """(lvssd, lvss); the groups lvss and lvss-admin exist afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, mounts, freezing filesystems)")
    lvssd, cli = daemon.lvssd_path(), daemon.cli_path()
    if not lvssd or not cli:
        pytest.exit("lvssd or lvss not found: set LVSS_LVSSD and LVSS_CLI (or LVSS_PREFIX), or put the "
                    "installed ones on PATH", returncode=2)
    daemon.ensure_groups()
    return lvssd, cli


@pytest.fixture
def lvssd_stopped(lvssd_bins):
    """A Daemon on its own directories, not started; everything undone at teardown (by PID and
    by exact device and mount point only)."""
    d = daemon.Daemon(*lvssd_bins, daemon.new_root())
    yield d
    d.teardown()

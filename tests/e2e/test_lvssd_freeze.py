# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Nothing stays frozen: the set's window enforced by the watchdog, a second
# set refused while one runs, SIGTERM and SIGKILL of lvssd in the middle of a
# set (the guardian process thaws), and the API on a system bus. A hold is
# made to last with LVSS_TEST_HOLD_DELAY_MS, which lvssd reads at start.

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import daemon as d

SIZE = "64M"


def is_frozen(mountpoint):
    """True if MOUNTPOINT's filesystem is frozen: a thaw succeeds only then (and thaws it)."""
    proc = subprocess.run(["fsfreeze", "--unfreeze", str(mountpoint)], capture_output=True, text=True,
                          timeout=20)
    return proc.returncode == 0


def writable(mountpoint, name="probe"):
    """A small write that completes (does not hang on a frozen filesystem)."""
    proc = subprocess.run(["sh", "-c", f"echo x > '{mountpoint}/{name}' && sync -f '{mountpoint}'"],
                          capture_output=True, timeout=20)
    return proc.returncode == 0


@pytest.fixture
def slow_hold(monkeypatch):
    """Makes the next lvssd started by the test hold for MS milliseconds inside each set."""

    def set_delay(ms):
        monkeypatch.setenv("LVSS_TEST_HOLD_DELAY_MS", str(ms))

    return set_delay


def ext4_volume(lvssd, name="a"):
    lvssd.create_volume(name, SIZE)
    _, mnt = lvssd.host.new_fs(lvssd.volume_path(name), "ext4", lvssd.root / f"mnt-{name}")
    (mnt / "before").write_bytes(b"before the set\n")
    return mnt


def test_watchdog_aborts_a_set_that_passes_its_window(lvssd_stopped, slow_hold):
    slow_hold(1500)
    lvssd = lvssd_stopped.start(extra=["--freeze-timeout", "300"])
    mnt = ext4_volume(lvssd)
    err = lvssd.fails(d.EXIT_TIMEOUT, "create", mnt)
    assert "discarded" in err, err
    # Everything thawed, nothing made.
    assert not is_frozen(mnt)
    assert writable(mnt)
    assert lvssd.shadows() == []
    assert lvssd.json("list", "sets") == []
    assert lvssd.volumes()["a"]["shadows"] == 0
    # lvssd goes on serving, and the volume's data is what the filesystem wrote.
    assert (mnt / "before").read_bytes() == b"before the set\n"
    assert lvssd.volumes()["a"]["shadows"] == 0


def test_second_set_is_busy_while_one_is_created(lvssd_stopped, slow_hold):
    slow_hold(2500)
    lvssd = lvssd_stopped.start()
    lvssd.create_volume("a", SIZE)
    lvssd.create_volume("b", SIZE)
    first = {}
    t = threading.Thread(target=lambda: first.update(res=lvssd.run("--json", "create", "a")))
    t.start()
    # Wait until lvssd says the first set is in progress, then ask for a second one.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        prop = subprocess.run(["busctl", f"--address=unix:path={lvssd.socket}", "get-property", "org.lvss",
                               "/org/lvss", "org.lvss.Manager1", "SetInProgress"], capture_output=True, text=True)
        if prop.stdout.strip() == "b true":
            break
        time.sleep(0.02)
    else:
        pytest.fail("the first set never showed as in progress")
    res = lvssd.run("create", "b")
    assert res.code == d.EXIT_FAILED, res
    assert "being created" in res.err, res
    t.join()
    assert first["res"].code == 0, first["res"]
    # Only the first set exists; b has no shadow.
    assert [s["volume"] for s in lvssd.shadows()] == ["a"]


def test_sigterm_during_a_set_thaws_and_exits_cleanly(lvssd_stopped, slow_hold):
    slow_hold(4000)
    lvssd = lvssd_stopped.start()
    mnt = ext4_volume(lvssd)
    res = {}
    t = threading.Thread(target=lambda: res.update(r=lvssd.run("create", mnt)))
    t.start()
    time.sleep(1.0)  # inside the hold: the filesystem is frozen now
    assert subprocess.run(["fsfreeze", "--freeze", str(mnt)], capture_output=True).returncode != 0, \
        "the filesystem should be frozen by the set at this point"
    code = lvssd.stop()
    t.join()
    assert code == 0, lvssd.log()
    assert res["r"].code != 0, res["r"]
    assert not is_frozen(mnt)


def test_guardian_thaws_when_lvssd_is_killed_mid_set(lvssd_stopped, slow_hold):
    slow_hold(5000)
    lvssd = lvssd_stopped.start()
    mnt = ext4_volume(lvssd)
    res = {}
    t = threading.Thread(target=lambda: res.update(r=lvssd.run("create", mnt)))
    t.start()
    time.sleep(1.0)
    assert subprocess.run(["fsfreeze", "--freeze", str(mnt)], capture_output=True).returncode != 0, \
        "the filesystem should be frozen by the set at this point"
    lvssd.kill()
    t.join()
    assert res["r"].code == d.EXIT_UNREACHABLE, res["r"]
    # The guardian thaws at once when lvssd's end of its pipe closes.
    deadline = time.monotonic() + 5
    frozen = True
    while frozen and time.monotonic() < deadline:
        frozen = is_frozen(mnt)
        if frozen:
            pytest.fail("the filesystem was still frozen after lvssd died (this probe thawed it)")
    assert not frozen


SYSTEM_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


def test_system_bus(lvssd_stopped, monkeypatch):
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed")
    # A directory other users can reach: the refused caller below must get as far as lvssd.
    root = Path(tempfile.mkdtemp(prefix="lvss-bus-"))
    root.chmod(0o755)
    sock = root / "sysbus"
    conf = root / "sysbus.conf"
    conf.write_text(SYSTEM_BUS_CONF.format(socket=sock))
    bus = subprocess.Popen(["dbus-daemon", "--config-file", str(conf), "--nofork", "--nopidfile"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        address = f"unix:path={sock}"
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        lvssd = lvssd_stopped.start(extra=["--system-bus"])
        lvssd.create_volume("onbus", SIZE)
        busctl = ["busctl", f"--address={address}"]
        # The name is owned, and the same API answers through the bus daemon.
        names = subprocess.run(busctl + ["list", "--acquired"], capture_output=True, text=True, timeout=20)
        assert "org.lvss" in names.stdout, names
        out = subprocess.run(busctl + ["call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "ListVolumes"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and '"onbus"' in out.stdout, out
        out = subprocess.run(busctl + ["get-property", "org.lvss", "/org/lvss/volume/onbus", "org.lvss.Volume1",
                                       "Size"], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and out.stdout.strip() == "t 67108864", out
        # Authorization applies there too: nobody (no lvss group) is refused a change.
        out = subprocess.run(["runuser", "-u", "nobody", "--"] + busctl +
                             ["call", "org.lvss", "/org/lvss", "org.lvss.Manager1", "DeleteVolume", "sb", "onbus",
                              "true"], capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "may not change lvssd's state" in out.stderr, out
        assert "onbus" in lvssd.volumes()
    finally:
        bus.terminate()
        bus.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)

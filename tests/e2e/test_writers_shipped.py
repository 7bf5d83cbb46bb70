# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The writers lvss ships, as installed ($LVSS_PREFIX/bin, else PATH; $LVSS_WRITER_EXEC and so on
# name other builds, e.g. sanitized ones), against a real lvssd (--writer-timeout 5000), real
# applications and real ext4 volumes:
#
#   - lvss-writer-exec: an application writes pairs of files (a_N, then 100 ms later b_N, each
#     fsynced); only whole pairs are valid. With the writer and a freeze hook that makes the
#     application pause between pairs, every shadow holds whole pairs only; without a writer, the
#     same check finds half pairs in most shadows (the test can fail). Files that are not hooks
#     are never run. A hook that fails vetoes the set, and the hooks already run are thawed in
#     reverse order; a hook past the deadline is killed with its process group; when the freeze
#     window passes, the writer thaws by itself, once. At the end of a backup (CompleteBackup) and
#     at a restore (PreRestore, PostRestore) it runs no hook and answers success.
#   - lvss-writer-sqlite: workloads move amounts between two tables, one transaction each, back
#     to back, on a WAL and on a rollback-journal database; every shadow's copy has no log content
#     to replay, passes integrity_check and keeps the sum. Without the writer the shadow's -wal
#     is not empty (the test can fail). A lock held past the freeze timeout fails the set
#     (retryable), and the next set succeeds. PreRestore, after an application crashed, leaves the
#     named databases whole in their main files (WAL checkpointed and removed, hot journal rolled
#     back), the others untouched; a database another connection writes to vetoes it.
#   - lvss-writer-postgres: PostgreSQL 15 under pgbench; each shadow's data directory, copied out
#     (without what the writer's metadata excludes) and started as a second server, recovers by
#     crash recovery and keeps pgbench's invariant. The backup label lvss shows is this set's; put
#     into the copy, it makes PostgreSQL refuse to start, as lvss-writer-postgres(8) explains
#     (no end-of-backup record without the WAL archive). After each set, and after an aborted
#     one, the writer's session (and with it its backup) is gone. PreRestore vetoes while the
#     postmaster runs; PostRestore writes backup_label, tablespace_map and recovery.signal from the
#     backup metadata, byte for byte, with --archive-recovery, and nothing without it.
#   - the events of `lvss backup` and `lvss restore` (not built yet) are called with busctl.
#   - the programs' usage errors, man pages, and clear failures when lvssd or PostgreSQL is not
#     there, or the writer's name is taken.
#
# Every process a test starts is stopped by its PID in a finally block; loop devices and mounts
# are undone by the Daemon's Host (daemon.py) even when a test fails.

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import daemon
from daemon import EXIT_USAGE

WRITER_TIMEOUT = ["--writer-timeout", "5000"]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


# ---- helpers --------------------------------------------------------------------------------------


def bin_path(name):
    """An installed program of bindir: $LVSS_WRITER_EXEC (for lvss-writer-exec, and so on),
    $LVSS_PREFIX/bin, PATH."""
    return daemon._installed(name.upper().replace("-", "_"), "bin", name)


def need(name):
    path = bin_path(name)
    if not path:
        pytest.skip(f"{name} is not installed (set LVSS_PREFIX)")
    return path


def stop_proc(proc, sig=signal.SIGTERM, timeout=20):
    """Stops PROC by its PID: SIG, then SIGKILL; returns its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def writer_names(d):
    return {w["name"] for w in d.json("list", "writers")}


def start_writer(d, argv, name, log):
    """Starts a writer program (its output in LOG) and waits until lvssd lists it as NAME."""
    with open(log, "ab") as f:
        proc = subprocess.Popen([str(a) for a in argv] + ["--socket", str(d.socket)], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{argv[0]} exited {proc.returncode} while starting:\n{Path(log).read_text()}")
        if name in writer_names(d):
            proc.log = Path(log)
            return proc
        time.sleep(0.05)
    stop_proc(proc)
    raise AssertionError(f"{argv[0]} never showed in `lvss list writers`:\n{Path(log).read_text()}\n{d.log()}")


def stop_writer(d, proc, name):
    """SIGTERM: the writer unregisters and exits (its status returned); under the sanitizers, what
    they found in its log fails the test."""
    code = stop_proc(proc)
    deadline = time.monotonic() + 10
    while name in writer_names(d) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert name not in writer_names(d), f"writer {name} still registered after it exited"
    log = proc.log.read_text(errors="replace")
    assert "Sanitizer" not in log and "runtime error:" not in log, log
    return code


def writer_entry(s, name):
    """The writer NAME's entry in a created set's JSON (None if the set does not list it)."""
    for w in s.get("writers", []):
        if w.get("name") == name:
            return w
    return None


def check_writer_ok(s, name):
    w = writer_entry(s, name)
    assert w is not None, f"the set does not list the writer {name}: {s}"
    assert w.get("failure") is None and w.get("error") is None, f"writer {name} failed in the set: {s}"
    return w


def ext4_volume(d, name, size, mnt):
    d.create_volume(name, size)
    _, mp = d.host.new_fs(d.volume_path(name), "ext4", d.root / mnt)
    return mp


def shadow_of(s):
    assert len(s["shadows"]) == 1, s
    return s["shadows"][0]["id"]


def delete_set(d, s):
    d.ok("delete", "--set", s["set"])


def log_tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def manager_call(d, method, sig, *args):
    """Manager1.METHOD (CompleteBackup, PreRestore, PostRestore: what `lvss backup` and `lvss restore`
    will call) over D's socket with busctl: {writer: [state, failure, message, backup metadata]}."""
    proc = subprocess.run(["busctl", f"--address=unix:path={d.socket}", "--json=short", "call", "org.lvss",
                           "/org/lvss", "org.lvss.Manager1", method, sig, *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"{method} {args}: {proc.stderr}\n{d.log()}"
    return {row[0]: row[1:] for row in json.loads(proc.stdout)["data"][0]}


def restore_event(d, method, writer, components, metadata=None):
    """PreRestore or PostRestore of WRITER's COMPONENTS with the backup METADATA kept for them:
    the writer's [state, failure, message, backup metadata]."""
    metadata = metadata or {}
    args = [writer, len(components), *components, len(metadata)]
    for component, data in metadata.items():
        args += [component, data]
    rows = manager_call(d, method, "sasa{ss}", *args)
    assert set(rows) == {writer}, rows
    return rows[writer]


def component_of(logical_path, path):
    """The component name the shipped writers give PATH: its segments joined by '-'."""
    return logical_path + "/" + str(path).strip("/").replace("/", "-")


OK_ROW = ["stable", "", "", {}]


# ---- the programs on their own --------------------------------------------------------------------


@pytest.mark.parametrize("prog,args,words", [
    ("lvss-writer-exec", [], "--hooks-dir"),
    ("lvss-writer-exec", ["--hooks-dir", "/nonexistent-lvss"], "/nonexistent-lvss"),
    ("lvss-writer-exec", ["--hooks-dir", "/", "--freeze-timeout", "0"], "--freeze-timeout"),
    ("lvss-writer-exec", ["--hooks-dir", "/", "--freeze-timeout", "61"], "--freeze-timeout"),
    ("lvss-writer-exec", ["--hooks-dir", "/", "--path", "/nonexistent-lvss"], "/nonexistent-lvss"),
    ("lvss-writer-exec", ["--hooks-dir", "/", "--name", "bad name"], "--name"),
    ("lvss-writer-exec", ["--hooks-dir", "/", "extra"], "extra"),
    ("lvss-writer-exec", ["--bogus"], "--bogus"),
    ("lvss-writer-exec", ["--hooks-dir"], "needs a value"),
    ("lvss-writer-sqlite", [], "no database"),
    ("lvss-writer-sqlite", ["/nonexistent-lvss.db"], "/nonexistent-lvss.db"),
    ("lvss-writer-sqlite", ["/etc/passwd"], "not an SQLite database"),
    ("lvss-writer-sqlite", ["--freeze-timeout", "x", "/etc/passwd"], "--freeze-timeout"),
    ("lvss-writer-postgres", [], "--pgdata"),
    ("lvss-writer-postgres", ["--pgdata", "/etc"], "not a PostgreSQL data directory"),
    ("lvss-writer-postgres", ["--pgdata", "/nonexistent-lvss"], "/nonexistent-lvss"),
    ("lvss-writer-postgres", ["--pgdata", "/etc", "x"], "unexpected argument"),
])
def test_usage_errors(prog, args, words):
    path = need(prog)
    proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == EXIT_USAGE, f"{prog} {args}: exit {proc.returncode}: {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prog + ": "), proc.stderr
    assert words in lines[0], proc.stderr
    assert proc.stdout == "", proc.stdout


@pytest.mark.parametrize("prog", ["lvss-writer-exec", "lvss-writer-sqlite", "lvss-writer-postgres"])
def test_help_and_version(prog):
    path = need(prog)
    proc = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: " + prog), proc
    assert "--socket" in proc.stdout and "--name" in proc.stdout
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith(prog + " "), proc


@pytest.mark.parametrize("prog", ["lvss-writer-exec", "lvss-writer-sqlite", "lvss-writer-postgres"])
def test_man_page_documents_every_option(prog):
    import re

    path = need(prog)
    prefix = os.environ.get("LVSS_PREFIX")
    page = Path(prefix, "share", "man", "man8", prog + ".8") if prefix else None
    if page is None or not page.exists():
        pytest.skip(f"{prog}.8 is not installed under $LVSS_PREFIX")
    if shutil.which("man"):
        env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
        proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", f"man --warnings -l {page}:\n{proc.stderr}"
    src = re.sub(r"\\f[BIRP]|\\f\(..|\\&", "", page.read_text()).replace("\\-", "-")
    helptext = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helptext))
    missing = sorted(o for o in options if o not in src)
    assert not missing, f"options of `{prog} --help` missing from {prog}.8: {missing}"
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert f".SH {section}" in src, f"{prog}.8 has no {section} section"


def test_no_lvssd_is_a_clear_failure(tmp_path):
    exec_w, sqlite_w = need("lvss-writer-exec"), need("lvss-writer-sqlite")
    sock = tmp_path / "nobody.sock"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    proc = subprocess.run([exec_w, "--hooks-dir", hooks, "--socket", sock], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith("lvss-writer-exec: cannot connect to lvssd at " + str(sock)), proc.stderr
    assert "not running" in proc.stderr and "--socket" in proc.stderr, proc.stderr

    import sqlite3
    db = tmp_path / "x.db"
    sqlite3.connect(db).execute("CREATE TABLE t(x)").connection.close()
    proc = subprocess.run([sqlite_w, "--socket", sock, db], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "cannot connect to lvssd" in proc.stderr, proc

    # PostgreSQL not reachable: one line, naming the socket, without the connection string (a password).
    pg_w = need("lvss-writer-postgres")
    pgdata = tmp_path / "pgdata"
    (pgdata / "pg_wal").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("15\n")
    proc = subprocess.run([pg_w, "--pgdata", pgdata, "--socket", sock, "--conninfo",
                           f"host={tmp_path} port=5999 password=s3cret"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lvss-writer-postgres: cannot connect to PostgreSQL: "), lines
    assert f"{tmp_path}/.s.PGSQL.5999" in lines[0] and "--conninfo" in lines[0], lines
    assert "s3cret" not in proc.stderr, proc.stderr


def test_writer_name_taken(lvssd_stopped, tmp_path):
    exec_w = need("lvss-writer-exec")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    first = start_writer(d, [exec_w, "--hooks-dir", hooks, "--name", "hooks1"], "hooks1", d.root / "w1.log")
    try:
        proc = subprocess.run([exec_w, "--hooks-dir", hooks, "--name", "hooks1", "--socket", d.socket],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, proc
        assert "a writer named 'hooks1' is registered" in proc.stderr and "--name" in proc.stderr, proc.stderr
    finally:
        assert stop_writer(d, first, "hooks1") == 0, log_tail(d.root / "w1.log")


# ---- lvss-writer-exec -----------------------------------------------------------------------------

# Writes pairs a_N, b_N into DIR (each write + fsync, GAP seconds between a and b). Between pairs it
# looks for CTL/pause-request: then it creates CTL/paused, waits until the request is gone, and
# removes CTL/paused. Stops on SIGTERM, printing how many pairs it wrote.
PAIRS_APP = r'''
import os, signal, sys, time
d, ctl, gap = sys.argv[1], sys.argv[2], float(sys.argv[3])
req, ack = os.path.join(ctl, "pause-request"), os.path.join(ctl, "paused")
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def put(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
n = 0
print("running", flush=True)
while not stop:
    if os.path.exists(req):
        put(ack, b"")
        while os.path.exists(req) and not stop:
            time.sleep(0.002)
        os.unlink(ack)
        continue
    put(os.path.join(d, "a_%06d" % n), b"A%d\n" % n)
    time.sleep(gap)
    put(os.path.join(d, "b_%06d" % n), b"B%d\n" % n)
    n += 1
print(n, flush=True)
'''

PAUSE_HOOK = r'''#!/bin/sh
CTL='@CTL@'
echo "$(basename "$0") $1 $LVSS_EVENT $LVSS_SET_ID" >> "$CTL/hooks.log"
case "$1" in
freeze)
        touch "$CTL/pause-request"
        i=0
        while [ ! -e "$CTL/paused" ]; do
                i=$((i + 1))
                [ $i -gt 2000 ] && exit 1
                sleep 0.005
        done
        ;;
thaw)
        rm -f "$CTL/pause-request"
        ;;
esac
exit 0
'''

WRONG_HOOK = '''#!/bin/sh
echo "$(basename "$0") ran: it must be ignored" >> '@CTL@/wrong.log'
'''


def write_hook(path, text, ctl, mode=0o755):
    path.write_text(text.replace("@CTL@", str(ctl)))
    path.chmod(mode)


def half_pairs(root):
    """(whole pairs, [N of a_N without b_N], [N of b_N without a_N], [files with wrong content])."""
    names = os.listdir(root)
    a = {int(n[2:]) for n in names if n.startswith("a_")}
    b = {int(n[2:]) for n in names if n.startswith("b_")}
    wrong = [n for n in names if n[:2] in ("a_", "b_")
             and (root / n).read_bytes() != b"%s%d\n" % (n[0].upper().encode(), int(n[2:]))]
    return len(a & b), sorted(a - b), sorted(b - a), wrong


def take_and_check_pairs(d, mnt, i, label):
    s = d.create_set(mnt)
    mp = d.expose(shadow_of(s), d.root / f"snap-{label}-{i}")
    try:
        whole, only_a, only_b, wrong = half_pairs(mp / "app")
    finally:
        d.unexpose(mp)
    delete_set(d, s)
    assert not only_b and not wrong, f"{label} set {i}: b without a {only_b}, wrong content {wrong}"
    return s, whole, only_a


def test_exec_hooks_make_pairs_whole(lvssd_stopped):
    exec_w = need("lvss-writer-exec")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt = ext4_volume(d, "app", "64M", "mnt-app")
    (mnt / "app").mkdir()
    ctl, hooks = d.root / "ctl", d.root / "hooks"
    ctl.mkdir()
    hooks.mkdir()
    write_hook(hooks / "50-pause", PAUSE_HOOK, ctl)
    # None of these may run: hidden, a backup, a package leftover, not executable, a directory.
    for name in (".hidden", "50-pause~", "60-x.dpkg-old"):
        write_hook(hooks / name, WRONG_HOOK, ctl)
    write_hook(hooks / "70-not-executable", WRONG_HOOK, ctl, mode=0o644)
    (hooks / "80-dir").mkdir()

    app = subprocess.Popen([sys.executable, "-c", PAIRS_APP, str(mnt / "app"), str(ctl), "0.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        assert app.stdout.readline().strip() == "running", app.stderr.read()
        writer = start_writer(d, [exec_w, "--hooks-dir", hooks, "--path", mnt / "app", "--name", "pairs",
                                  "--freeze-timeout", "10"], "pairs", d.root / "writer.log")
        meta = d.json("list", "writers")
        assert any(w["name"] == "pairs" for w in meta), meta

        # With the writer: every shadow holds whole pairs only.
        with_writer = []
        for i in range(5):
            time.sleep(0.3 + 0.13 * i)
            assert app.poll() is None, app.stderr.read()
            s, whole, only_a = take_and_check_pairs(d, mnt, i, "writer")
            check_writer_ok(s, "pairs")
            assert not only_a, f"set {i} with the writer holds half pairs {only_a} ({whole} whole)"
            with_writer.append(whole)
        log = (ctl / "hooks.log").read_text().split("\n")
        freezes = [x for x in log if " freeze freeze " in x]
        thaws = [x for x in log if " thaw thaw " in x]
        assert len(freezes) == 5 and len(thaws) == 5, f"hooks ran: {log}\n{log_tail(d.root / 'writer.log')}"
        assert not (ctl / "wrong.log").exists(), (ctl / "wrong.log").read_text()
        assert not (ctl / "pause-request").exists(), "the thaw hook did not run last"
        assert with_writer[-1] > with_writer[0], f"the application made no progress: {with_writer}"

        # Without a writer: the same check finds half pairs in most shadows.
        assert stop_writer(d, writer, "pairs") == 0, log_tail(d.root / "writer.log")
        writer = None
        halves = 0
        for i in range(8):
            time.sleep(0.17 + 0.05 * i)
            assert app.poll() is None, app.stderr.read()
            s, whole, only_a = take_and_check_pairs(d, mnt, i, "nowriter")
            assert len(only_a) <= 1, f"more than one half pair {only_a}: the application writes one at a time"
            halves += len(only_a)
        print(f"pairs: with the writer {with_writer} whole pairs, no half; without it {halves} of 8 shadows "
              "with a half pair")
        assert halves >= 4, f"only {halves} of 8 shadows without a writer had a half pair: the test proves nothing"
        assert len((ctl / "hooks.log").read_text().split("\n")) == len(log), "hooks ran without the writer"
    finally:
        stop_proc(writer)
        stop_proc(app)


VETO_HOOK = r'''#!/bin/sh
echo "$(basename "$0") $1" >> '@CTL@/order.log'
[ "$1" = freeze ] && [ "$(basename "$0")" = 20-refuse ] && exit 3
exit 0
'''

SLOW_HOOK = r'''#!/bin/sh
echo "$(basename "$0") $1" >> '@CTL@/order.log'
if [ "$1" = freeze ]; then
        sleep 300 &
        echo $! > '@CTL@/child.pid'
        sleep 300
fi
exit 0
'''


def hooks_writer(d, name, hook_text, hook_names, *options):
    """A 32 MiB ext4 volume, the hooks HOOK_NAMES (each HOOK_TEXT, logging into CTL) and
    lvss-writer-exec NAME on them with --path on the volume: (its mount point, CTL, the writer)."""
    exec_w = need("lvss-writer-exec")
    mnt = ext4_volume(d, "v", "32M", "mnt-v")
    ctl, hooks = d.root / "ctl", d.root / "hooks"
    ctl.mkdir()
    hooks.mkdir()
    for hook in hook_names:
        write_hook(hooks / hook, hook_text, ctl)
    writer = start_writer(d, [exec_w, "--hooks-dir", hooks, "--path", mnt, "--name", name, *options], name,
                          d.root / "writer.log")
    return mnt, ctl, writer


def test_exec_veto_thaws_what_froze(lvssd_stopped):
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt, ctl, writer = hooks_writer(d, "veto", VETO_HOOK, ("10-first", "20-refuse", "30-never"))
    try:
        err = d.fails(daemon.EXIT_WRITER, "create", mnt)
        assert "veto" in err, err
        order = (ctl / "order.log").read_text().split()
        assert order == ["10-first", "freeze", "20-refuse", "freeze", "20-refuse", "thaw", "10-first", "thaw"], \
            f"{order}\n{log_tail(d.root / 'writer.log')}"
        assert d.shadows() == [], "a vetoed set left shadows"
        w = {x["name"]: x for x in d.json("list", "writers")}["veto"]
        assert w["state"] == "failed-at-freeze", w
        # Abort after the veto: nothing more runs.
        time.sleep(0.5)
        assert (ctl / "order.log").read_text().split() == order
        assert writer.poll() is None, log_tail(d.root / "writer.log")
    finally:
        assert stop_writer(d, writer, "veto") == 0, log_tail(d.root / "writer.log")


def test_exec_hook_past_deadline_is_killed_with_its_group(lvssd_stopped):
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt, ctl, writer = hooks_writer(d, "slow", SLOW_HOOK, ("10-slow",), "--freeze-timeout", "1.5")
    try:
        t0 = time.monotonic()
        res = d.run("create", mnt)
        took = time.monotonic() - t0
        assert res.code in (daemon.EXIT_WRITER, daemon.EXIT_TIMEOUT), res
        assert took < 8, f"the set took {took:.1f} s: the hook was not killed at its deadline"
        assert d.shadows() == []
        # The hook's background child died with its group; the hook got its thaw.
        child = int((ctl / "child.pid").read_text())
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
            try:
                if Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.05)
        alive = os.path.exists(f"/proc/{child}") and Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] != "Z"
        if alive:
            os.kill(child, signal.SIGKILL)
        assert not alive, "the hook's child outlived the kill of its process group"
        assert (ctl / "order.log").read_text().split() == ["10-slow", "freeze", "10-slow", "thaw"], \
            (ctl / "order.log").read_text()
        assert "ran past the event's deadline" in (d.root / "writer.log").read_text()
    finally:
        assert stop_writer(d, writer, "slow") == 0, log_tail(d.root / "writer.log")


LOG_HOOK = r"""#!/bin/sh
echo "$(basename "$0") $1 $LVSS_EVENT" >> '@CTL@/order.log'
exit 0
"""


def test_exec_thaws_by_itself_when_the_window_passes(lvssd_stopped, monkeypatch):
    monkeypatch.setenv("LVSS_TEST_HOLD_DELAY_MS", "1500")  # lvssd holds 1.5 s inside each set
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt, ctl, writer = hooks_writer(d, "short", LOG_HOOK, ("10-a", "20-b"), "--freeze-timeout", "0.3")
    try:
        res = d.run("create", mnt)
        assert res.code in (daemon.EXIT_WRITER, daemon.EXIT_TIMEOUT), res
        time.sleep(0.5)
        # liblvss's own Abort (the window passed) thawed, once, in reverse order; lvssd's Thaw or
        # Abort that came later ran nothing more.
        lines = (ctl / "order.log").read_text().splitlines()
        assert lines == ["10-a freeze freeze", "20-b freeze freeze", "20-b thaw abort", "10-a thaw abort"], lines
        assert writer.poll() is None, log_tail(d.root / "writer.log")
    finally:
        assert stop_writer(d, writer, "short") == 0, log_tail(d.root / "writer.log")


def test_exec_runs_no_hook_at_backup_end_or_restore(lvssd_stopped):
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt, ctl, writer = hooks_writer(d, "hooks", LOG_HOOK, ("10-a", "20-b"))
    try:
        s = d.create_set(mnt)
        check_writer_ok(s, "hooks")
        ran = (ctl / "order.log").read_text().splitlines()
        assert ran == ["10-a freeze freeze", "20-b freeze freeze", "20-b thaw thaw", "10-a thaw thaw"], ran
        # The backup made from the set ends (BackupComplete and BackupShutdown, or BackupShutdown
        # alone), then its paths are restored: the writer answers each at once and runs no hook,
        # as lvss-writer-exec(8) says.
        for succeeded in ("true", "false"):
            assert manager_call(d, "CompleteBackup", "sb", s["set"], succeeded) == {"hooks": OK_ROW}
        component = component_of("Paths", mnt)
        for method in ("PreRestore", "PostRestore"):
            assert restore_event(d, method, "hooks", [component], {component: "kept"}) == OK_ROW, method
        # Hooks run inside the events, before their answers: none ran.
        assert (ctl / "order.log").read_text().splitlines() == ran
        assert {w["name"]: w["state"] for w in d.json("list", "writers")} == {"hooks": "stable"}
    finally:
        assert stop_writer(d, writer, "hooks") == 0, log_tail(d.root / "writer.log")


# ---- lvss-writer-sqlite ---------------------------------------------------------------------------

ROWS, START = 50, 1000
TOTAL = 2 * ROWS * START

# Moves amounts between t1 and t2, one transaction each, back to back, until SIGTERM; counts the
# transactions in `n`. MODE: the journal mode (wal, delete).
SQLITE_APP = r"""
import random, signal, sqlite3, sys
db, rows, start, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
con = sqlite3.connect(db, timeout=60, isolation_level=None)
assert con.execute("PRAGMA journal_mode=" + mode).fetchone()[0] == mode
con.execute("CREATE TABLE IF NOT EXISTS t1(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
con.execute("CREATE TABLE IF NOT EXISTS t2(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
con.execute("CREATE TABLE IF NOT EXISTS n(k INTEGER PRIMARY KEY, c INTEGER NOT NULL)")
con.execute("BEGIN IMMEDIATE")
if con.execute("SELECT count(*) FROM t1").fetchone()[0] == 0:
    con.executemany("INSERT INTO t1 VALUES (?, ?)", [(i, start) for i in range(rows)])
    con.executemany("INSERT INTO t2 VALUES (?, ?)", [(i, start) for i in range(rows)])
    con.execute("INSERT INTO n VALUES (0, 0)")
con.execute("COMMIT")
rng = random.Random(7)
print("running", flush=True)
done = 0
while not stop:
    x, i, j = rng.randrange(-50, 51), rng.randrange(rows), rng.randrange(rows)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE t1 SET v = v - ? WHERE id = ?", (x, i))
    con.execute("UPDATE t2 SET v = v + ? WHERE id = ?", (x, j))
    con.execute("UPDATE n SET c = c + 1 WHERE k = 0")
    con.execute("COMMIT")
    done += 1
print(done, flush=True)
"""


def check_sqlite_shadow(mp, work, name, strict=True):
    """Copies the database NAME (with its -wal and -journal, not its -shm, as the writer's metadata
    says) out of an exposed shadow and checks it: with STRICT, no log content to replay. Returns
    (bytes of -wal and -journal, transactions)."""
    import sqlite3

    work.mkdir()
    shutil.copy2(mp / "db" / name, work / name)
    logs = 0
    for suffix in ("-wal", "-journal"):
        f = mp / "db" / (name + suffix)
        if f.exists():
            logs += f.stat().st_size
            shutil.copy2(f, work / (name + suffix))
            if strict:
                assert f.stat().st_size == 0, f"the shadow's {f.name} holds {f.stat().st_size} bytes to replay"
    con = sqlite3.connect(work / name)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)], f"{name}: integrity_check"
        s1 = con.execute("SELECT sum(v) FROM t1").fetchone()[0]
        s2 = con.execute("SELECT sum(v) FROM t2").fetchone()[0]
        assert s1 + s2 == TOTAL, f"{name}: sum(t1) + sum(t2) = {s1} + {s2} != {TOTAL}"
        count = con.execute("SELECT c FROM n WHERE k = 0").fetchone()[0]
    finally:
        con.close()
    shutil.rmtree(work)
    return logs, count


def test_sqlite_shadows_hold_checkpointed_databases(lvssd_stopped):
    sqlite_w = need("lvss-writer-sqlite")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt = ext4_volume(d, "db", "128M", "mnt-db")
    (mnt / "db").mkdir()
    dbs = {"bank.db": "wal", "ledger.db": "delete"}
    apps = {}
    writer = None
    try:
        for name, mode in dbs.items():
            apps[name] = subprocess.Popen([sys.executable, "-c", SQLITE_APP, str(mnt / "db" / name), str(ROWS),
                                           str(START), mode],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for app in apps.values():
            assert app.stdout.readline().strip() == "running", app.stderr.read()
        writer = start_writer(d, [sqlite_w, "--name", "bank", "--freeze-timeout", "10", "--service", "bank",
                                  *[mnt / "db" / n for n in dbs]], "bank", d.root / "writer.log")
        counts = {name: [] for name in dbs}
        for i in range(4):
            time.sleep(0.5 + 0.2 * i)
            assert all(a.poll() is None for a in apps.values()), [a.stderr.read() for a in apps.values()]
            assert (mnt / "db" / "bank.db-wal").stat().st_size > 0, "the workload leaves no WAL: it proves nothing"
            s = d.create_set(mnt)
            check_writer_ok(s, "bank")
            mp = d.expose(shadow_of(s), d.root / f"snap-{i}")
            try:
                for name in dbs:
                    counts[name].append(check_sqlite_shadow(mp, d.root / f"work-{i}", name)[1])
            finally:
                d.unexpose(mp)
            delete_set(d, s)
        for name, c in counts.items():
            assert c == sorted(c) and c[-1] > c[0], f"{name}: no progress between the sets: {c}"
        wlog = (d.root / "writer.log").read_text()
        assert "registered" in wlog and wlog.count("2 database(s) quiesced") == 4, wlog
        print(f"sqlite: transactions in the shadows {counts}; writer:\n{wlog}")

        # Without the writer the shadow holds WAL content (the check above can fail).
        assert stop_writer(d, writer, "bank") == 0, log_tail(d.root / "writer.log")
        writer = None
        time.sleep(0.3)
        s = d.create_set(mnt)
        mp = d.expose(shadow_of(s), d.root / "snap-nowriter")
        try:
            wal_size, _ = check_sqlite_shadow(mp, d.root / "work-nowriter", "bank.db", strict=False)
        finally:
            d.unexpose(mp)
        assert wal_size > 0, "without the writer the shadow's -wal was empty too: the test proves nothing"
        print(f"sqlite: without the writer the shadow's -wal holds {wal_size} bytes")
    finally:
        stop_proc(writer)
        for app in apps.values():
            stop_proc(app)
    for name, app in apps.items():
        assert app.returncode == 0, app.stderr.read()
        assert int(app.stdout.read().strip()) > 100, f"the workload on {name} made too few transactions"


# Takes DB's write lock (BEGIN IMMEDIATE) and says "locked"; at the next line of stdin lets it go
# and says "idle", keeping the connection open; at the next (or at the end of stdin), exits.
LOCK_HOLDER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
print("idle", flush=True)
sys.stdin.readline()
con.close()
"""


def test_sqlite_lock_not_had_in_time_is_retryable(lvssd_stopped):
    import sqlite3

    sqlite_w = need("lvss-writer-sqlite")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    mnt = ext4_volume(d, "db", "32M", "mnt-db")
    db = mnt / "busy.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    writer = start_writer(d, [sqlite_w, "--name", "busy", "--freeze-timeout", "1", db], "busy", d.root / "writer.log")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        err = d.fails(daemon.EXIT_WRITER, "create", mnt)
        assert time.monotonic() - t0 < 6, "the Freeze did not give up at its deadline"
        w = {x["name"]: x for x in d.json("list", "writers")}["busy"]
        assert w["state"] == "failed-at-freeze", (w, err)
        assert "cannot quiesce" in (d.root / "writer.log").read_text(), log_tail(d.root / "writer.log")
        assert d.shadows() == []
        # Once the application lets go, a set succeeds (retryable).
        holder.communicate("\n", timeout=10)
        s = d.create_set(mnt)
        check_writer_ok(s, "busy")
    finally:
        stop_proc(holder)
        assert stop_writer(d, writer, "busy") == 0, log_tail(d.root / "writer.log")


# Leaves DB as an application killed mid-work does (os._exit: no checkpoint, no rollback, no close)
# and prints what it committed, "ROWS SUM". MODE wal: the rows committed into the WAL, never
# checkpointed. MODE delete: the rows committed, then a transaction rewriting them all that spilled
# into the database file (a cache of 2 pages) and never committed: a hot journal.
SQLITE_CRASH = r"""
import os, sqlite3, sys
db, mode, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db, isolation_level=None)
assert con.execute("PRAGMA journal_mode=" + mode).fetchone()[0] == mode
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL)")
con.execute("BEGIN")
con.executemany("INSERT INTO t VALUES (?, ?, randomblob(1000))", [(i, i) for i in range(rows)])
con.execute("COMMIT")
if mode == "delete":
    con.execute("PRAGMA cache_size=2")
    con.execute("BEGIN")
    con.execute("UPDATE t SET v = v + 1000000, pad = randomblob(1000)")
print(rows, sum(range(rows)), flush=True)
os._exit(0)
"""


def sqlite_crash(db, mode, rows=300):
    proc = subprocess.run([sys.executable, "-c", SQLITE_CRASH, str(db), mode, str(rows)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return tuple(int(x) for x in proc.stdout.split())


def main_file_alone(db, work):
    """(rows, sum) of table t in DB's main file alone, without its -wal or -journal, as a restore
    that put back only that file would find it; None if it has no table t or fails integrity_check."""
    import sqlite3

    work.mkdir(exist_ok=True)
    copy = work / db.name
    for f in work.iterdir():
        f.unlink()
    shutil.copyfile(db, copy)
    con = sqlite3.connect(copy)
    try:
        if con.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
            return None
        return tuple(con.execute("SELECT count(*), sum(v) FROM t").fetchone())
    except sqlite3.DatabaseError:
        return None
    finally:
        con.close()


def sidecars(db):
    """DB's -wal, -shm and -journal files that exist: {suffix: size}."""
    return {sfx: Path(f"{db}{sfx}").stat().st_size for sfx in ("-wal", "-shm", "-journal")
            if Path(f"{db}{sfx}").exists()}


def test_sqlite_pre_restore_settles_databases_or_vetoes(lvssd_stopped):
    sqlite_w = need("lvss-writer-sqlite")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    dbs = d.root / "db"
    dbs.mkdir()
    wal, journal, other = dbs / "wal.db", dbs / "journal.db", dbs / "other.db"
    committed = {db: sqlite_crash(db, mode) for db, mode in ((wal, "wal"), (journal, "delete"), (other, "wal"))}
    work = d.root / "work"
    # What the crashes left: the committed rows in the WAL only, and a hot journal whose database file
    # holds uncommitted pages (the test can fail).
    for db in (wal, other):
        assert sidecars(db)["-wal"] > 0 and main_file_alone(db, work) is None, sidecars(db)
    assert sidecars(journal)["-journal"] > 0, sidecars(journal)
    assert main_file_alone(journal, work) != committed[journal], "no uncommitted page reached the database file"
    comp = {db: component_of("Databases", db) for db in (wal, journal, other)}
    writer = start_writer(d, [sqlite_w, "--name", "restore", wal, journal, other], "restore",
                          d.root / "writer.log")
    holder = None
    try:
        # PreRestore of two of the databases: each is checkpointed or rolled back, and closed; its
        # main file alone then holds what was committed, and nothing is left to replay over it.
        other_before = sidecars(other)
        assert restore_event(d, "PreRestore", "restore", [comp[wal], comp[journal]]) == OK_ROW, \
            log_tail(d.root / "writer.log")
        for db in (wal, journal):
            assert sidecars(db) == {}, (db, sidecars(db))
            assert main_file_alone(db, work) == committed[db], db
        # The database the restore does not name is left alone.
        assert sidecars(other) == other_before

        # A database another connection writes to (its write lock held) vetoes the restore, in WAL
        # and in rollback-journal mode; so the writer is listed until the next event.
        for db in (journal, other):  # the holder of other.db stays
            holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "locked"
            state, failure, message, _ = restore_event(d, "PreRestore", "restore", [comp[db]])
            assert (state, failure) == ("failed-at-pre-restore", "non-retryable"), (state, failure, message)
            assert message.startswith("vetoed at PreRestore"), message
            assert {w["name"]: w["state"] for w in d.json("list", "writers")}["restore"] == state
            assert f"cannot settle {db} before the restore" in log_tail(d.root / "writer.log", 1)
            if db is journal:
                holder.communicate("\n\n", timeout=10)
                holder = None
        # (The vetoed checkpoint may have copied committed pages into the database file, harmlessly,
        # but could not empty the WAL.)
        assert sidecars(other) == other_before

        # The same connection idle (no transaction): the WAL is checkpointed into the database file
        # and emptied; the -wal and -shm stay while that connection keeps the database open.
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "idle"
        assert restore_event(d, "PreRestore", "restore", [comp[other]]) == OK_ROW, log_tail(d.root / "writer.log")
        assert sidecars(other)["-wal"] == 0, sidecars(other)
        assert main_file_alone(other, work) == committed[other]
        holder.communicate("\n", timeout=10)
        holder = None
        # A PreRestore that names no component settles every database.
        assert restore_event(d, "PreRestore", "restore", []) == OK_ROW
        for db in (wal, journal, other):
            assert sidecars(db) == {} and main_file_alone(db, work) == committed[db], db
        assert {w["name"]: w["state"] for w in d.json("list", "writers")}["restore"] == "stable"
    finally:
        stop_proc(holder)
        assert stop_writer(d, writer, "restore") == 0, log_tail(d.root / "writer.log")


# ---- lvss-writer-postgres -------------------------------------------------------------------------

PG_USER = dict(user="postgres", group="postgres", extra_groups=[])


def as_postgres(*args, check=True, timeout=120):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd="/",
                          **PG_USER)
    if check:
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def psql(sock, port, sql):
    proc = subprocess.run([PG_BIN / "psql", "-h", sock, "-p", str(port), "-U", "postgres", "-d", "postgres",
                           "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"psql {sql}: {proc.stderr}"
    return proc.stdout.strip()


def postmaster_pid(data):
    try:
        return int((Path(data) / "postmaster.pid").read_text().split("\n")[0])
    except (OSError, ValueError):
        return None


def pg_start(data, sock, port, log):
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
                f"-p {port} -k {sock} -c listen_addresses=''", "start")
    pid = postmaster_pid(data)
    assert pid, f"no postmaster.pid in {data}"
    return pid


def pg_stop(data, pid, mode="fast"):
    """Stops the postmaster PID of DATA: pg_ctl stop, then SIGKILL by PID if it must."""
    if pid is None or not os.path.exists(f"/proc/{pid}"):
        return
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", mode, "-w", "-t", "30", "stop", check=False)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)


def assert_no_backup_session(sock, port):
    """The writer's session is gone, so the server is not in backup mode: PostgreSQL 15 has no
    pg_is_in_backup() for non-exclusive backups, which live exactly as long as their session."""
    deadline = time.monotonic() + 5
    while True:
        left = psql(sock, port, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lvss-writer-postgres'")
        if left == "0" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == "0", "the writer's backup session is still open after the set"


def pgbench_invariant(sock, port):
    row = psql(sock, port, "SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                           "(SELECT sum(bbalance) FROM pgbench_branches), "
                           "(SELECT sum(tbalance) FROM pgbench_tellers), "
                           "(SELECT coalesce(sum(delta), 0) FROM pgbench_history), "
                           "(SELECT count(*) FROM pgbench_history)")
    a, b, t, h, n = (int(x) for x in row.split("|"))
    return a, b, t, h, n


def copy_out_pgdata(src, dst):
    """A copy of the shadow's data directory, without what the writer's metadata excludes."""
    proc = subprocess.run(["cp", "-a", str(src), str(dst)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map"):
        (dst / name).unlink(missing_ok=True)
    for sub in ("pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots",
                "pg_subtrans"):
        for f in (dst / sub).iterdir() if (dst / sub).is_dir() else ():
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink()
    os.chmod(dst, 0o700)


def need_postgres():
    if not (PG_BIN / "postgres").exists() or not shutil.which("runuser"):
        pytest.skip("PostgreSQL 15 (postgresql-15) is not installed")
    if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("no user postgres")


def test_postgres_shadows_recover_with_pgbench_invariant(lvssd_stopped):
    pg_w = need("lvss-writer-postgres")
    need_postgres()
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    os.chmod(d.root, 0o755)  # postgres must reach its directories under the test's root
    mnt = ext4_volume(d, "pg", "512M", "mnt-pg")
    data, sock, sock2, logs = mnt / "pg", d.root / "pgsock", d.root / "pgsock2", d.root / "pglogs"
    for p in (data, sock, sock2, logs):
        p.mkdir()
        shutil.chown(p, "postgres", "postgres")
    os.chmod(mnt, 0o755)
    port = 20000 + os.getpid() % 20000
    bench = writer = bench_log = None
    copy = labeled = None
    try:
        as_postgres(PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with open(data / "postgresql.conf", "a") as f:
            f.write("max_wal_size = 96MB\nmin_wal_size = 32MB\nfsync = on\nlog_min_messages = warning\n")
        pg_start(data, sock, port, logs / "live.log")
        as_postgres(PG_BIN / "pgbench", "-h", sock, "-p", port, "-U", "postgres", "-i", "-s", "1", "-q", "postgres")
        conninfo = f"host={sock} port={port} user=postgres dbname=postgres"
        component = "PostgreSQL/" + str(data).strip("/").replace("/", "-")
        writer = start_writer(d, [pg_w, "--pgdata", data, "--conninfo", conninfo, "--name", "pg"], "pg",
                              d.root / "writer.log")
        bench_log = open(d.root / "pgbench.log", "wb")
        bench = subprocess.Popen([PG_BIN / "pgbench", "-h", sock, "-p", str(port), "-U", "postgres", "-c", "4",
                                  "-T", "30", "-n", "postgres"], stdout=bench_log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        seen, labels = [], 0
        for i in range(3):
            time.sleep(1.5)
            assert bench.poll() is None, log_tail(d.root / "pgbench.log")
            s = d.create_set(mnt)
            entry = check_writer_ok(s, "pg")
            assert_no_backup_session(sock, port)
            label = None
            if "backup_metadata" in entry:  # lvss shows it: the label of this set's backup, by component
                assert set(entry["backup_metadata"]) == {component}, entry
                label = entry["backup_metadata"][component]
                assert f"LABEL: lvss {s['set']}\n" in label and "START WAL LOCATION: " in label, label
                assert "BACKUP METHOD: streamed" in label and "tablespace_map" not in label, label
                labels += 1

            mp = d.expose(shadow_of(s), d.root / f"snap-{i}")
            copy = d.root / f"copy-{i}"
            try:
                copy_out_pgdata(mp / "pg", copy)
            finally:
                d.unexpose(mp)
            delete_set(d, s)
            assert not (copy / "backup_label").exists()
            if i == 0 and label is not None:
                # Why the label is not used for this restore: with it, PostgreSQL wants the WAL up to
                # the end-of-backup record, written after the snapshot, which the shadow lacks.
                labeled = d.root / "copy-labeled"
                subprocess.run(["cp", "-a", str(copy), str(labeled)], check=True)
                (labeled / "backup_label").write_text(label)
                shutil.chown(labeled / "backup_label", "postgres", "postgres")
                proc = as_postgres(PG_BIN / "pg_ctl", "-D", labeled, "-l", logs / "labeled.log", "-w", "-t", "60",
                                   "-o", f"-p {port + 2} -k {sock2} -c listen_addresses=''", "start", check=False)
                pg_stop(labeled, postmaster_pid(labeled), mode="immediate")
                assert proc.returncode != 0, "PostgreSQL started from the shadow with its backup label"
                assert "WAL ends before end of online backup" in (logs / "labeled.log").read_text(), \
                    log_tail(logs / "labeled.log")
                shutil.rmtree(labeled)
            # Crash recovery of the copy (see lvss-writer-postgres(8): no backup_label without the archive).
            copy_pid = pg_start(copy, sock2, port + 1, logs / f"copy-{i}.log")
            a, b, t, h, n = pgbench_invariant(sock2, port + 1)
            assert a == b == t == h, f"set {i}: accounts {a}, branches {b}, tellers {t}, history {h} differ"
            seen.append(n)
            pg_stop(copy, copy_pid)
            shutil.rmtree(copy)
            copy = None
        assert seen[-1] > seen[0] > 0, f"pgbench made no progress between the sets: {seen}"
        # A set that fails after PrepareForSnapshot (another writer vetoes at Freeze): the Abort
        # ends the backup.
        hooks = d.root / "hooks"
        hooks.mkdir()
        write_hook(hooks / "10-refuse", "#!/bin/sh\n[ \"$1\" = freeze ] && exit 1\nexit 0\n", d.root)
        vetoer = start_writer(d, [need("lvss-writer-exec"), "--hooks-dir", hooks, "--path", mnt, "--name", "no"],
                              "no", d.root / "vetoer.log")
        try:
            d.fails(daemon.EXIT_WRITER, "create", mnt)
        finally:
            assert stop_writer(d, vetoer, "no") == 0, log_tail(d.root / "vetoer.log")
        assert_no_backup_session(sock, port)
        wlog = (d.root / "writer.log").read_text()
        assert wlog.count("backup started at") == 4 and wlog.count("backup stopped at") == 4, wlog
        assert "abort: ending the backup" in wlog, wlog
        recovery = (logs / "copy-0.log").read_text()
        assert "redo starts at" in recovery or "database system was interrupted" in recovery, recovery
        print(f"postgres: pgbench transactions in the shadows {seen}; backup labels shown by lvss: {labels}; "
              f"writer:\n{wlog}")
    finally:
        stop_proc(bench, sig=signal.SIGINT)
        if bench_log:
            bench_log.close()
        for other in (copy, labeled):  # the second servers, on copies outside the volume
            if other is not None and other.exists():
                pg_stop(other, postmaster_pid(other), mode="immediate")
        stop_proc(writer)
        pg_stop(data, postmaster_pid(data))  # before the teardown unmounts its volume
    # The writer ended cleanly on SIGTERM (and, under the sanitizers, found nothing).
    wlog = (d.root / "writer.log").read_text(errors="replace")
    assert writer.returncode == 0, wlog
    assert "Sanitizer" not in wlog and "runtime error:" not in wlog, wlog


# What pg_backup_stop returns, as lvss-writer-postgres keeps it: the label, then the tablespace map
# after a line of its own.
PG_LABEL = ("START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000060\n"
            "BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-05-01 12:00:00 UTC\n"
            "LABEL: lvss 0badc0de-0000-4000-8000-000000000001\nSTART TIMELINE: 1\n")
PG_TABLESPACE_MAP = "16385 /srv/tblspc/fast\n16386 /srv/tblspc/slow\n"
PG_MAP_MARK = "-- lvss: tablespace_map --\n"
RECOVERY_FILES = ("backup_label", "tablespace_map", "recovery.signal")


def tree_state(root):
    """{path: (mode, uid, size, sha256)} of everything under ROOT: what a writer may have changed."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            digest = daemon.file_sha256(p) if p.is_file() and not p.is_symlink() else None
            state[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_size, digest)
    return state


def test_postgres_restore_events(lvssd_stopped):
    """PreRestore vetoes while the postmaster runs; PostRestore writes the recovery files from the
    backup metadata with --archive-recovery, and nothing without it (lvss-writer-postgres(8))."""
    import pwd

    pg_w = need("lvss-writer-postgres")
    need_postgres()
    pg = pwd.getpwnam("postgres")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    os.chmod(d.root, 0o755)  # postgres must reach its directories under the test's root
    data, sock, logs = d.root / "pg", d.root / "pgsock", d.root / "pglogs"
    for p in (data, sock, logs):
        p.mkdir()
        shutil.chown(p, "postgres", "postgres")
    port = 20000 + (os.getpid() + 7) % 20000
    crash_w = arch_w = None
    try:
        as_postgres(PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        pg_start(data, sock, port, logs / "pg.log")
        conninfo = f"host={sock} port={port} user=postgres dbname=postgres"
        component = component_of("PostgreSQL", data)
        crash_w = start_writer(d, [pg_w, "--pgdata", data, "--conninfo", conninfo, "--name", "pgcrash"], "pgcrash",
                               d.root / "crash.log")
        arch_w = start_writer(d, [pg_w, "--pgdata", data, "--conninfo", conninfo, "--name", "pgarch",
                                  "--archive-recovery"], "pgarch", d.root / "arch.log")

        # PreRestore: vetoed while PostgreSQL runs on the data directory, fine once it is stopped.
        state, failure, message, _ = restore_event(d, "PreRestore", "pgarch", [component])
        assert (state, failure) == ("failed-at-pre-restore", "non-retryable"), (state, failure, message)
        assert message.startswith("vetoed at PreRestore"), message
        assert "PostgreSQL still runs on" in log_tail(d.root / "arch.log", 1), log_tail(d.root / "arch.log")
        pg_stop(data, postmaster_pid(data))
        assert postmaster_pid(data) is None or not os.path.exists(f"/proc/{postmaster_pid(data)}")
        for name in ("pgarch", "pgcrash"):
            assert restore_event(d, "PreRestore", name, [component], {component: PG_LABEL}) == OK_ROW, name

        # PostRestore without --archive-recovery: PostgreSQL will run crash recovery; nothing is written.
        metadata = {component: PG_LABEL + PG_MAP_MARK + PG_TABLESPACE_MAP}
        before = tree_state(data)
        assert restore_event(d, "PostRestore", "pgcrash", [component], metadata) == OK_ROW
        assert tree_state(data) == before, "PostRestore without --archive-recovery changed the data directory"

        # With --archive-recovery: backup_label and tablespace_map from the metadata, an empty
        # recovery.signal, each owned as the data directory, mode 0600 (a stale file of root's with
        # other bytes and mode is replaced).
        stale = data / "backup_label"
        stale.write_text("stale label\n" * 500)
        stale.chmod(0o644)
        assert restore_event(d, "PostRestore", "pgarch", [component], metadata) == OK_ROW, \
            log_tail(d.root / "arch.log")
        want = {"backup_label": PG_LABEL, "tablespace_map": PG_TABLESPACE_MAP, "recovery.signal": ""}
        for name, text in want.items():
            st = (data / name).stat()
            assert (data / name).read_bytes() == text.encode(), name
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, pg.pw_uid, pg.pw_gid), name
        assert "wrote backup_label, tablespace_map and recovery.signal" in log_tail(d.root / "arch.log", 1)
        for name in RECOVERY_FILES:
            (data / name).unlink()

        # A label without a tablespace map (a cluster without tablespaces): no tablespace_map.
        assert restore_event(d, "PostRestore", "pgarch", [component], {component: PG_LABEL}) == OK_ROW
        assert (data / "backup_label").read_bytes() == PG_LABEL.encode()
        assert (data / "recovery.signal").read_bytes() == b"" and not (data / "tablespace_map").exists()
        for name in ("backup_label", "recovery.signal"):
            (data / name).unlink()

        # No backup metadata kept for the component: PostRestore fails and writes nothing.
        before = tree_state(data)
        state, failure, message, _ = restore_event(d, "PostRestore", "pgarch", [component])
        assert (state, failure) == ("failed-at-post-restore", "non-retryable"), (state, failure, message)
        assert "no backup label was kept for " + component in log_tail(d.root / "arch.log", 1)
        assert tree_state(data) == before
    finally:
        codes = [stop_writer(d, w, name) if w else 0 for w, name in ((crash_w, "pgcrash"), (arch_w, "pgarch"))]
        pg_stop(data, postmaster_pid(data))
    assert codes == [0, 0], (log_tail(d.root / "crash.log"), log_tail(d.root / "arch.log"))

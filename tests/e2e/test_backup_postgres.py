# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss backup and lvss restore of a PostgreSQL 15 cluster whose WAL lives on a second volume, end to
# end: the data directory on one lvss volume (ext4), pg_wal a symbolic link (initdb --waldir) to a
# directory on another, lvss-writer-postgres registered, pgbench -c 4 running throughout the backup.
#
#   - `lvss backup --to DIR DATA_MOUNT` names only the data volume: the writer's component lists the
#     WAL directory (symbolic link resolved) as log files, so lvss adds the WAL volume to the set by
#     itself (the --json summary and backup.xml list both targets, with their mount points); the
#     writer's backup label for this set is kept as the component's backup metadata. Afterwards no
#     shadow and no set is left, the writer's backup session is gone (the server is not left in
#     backup mode) and it started and stopped exactly one backup.
#   - `lvss backup verify DIR` exits 0.
#   - `lvss restore DIR --to ROOT`, as an operator brings a backup up beside the original: pg_wal in
#     ROOT/data still names the original WAL directory, so it is pointed at ROOT/wal before the
#     copy starts; the copy runs crash recovery, keeps pgbench's invariant, holds what was committed
#     before the backup began and not what was committed after it ended, takes a pgbench run of its
#     own, and never writes into the original WAL directory.
#   - `lvss restore DIR` in place, the server stopped, the disaster-recovery path: both volumes'
#     trees go back to their mount points (what was made since removed), the data directory is
#     0700 and owned by postgres, pg_wal is the link to the WAL volume's directory as it was; the
#     cluster starts by crash recovery with exactly the content the copy had, and takes pgbench.
#
# Every process the test starts is stopped by its PID (servers: pg_ctl stop -m immediate, then
# SIGKILL, only after checking /proc/PID is that server) in a finally block; loop devices, mounts,
# volumes and lvssd are undone by the Daemon's teardown (daemon.py) even when the test fails.

import os
import pwd
import signal
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import daemon
from test_writers_shipped import (PG_BIN, as_postgres, assert_no_backup_session, bin_path, component_of,
                                  ext4_volume, log_tail, need_postgres, pgbench_invariant, postmaster_pid,
                                  psql, start_writer, stop_proc, tree_state)

WRITER_TIMEOUT = ["--writer-timeout", "10000"]
BCD = "{urn:lvss:bcd:1}"
MARKER = ".lvss-restore-incomplete"


def writer_program():
    """lvss-writer-postgres: $LVSS_WRITER_POSTGRES, $LVSS_PREFIX/bin, PATH, else the one of the build
    tree $LVSS_CLI comes from (BUILD/cli/lvss beside BUILD/writers/)."""
    path = bin_path("lvss-writer-postgres")
    if not path and os.environ.get("LVSS_CLI"):
        cand = Path(os.environ["LVSS_CLI"]).resolve().parent.parent / "writers" / "lvss-writer-postgres"
        path = str(cand) if os.access(cand, os.X_OK) else None
    if not path:
        pytest.skip("lvss-writer-postgres is not installed (set LVSS_PREFIX or LVSS_WRITER_POSTGRES)")
    return path


def server_start(data, sock, port, log):
    """Starts the cluster DATA on the Unix socket SOCK/PORT: the postmaster's PID."""
    proc = as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "120", "-o",
                       f"-p {port} -k {sock} -c listen_addresses=''", "start", check=False)
    assert proc.returncode == 0, f"pg_ctl start {data}: exit {proc.returncode}: {proc.stderr}\n{log_tail(log)}"
    pid = postmaster_pid(data)
    assert pid and is_postmaster_of(pid, data), f"no postmaster of {data}:\n{log_tail(log)}"
    return pid


def is_postmaster_of(pid, data):
    """True if PID is a running postgres whose command line names DATA (not a reused PID)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"postgres") and str(data).encode() in argv


def is_zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def server_stop(data, pid, mode="fast"):
    """Stops the postmaster PID (started by this test on DATA): pg_ctl stop -m MODE, then SIGKILL by
    PID; then waits until the PID is reaped. A PID that is no longer that server's is left alone.

    (The postmaster's parent is PID 1 once pg_ctl has exited; where PID 1 reaps late, as in some
    containers, the dead postmaster stays a zombie for a while, and a server started meanwhile on a
    copy of the data directory takes the PID in the copied postmaster.pid for a live postmaster.)"""
    if pid is None or not is_postmaster_of(pid, data):
        return
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", mode, "-w", "-t", "30", "stop", check=False)
    deadline = time.monotonic() + 10
    while is_postmaster_of(pid, data) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_postmaster_of(pid, data):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while is_zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def history_count(sock, port):
    return int(psql(sock, port, "SELECT count(*) FROM pgbench_history"))


def check_invariant(sock, port, what):
    """pgbench's invariant on the server at SOCK/PORT: (sum, history rows)."""
    a, b, t, h, n = pgbench_invariant(sock, port)
    assert a == b == t == h, f"{what}: accounts {a}, branches {b}, tellers {t}, history {h} differ"
    return a, n


def run_pgbench(sock, port, seconds, log, clients=2):
    proc = subprocess.run([PG_BIN / "pgbench", "-h", sock, "-p", str(port), "-U", "postgres", "-c", str(clients),
                           "-T", str(seconds), "-n", "postgres"], capture_output=True, text=True,
                          timeout=seconds + 60, stdin=subprocess.DEVNULL)
    Path(log).write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"pgbench on port {port}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


def check_data_dir(data, waldir_link):
    """DATA is what PostgreSQL accepts: a directory 0700 owned by postgres; pg_wal a link to
    WALDIR_LINK, itself a directory 0700 owned by postgres."""
    pg = pwd.getpwnam("postgres")
    st = os.lstat(data)
    assert stat.S_ISDIR(st.st_mode) and (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
        (0o700, pg.pw_uid, pg.pw_gid), (oct(st.st_mode), st.st_uid, st.st_gid)
    wal = Path(data) / "pg_wal"
    assert wal.is_symlink() and os.readlink(wal) == str(waldir_link), (wal, os.readlink(wal))
    st = os.stat(wal)
    assert stat.S_ISDIR(st.st_mode) and (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, pg.pw_uid), \
        (oct(st.st_mode), st.st_uid)
    assert not (Path(data) / "backup_label").exists(), "PostRestore wrote a backup_label without --archive-recovery"
    assert not (Path(data) / MARKER).exists()


def ran_crash_recovery(log):
    text = Path(log).read_text(errors="replace")
    return "database system was interrupted" in text or "redo starts at" in text or \
        "was not properly shut down" in text


def test_postgres_with_wal_on_a_second_volume_backs_up_and_restores(lvssd_stopped):
    pg_w = writer_program()
    need_postgres()
    pg = pwd.getpwnam("postgres")
    d = lvssd_stopped.start(extra=WRITER_TIMEOUT)
    os.chmod(d.root, 0o755)  # postgres must reach its directories under the test's root
    mnt = ext4_volume(d, "data", "512M", "data")
    wmnt = ext4_volume(d, "wal", "256M", "wal")
    data, waldir = mnt / "pg", wmnt / "pg_wal"
    sock, sock2, logs = d.root / "pgsock", d.root / "pgsock2", d.root / "pglogs"
    for p in (data, waldir, sock, sock2, logs):
        p.mkdir()
        subprocess.run(["chown", "postgres:postgres", str(p)], check=True)
    os.chmod(mnt, 0o755)
    os.chmod(wmnt, 0o755)
    port = 20000 + (os.getpid() + 13) % 20000
    out, root = d.root / "backup", d.root / "restored"
    copy = root / "data" / "pg"
    live_pid = copy_pid = bench = bench_log = writer = None
    try:
        as_postgres(PG_BIN / "initdb", "-D", data, "--waldir", waldir, "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8")
        assert (data / "pg_wal").is_symlink() and os.readlink(data / "pg_wal") == str(waldir)
        with open(data / "postgresql.conf", "a") as f:
            f.write("max_wal_size = 64MB\nmin_wal_size = 32MB\nfsync = on\nlog_min_messages = warning\n")
        live_pid = server_start(data, sock, port, logs / "live.log")
        as_postgres(PG_BIN / "pgbench", "-h", sock, "-p", port, "-U", "postgres", "-i", "-s", "1", "-q", "postgres")
        conninfo = f"host={sock} port={port} user=postgres dbname=postgres"
        component = component_of("PostgreSQL", data)
        writer = start_writer(d, [pg_w, "--pgdata", data, "--conninfo", conninfo, "--name", "pg"], "pg",
                              d.root / "writer.log")
        bench_log = open(d.root / "pgbench.log", "wb")
        bench = subprocess.Popen([PG_BIN / "pgbench", "-h", sock, "-p", str(port), "-U", "postgres", "-c", "4",
                                  "-T", "300", "-n", "postgres"], stdout=bench_log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)

        # The backup, under load, naming the data volume only (by its mount point).
        time.sleep(1.5)
        assert bench.poll() is None, log_tail(d.root / "pgbench.log")
        n_before = history_count(sock, port)  # committed, hence durable, before the backup starts
        res = d.json("backup", "--to", out, mnt, timeout=300)
        assert bench.poll() is None, "pgbench stopped during the backup:\n" + log_tail(d.root / "pgbench.log")
        assert sorted(res["targets"]) == ["data", "wal"], \
            f"lvss did not add the volume of the writer's WAL directory to the backup: {res}"
        assert res["components"] == ["pg/" + component], res
        assert res["type"] == "full" and res["entries"] > 0, res
        bcd = ET.parse(out / "backup.xml").getroot()
        assert {t.get("name"): t.get("origin") for t in bcd.iter(BCD + "target")} == \
            {"data": str(mnt), "wal": str(wmnt)}, ET.tostring(bcd)
        comps = list(bcd.iter(BCD + "component"))
        assert [(c.get("writer"), c.get("logical-path"), c.get("succeeded")) for c in comps] == \
            [("pg", "PostgreSQL", "true")], ET.tostring(bcd)
        label = comps[0].get("backup-metadata") or ""
        assert f"LABEL: lvss {res['set']}\n" in label and "START WAL LOCATION: " in label, label
        assert sorted(p.name for p in out.iterdir()) == \
            ["backup.xml", "data.list", "data.tar", "manifest", "wal.list", "wal.tar", "writers"]
        # Nothing left behind: no shadow, no set, no exposure, no backup session on the live server.
        assert d.shadows() == [] and d.json("list", "sets") == []
        # (Only this lvssd's shadows: other lvssd instances may run backups on this machine meanwhile.)
        assert daemon.loops_backed_under(d.dev / "shadows") == [], "a shadow is still exposed"
        assert_no_backup_session(sock, port)
        wlog = (d.root / "writer.log").read_text()
        assert wlog.count("backup started at") == 1 and wlog.count("backup stopped at") == 1, wlog

        # More load after the backup ended, then everything stops.
        time.sleep(1.5)
        assert bench.poll() is None, log_tail(d.root / "pgbench.log")
        stop_proc(bench, sig=signal.SIGINT)
        check_invariant(sock, port, "the live cluster")
        n_after = history_count(sock, port)
        # A restore in place while the server runs: the writer vetoes at PreRestore, nothing changes.
        (mnt / "made-later").write_bytes(b"x")
        err = d.fails(daemon.EXIT_WRITER, "restore", out)
        assert "writer pg" in err and "nothing was changed" in err, err
        assert (mnt / "made-later").read_bytes() == b"x" and not (mnt / MARKER).exists()
        assert history_count(sock, port) == n_after
        server_stop(data, live_pid)
        assert not is_postmaster_of(live_pid, data)
        live_pid = None

        res = d.json("backup", "verify", out)
        assert res == {"backup": str(out), "verified": True}, res

        # 1. Beside the original, as an operator checks a backup or recovers a copy: the trees go
        # to ROOT/data and ROOT/wal; the data directory's pg_wal still names the original WAL
        # directory (a symbolic link is restored as it was), so the operator points it at the
        # restored one before starting the copy, or the copy would replay (and write) the live WAL.
        res = d.json("restore", out, "--to", root)
        assert sorted(res["targets"]) == ["data", "wal"] and res["writers"] == ["pg"], res
        check_data_dir(copy, waldir)
        segments = [n for n in os.listdir(root / "wal" / "pg_wal") if len(n) == 24]
        assert segments and (root / "wal" / "pg_wal" / "archive_status").is_dir(), segments
        os.unlink(copy / "pg_wal")
        os.symlink(root / "wal" / "pg_wal", copy / "pg_wal")
        os.lchown(copy / "pg_wal", pg.pw_uid, pg.pw_gid)
        live_wal = tree_state(waldir)
        copy_pid = server_start(copy, sock2, port + 1, logs / "copy.log")
        assert ran_crash_recovery(logs / "copy.log"), log_tail(logs / "copy.log")
        assert psql(sock2, port + 1, "SELECT pg_is_in_recovery()") == "f"
        copy_sum, n_copy = check_invariant(sock2, port + 1, "the copy restored with --to")
        assert 0 < n_before <= n_copy < n_after, \
            f"history rows: {n_before} before the backup, {n_copy} in it, {n_after} at the end of the load"
        run_pgbench(sock2, port + 1, 3, logs / "pgbench-copy.log")
        check_invariant(sock2, port + 1, "the copy after pgbench")
        assert history_count(sock2, port + 1) > n_copy
        server_stop(copy, copy_pid)
        copy_pid = None
        assert tree_state(waldir) == live_wal, "the restored copy wrote into the original WAL directory"

        # 2. In place, the server stopped: the normal disaster-recovery path. What was made since the
        # backup goes away: files on both volumes, and the rows pgbench added (the cluster comes back
        # with exactly the copy's content).
        (waldir / "made-later").write_bytes(b"x")
        res = d.json("restore", out)
        assert sorted(res["targets"]) == ["data", "wal"] and res["writers"] == ["pg"], res
        assert not (mnt / "made-later").exists() and not (waldir / "made-later").exists()
        assert not (mnt / MARKER).exists() and not (wmnt / MARKER).exists()
        check_data_dir(data, waldir)
        assert (os.stat(mnt).st_mode & 0o777, os.stat(wmnt).st_mode & 0o777) == (0o755, 0o755)
        live_pid = server_start(data, sock, port, logs / "restored.log")
        assert ran_crash_recovery(logs / "restored.log"), log_tail(logs / "restored.log")
        assert psql(sock, port, "SELECT pg_is_in_recovery()") == "f"
        assert check_invariant(sock, port, "the cluster restored in place") == (copy_sum, n_copy), \
            "the restore in place and the restore beside it differ"
        run_pgbench(sock, port, 3, logs / "pgbench-restored.log")
        check_invariant(sock, port, "the cluster restored in place, after pgbench")
        assert history_count(sock, port) > n_copy
        # What the writer's metadata excludes (as pg_basebackup does) is left out of the backup.
        listed = {line.split(" ", 1)[0] for line in (out / "data.list").read_text().splitlines()[1:]}
        leaked = sorted(n for n in ("pg/postmaster.pid", "pg/postmaster.opts") if n in listed)
        assert not leaked, f"excluded by the writer but backed up: {leaked}"
        assert "pg/global/pg_control" in listed
        print(f"postgres backup: history rows {n_before} before the backup, {n_copy} in it, {n_after} at the "
              f"end; writer:\n"
              f"{(d.root / 'writer.log').read_text()}")
    finally:
        stop_proc(bench, sig=signal.SIGINT)
        if bench_log:
            bench_log.close()
        server_stop(copy, copy_pid, mode="immediate")
        server_stop(data, live_pid, mode="immediate")  # before the teardown unmounts its volumes
        code = stop_proc(writer)  # SIGTERM: it unregisters and exits 0
    # The writer ended cleanly (and, under the sanitizers, found nothing).
    wlog = (d.root / "writer.log").read_text(errors="replace")
    assert code == 0, wlog
    assert "Sanitizer" not in wlog and "runtime error:" not in wlog, wlog
    deadline = time.monotonic() + 10
    while "pg" in {w["name"] for w in d.json("list", "writers")} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "pg" not in {w["name"] for w in d.json("list", "writers")}, "the writer is still registered"

# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvss-engine as a command: create/info/list and their JSON shapes, usage
# errors (exit 2), missing things (exit 3), help and the man page.

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import Engine

MiB = 1 << 20


def test_create_info_json_shape(eng):
    info = eng.create("64M", "--chunk-size", "16K")
    assert info["size"] == 64 * MiB
    assert info["chunk_size"] == 16384
    assert info["chunks"] == 64 * MiB // 16384
    assert info["snapshots"] == 0
    assert info["diff"] == {"used": 0, "max": None}
    assert info["policy"] == "protect-volume"
    assert isinstance(info["reflink"], bool)
    assert info["exceptions"] == 0
    assert info["mem_bytes"] >= 0
    assert info["image"] == eng.dir + "/image"
    assert os.path.getsize(info["image"]) == 64 * MiB
    # The same figures from a second process.
    again = eng.info()
    for key in ("size", "chunk_size", "chunks", "snapshots", "diff", "policy", "image"):
        assert again[key] == info[key], key


def test_create_defaults_and_limits(eng):
    info = eng.create("1G", "--diff-max", "100M", "--protect-snapshots")
    assert info["chunk_size"] == 16 * 1024  # the documented default
    assert info["diff"]["max"] == 100 * MiB
    assert info["policy"] == "protect-snapshots"
    # The image is sparse: creating a big volume costs no space.
    assert os.stat(info["image"]).st_blocks * 512 < MiB


def test_human_info_and_list(eng):
    eng.create("8M")
    out = eng.ok("info", eng.dir)
    assert re.search(r"^Size:\s+8M \(8388608 bytes\)$", out, re.M), out
    assert re.search(r"^Chunk size:\s+16K", out, re.M), out
    assert re.search(r"^Diff area:\s+0B used of unbounded$", out, re.M), out
    assert eng.ok("list", eng.dir).strip() == "No snapshots."
    eng.ok("snapshot", eng.dir, "--label", "before upgrade")
    lines = eng.ok("list", eng.dir).splitlines()
    assert lines[0].split() == ["ID", "CREATED", "PERSISTENT", "STATE", "LABEL"]
    fields = lines[1].split(None, 4)
    assert fields[0] == "1" and fields[2:] == ["yes", "valid", "before upgrade"], lines


def test_list_json_shape(eng):
    eng.create("4M")
    a = eng.snapshot("--label", 'quote " and \\ back')
    b = eng.snapshot()
    snaps = eng.snapshots()
    assert [s["id"] for s in snaps] == [a, b]
    assert b > a
    s = snaps[0]
    assert set(s) == {"id", "created", "created_ns", "persistent", "state", "label"}
    assert s["label"] == 'quote " and \\ back'
    assert s["persistent"] is True and s["state"] == "valid"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", s["created"]), s["created"]
    assert snaps[1]["label"] == ""
    assert snaps[0]["created_ns"] <= snaps[1]["created_ns"]
    one = eng.json("snapshot", eng.dir, "--label", "x")
    assert one["id"] == b + 1 and one["label"] == "x" and one["persistent"] is True


def test_non_persistent_snapshot_is_gone_next_time(eng):
    eng.create("4M")
    keep = eng.snapshot()
    proc = eng.run("snapshot", eng.dir, "--non-persistent")
    assert proc.returncode == 0
    gone = int(proc.stdout)
    assert gone > keep
    assert "non-persistent" in proc.stderr.decode()
    assert [s["id"] for s in eng.snapshots()] == [keep]


def test_delete_any_order_and_ids_not_reused(eng):
    eng.create("4M")
    ids = [eng.snapshot() for _ in range(5)]
    assert eng.json("delete", eng.dir, ids[2], ids[0]) == {"deleted": [ids[2], ids[0]]}
    assert [s["id"] for s in eng.snapshots()] == [ids[1], ids[3], ids[4]]
    eng.ok("delete", eng.dir, ids[4])
    assert eng.snapshot() > ids[4]
    err = eng.fails(3, "delete", eng.dir, ids[3], ids[0])
    assert f"no snapshot {ids[0]}" in err
    assert ids[3] not in [s["id"] for s in eng.snapshots()]  # the existing one was still deleted


@pytest.mark.parametrize("args", [
    ["create", "{dir}", "--size", "12Q"],
    ["create", "{dir}", "--size", "-5"],
    ["create", "{dir}", "--size", "1.5G"],
    ["create", "{dir}", "--size", "1000"],
    ["create", "{dir}", "--size", "0"],
    ["create", "{dir}", "--size", "99999999999999T"],
    ["create", "{dir}", "--size", "1G", "--chunk-size", "3000"],
    ["create", "{dir}", "--size", "1G", "--chunk-size", "2K"],
    ["create", "{dir}", "--size", "1G", "--chunk-size", "2M"],
    ["create", "{dir}", "--size", "1G", "--diff-max", "lots"],
    ["create", "{dir}", "--size", "1G", "--diff-max", "0"],
    ["create", "{dir}"],
    ["create", "{dir}", "--size"],
    ["create", "--size", "1G"],
    ["create", "{dir}", "--size", "1G", "--bogus"],
    ["frobnicate", "{dir}"],
    ["--bogus", "info", "{dir}"],
    [],
    ["info"],
    ["info", "{dir}", "extra"],
    ["snapshot", "{dir}", "--label", "x" * 64],
    ["delete", "{dir}"],
    ["delete", "{dir}", "abc"],
    ["delete", "{dir}", "0"],
    ["delete", "{dir}", "-1"],
    ["read", "{dir}", "--snapshot", "x"],
    ["read", "{dir}", "--offset", "1Z"],
    ["changed", "{dir}"],
    ["changed", "{dir}", "2", "1"],
    ["revert", "{dir}", "one"],
    ["limit", "{dir}"],
    ["limit", "{dir}", "--max", "big"],
    ["limit", "{dir}", "--max", "0"],
])
def test_usage_errors_exit_2(eng, args):
    args = [a.replace("{dir}", eng.dir) for a in args]
    err = eng.fails(2, *args)
    assert len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(os.path.join(eng.dir, "meta")), "a usage error must not create anything"


def test_usage_errors_name_the_problem(eng):
    assert "unknown verb 'frobnicate'" in eng.fails(2, "frobnicate")
    assert "--size" in eng.fails(2, "create", eng.dir, "--size", "12Q")
    assert "power of two" in eng.fails(2, "create", eng.dir, "--size", "1G", "--chunk-size", "3000")
    assert "multiple of 512" in eng.fails(2, "create", eng.dir, "--size", "1000")


def test_ranges_outside_the_volume_exit_2(eng):
    eng.create("1M")
    assert "past the end" in eng.fails(2, "read", eng.dir, "--offset", "2M")
    assert "past the end" in eng.fails(2, "read", eng.dir, "--offset", "1M", "--length", "1")
    assert "past the end" in eng.fails(2, "write", eng.dir, "--offset", "2M", input=b"x")
    assert eng.read(offset="1M") == b""  # an empty read at the very end is fine


def test_oversized_input_file_writes_nothing(eng, tmp_path):
    eng.create("1M")
    big = tmp_path / "big"
    big.write_bytes(b"\xaa" * (MiB + 4096))
    assert "does not fit" in eng.fails(2, "write", eng.dir, "--input", big)
    assert "larger than the volume" in eng.fails(2, "import", eng.dir, big)
    assert eng.read() == bytes(MiB)


def test_missing_volume_exit_3(eng, tmp_path):
    for verb in (["info"], ["list"], ["snapshot"], ["read"], ["changed", "1"], ["revert", "1"],
                 ["delete", "1"], ["limit", "--max", "1M"]):
        err = eng.fails(3, verb[0], eng.dir, *verb[1:])
        assert "no lvss volume" in err and "create" in err, err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no lvss volume" in eng.fails(3, "info", empty)


def test_missing_snapshot_exit_3(eng):
    eng.create("1M")
    s = eng.snapshot()
    for args in (["read", eng.dir, "--snapshot", s + 1], ["revert", eng.dir, s + 7],
                 ["changed", eng.dir, s + 1], ["changed", eng.dir, s, s + 1], ["delete", eng.dir, 42]):
        err = eng.fails(3, *args)
        assert "no snapshot" in err and "list" in err, err


def test_missing_input_file_exit_3(eng, tmp_path):
    eng.create("1M")
    eng.fails(3, "import", eng.dir, tmp_path / "nope")
    eng.fails(3, "write", eng.dir, "--input", tmp_path / "nope")


def test_create_twice_fails(eng):
    eng.create("1M")
    s = eng.snapshot()
    err = eng.fails(1, "create", eng.dir, "--size", "2M")
    assert "already" in err
    assert eng.info()["size"] == 1 * MiB and [x["id"] for x in eng.snapshots()] == [s]


def test_adopt_image(eng, tmp_path):
    image = tmp_path / "adopted.img"
    image.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    info = eng.json("create", eng.dir, "--image", image)
    assert info["size"] == MiB and info["image"] == str(image)
    s = eng.snapshot()
    eng.write(0, b"\xff" * 10)
    assert image.read_bytes()[:12] == b"\xff" * 10 + bytes([10, 11])  # the live data is written in place
    assert eng.read(length=12, snapshot=s) == bytes(range(12))


def test_help_covers_every_verb(lvss_engine):
    out = subprocess.run([lvss_engine, "--help"], capture_output=True, text=True, check=True).stdout
    verbs = re.findall(r"^  (\w+)\s", out.split("Verbs:")[1].split("Options:")[0], re.M)
    assert set(verbs) >= {"create", "info", "list", "snapshot", "delete", "read", "write", "import",
                          "changed", "revert", "limit"}, verbs
    for verb in verbs:
        for args in ([verb, "--help"], ["help", verb]):
            proc = subprocess.run([lvss_engine, *args], capture_output=True, text=True)
            assert proc.returncode == 0 and proc.stdout.startswith(f"Usage: lvss-engine [--json] {verb}"), args
    version = subprocess.run([lvss_engine, "--version"], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"lvss-engine \d+\.\d+\.\d+\n", version), version


def installed_man_page(lvss_engine):
    if os.environ.get("LVSS_MANPAGE"):
        return Path(os.environ["LVSS_MANPAGE"])
    prefix = Path(lvss_engine).resolve().parent.parent
    return prefix / "share" / "man" / "man8" / "lvss-engine.8"


def test_man_page_installed_and_true_to_the_code(lvss_engine):
    page = installed_man_page(lvss_engine)
    if not page.exists():
        pytest.skip(f"no installed man page at {page}")
    text = page.read_text()
    out = subprocess.run([lvss_engine, "--help"], capture_output=True, text=True, check=True).stdout
    verbs = re.findall(r"^  (\w+)\s", out.split("Verbs:")[1].split("Options:")[0], re.M)
    for verb in verbs:
        assert re.search(rf"^\.B (lvss-engine )?{verb}\b", text, re.M), f"man page lacks verb {verb}"
        help_text = subprocess.run([lvss_engine, verb, "--help"], capture_output=True, text=True).stdout
        for opt in re.findall(r"--([a-z][a-z-]+)", help_text):
            if opt in ("help",):
                continue
            assert "\\-\\-" + opt.replace("-", "\\-") in text, f"man page lacks {verb} --{opt}"
    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True).returncode == 0:
        proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True,
                              env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"})
        assert proc.returncode == 0 and "LVSS-ENGINE(8)" in proc.stdout
        assert proc.stderr == "", proc.stderr


def test_permission_denied_exit_7(eng, lvss_engine):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another user")
    eng.create("1M")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    probe = subprocess.run(as_nobody + [lvss_engine, "--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {lvss_engine}: {probe.stderr!r}")
    for args in (["info", eng.dir], ["snapshot", eng.dir]):
        proc = subprocess.run(as_nobody + [lvss_engine, *args], capture_output=True, text=True)
        assert proc.returncode == 7, (args, proc.returncode, proc.stderr)
        assert proc.stderr.startswith("lvss-engine: ") and "ermission denied" in proc.stderr, proc.stderr
    assert eng.info()["snapshots"] == 0


def test_stream_past_the_end_writes_what_fits(eng):
    eng.create("4K")
    # From a pipe the size is not known in advance: what fits is written, then exit 1.
    proc = subprocess.run(f"head -c 5000 /dev/zero | tr '\\0' x | {eng.path} write {eng.dir} --offset 96",
                          shell=True, capture_output=True, text=True)
    assert proc.returncode == 1 and "runs past the end" in proc.stderr and "4000 bytes" in proc.stderr
    assert eng.read() == bytes(96) + b"x" * 4000


def test_write_json_and_read_json(eng, tmp_path):
    eng.create("1M")
    src = tmp_path / "src"
    src.write_bytes(b"0123456789abcdef")
    assert eng.json("write", eng.dir, "--offset", "1K", "--input", src) == {"offset": 1024, "bytes": 16}
    out = tmp_path / "out"
    r = eng.json("read", eng.dir, "--offset", "1K", "--length", "10", "--output", out)
    assert r == {"snapshot": None, "offset": 1024, "length": 10, "output": str(out)}
    assert out.read_bytes() == b"0123456789"
    assert "needs --output" in eng.fails(2, "--json", "read", eng.dir)

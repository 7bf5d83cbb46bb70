# SPDX-License-Identifier: LGPL-2.1-or-later
#
# lvssd at its documented limits (issue 6): 512 shadow copies on one volume, each reading its own
# moment, then a clear refusal of the 513th (NoSpace, exit 6, nothing frozen or made); 64 volumes in
# one set, and a clear refusal of 65; 1024 volumes, then a clear refusal; and lvssd's memory
# after creating and deleting 512 shadows twice stays where it was after the first round (no
# growth per shadow). Not named test_lvssd_*: about 90 s here, too long to repeat under ASan.

import time

import daemon as d
from daemon import EXIT_NO_SPACE, EXIT_USAGE


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def marker(i):
    return f"moment {i:04d}\n".encode().ljust(4096, b".")


def test_512_shadows_on_one_volume_then_a_clear_refusal(lvssd):
    lvssd.create_volume("v", "16M")
    path = lvssd.volume_path("v")
    rounds = []
    for round_ in range(2):
        for i in range(512):
            d.pwrite_sync(path, 0, marker(i))
            lvssd.ok("create", "--no-writers", "v")
        shadows = lvssd.shadows()
        assert len(shadows) == 512
        # Each reads its own moment: oldest first, as created.
        by_time = sorted(shadows, key=lambda s: (s["created"], s["id"]))
        got = {d.pread(s["path"], 0, 4096) for s in by_time}
        assert got == {marker(i) for i in range(512)}, "a shadow does not read its moment"

        err = lvssd.fails(EXIT_NO_SPACE, "create", "--no-writers", "v")
        assert "512 shadow copies" in err and "lvss delete --volume v --oldest" in err, err
        assert len(lvssd.shadows()) == 512
        # Deleting the oldest makes room for one more.
        lvssd.ok("delete", "--volume", "v", "--oldest")
        lvssd.ok("create", "--no-writers", "v")
        lvssd.ok("delete", "--all")
        assert lvssd.shadows() == []
        time.sleep(0.2)
        rounds.append(rss_kib(lvssd.pid))
    # A leak of even 1 KiB per shadow would show as 512 KiB more after the second round.
    assert rounds[1] <= rounds[0] + 256, f"lvssd's RSS grew from {rounds[0]} KiB to {rounds[1]} KiB"


def test_64_volumes_in_one_set_and_1024_volumes(lvssd):
    names = [f"v{i:04d}" for i in range(65)]
    for n in names:
        lvssd.create_volume(n, "4M")
    s = lvssd.json("create", "--no-writers", *names[:64])
    assert len(s["shadows"]) == 64 and {x["volume"] for x in s["shadows"]} == set(names[:64])
    before = lvssd.shadow_ids()
    err = lvssd.fails(EXIT_USAGE, "create", "--no-writers", *names)
    assert "at most 64" in err, err
    assert lvssd.shadow_ids() == before, "a refused set must make nothing"
    lvssd.ok("delete", "--all")

    # Volumes: 1024 at most.
    for i in range(65, 1024):
        lvssd.create_volume(f"v{i:04d}", "1M")
    assert len(lvssd.volumes()) == 1024
    err = lvssd.fails(EXIT_NO_SPACE, "volume", "create", "one-more", "--size", "1M")
    assert "1024 volumes" in err and "delete one" in err, err
    assert "one-more" not in lvssd.volumes()
    assert not (lvssd.state / "volumes" / "one-more").exists()

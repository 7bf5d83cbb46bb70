# SPDX-License-Identifier: LGPL-2.1-or-later
#
# What `meson install` puts next to the programs: the man pages lvssd(8) and
# lvss(8), the bash completion of lvss, the systemd unit of lvssd and the
# system bus policy. Checked in the staging prefix that tests/run installs
# into ($LVSS_PREFIX, e.g. /tmp/lvss-stage.X/usr/local), against the
# installed lvss and lvssd there. Needs no running lvssd.

import os
import re
import select
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


@pytest.fixture(scope="module")
def prefix():
    p = os.environ.get("LVSS_PREFIX")
    if not p:
        pytest.skip("LVSS_PREFIX is not set: install into a staging prefix first "
                    "(meson install -C BUILD --destdir STAGE; LVSS_PREFIX=STAGE/usr/local), as tests/run does")
    p = Path(p)
    if not p.is_dir():
        pytest.fail(f"LVSS_PREFIX={p} is not a directory: install into it first")
    return p


def installed(prefix, *parts):
    path = prefix.joinpath(*parts)
    assert path.exists(), f"{path} was not installed"
    return path


def lvss_help(prefix, *verb):
    """The help of the installed lvss (or of one verb): its stdout, whatever the exit status."""
    lvss = os.environ.get("LVSS_CLI") or str(installed(prefix, "bin", "lvss"))
    # A socket that does not exist: help must not need lvssd.
    env = dict(os.environ, LVSS_SOCKET="/nonexistent/lvssd.sock")
    proc = subprocess.run([lvss, *verb, "--help"], capture_output=True, text=True, env=env, timeout=30)
    assert proc.stdout.startswith("Usage: lvss"), f"lvss {' '.join(verb)} --help: {proc.stdout!r} {proc.stderr!r}"
    return proc.stdout


def help_verbs(text):
    """The verbs listed by a help text: 'volume create', 'list volumes', 'help', ..."""
    section = text.split("\nVerbs:\n", 1)[1].split("\n\n", 1)[0]
    verbs = []
    for line in section.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?: |$)", line)
        if m:
            verbs.append(m.group(1))
    return verbs


def help_options(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


def roff_text(path):
    """The man page source with font escapes dropped and \\- as -, for plain searches."""
    src = path.read_text()
    src = re.sub(r"\\f[BIRP]|\\f\(..|\\&", "", src)
    return src.replace("\\-", "-").replace("\\e", "\\")


# ---- man pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["lvssd.8", "lvss.8", "lvss-writer-exec.8", "lvss-writer-sqlite.8",
                                  "lvss-writer-postgres.8"])
def test_man_page_renders_without_warnings(prefix, page):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    path = installed(prefix, "share", "man", "man8", page)
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    proc = subprocess.run(["man", "--warnings", "-l", str(path)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"man --warnings -l {path}:\n{proc.stderr}"
    text = re.sub(r".\x08", "", proc.stdout)  # overstrike bold and underline, as col -b would
    assert page.split(".")[0].upper() in text
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), f"{page} has no {section} section"


def test_lvss_page_documents_every_verb_and_option(prefix):
    page = roff_text(installed(prefix, "share", "man", "man8", "lvss.8"))
    top = lvss_help(prefix)
    verbs = help_verbs(top)
    assert "volume create" in verbs and "list volumes" in verbs and "help" in verbs, verbs
    missing = [v for v in verbs if not re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", page)]
    assert not missing, f"verbs of `lvss --help` missing from lvss.8: {missing}"
    options = help_options(top)
    for verb in verbs:
        options |= help_options(lvss_help(prefix, *verb.split()))
    missing = sorted(o for o in options if o not in page)
    assert not missing, f"options of lvss missing from lvss.8: {missing}"
    for section in ("JSON", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES"):
        assert f".SH {section}" in page, f"lvss.8 has no {section} section"
    assert "LVSS_SOCKET" in page


def test_lvssd_page_documents_every_option(prefix):
    page = roff_text(installed(prefix, "share", "man", "man8", "lvssd.8"))
    lvssd = os.environ.get("LVSS_LVSSD") or str(installed(prefix, "sbin", "lvssd"))
    proc = subprocess.run([lvssd, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    options = help_options(proc.stdout)
    assert {"--state-dir", "--runtime-dir", "--config", "--foreground"} <= options, options
    missing = sorted(o for o in options if o not in page)
    assert not missing, f"options of `lvssd --help` missing from lvssd.8: {missing}"
    # The keys of --config, as the help names them.
    keys = re.search(r"--config FILE.*?\((.*?)\)", proc.stdout, re.S).group(1)
    for key in re.findall(r"[a-z][a-z-]+", keys):
        assert f"{key}=" in page, f"--config key {key} missing from lvssd.8"


# ---- bash completion ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def completion(prefix):
    if not BASH_COMPLETION.exists():
        pytest.skip(f"bash-completion is not installed ({BASH_COMPLETION})")
    return installed(prefix, "share", "bash-completion", "completions", "lvss")


def complete(completion, line):
    """COMPREPLY of lvss's completion function for LINE, the cursor at its end."""
    script = r'''
source "$1"
source "$2"
read -ra COMP_WORDS <<<"$3"
[[ $3 == *" " || -z $3 ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$3
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
func=$(complete -p lvss | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
"$func" lvss "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''
    # No lvssd is asked: volume names and ids are simply not offered.
    env = dict(os.environ, LVSS_SOCKET="/nonexistent/lvssd.sock")
    proc = subprocess.run(["bash", "-c", script, "bash", str(BASH_COMPLETION), str(completion), line],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_completion_loads(completion):
    proc = subprocess.run(["bash", "-c", f'source {BASH_COMPLETION}; source "$1"; complete -p lvss', "bash",
                           str(completion)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert re.match(r"complete .*-F \S+ lvss$", proc.stdout.strip()), proc.stdout


def test_completion_of_verbs(completion):
    assert complete(completion, "lvss vol") == ["volume"]
    assert set(complete(completion, "lvss list ")) >= {"volumes", "shadows", "storage", "providers", "writers",
                                                       "sets"}
    assert set(complete(completion, "lvss volume ")) >= {"create", "list", "delete", "path"}
    assert set(complete(completion, "lvss ")) >= {"volume", "create", "list", "shadow", "delete", "expose",
                                                  "unexpose", "revert", "storage", "help"}
    assert complete(completion, "lvss create --context app") == ["app-rollback"]
    assert "--size" in complete(completion, "lvss volume create v --")
    # lvssd unreachable: no names, and no noise.
    assert complete(completion, "lvss volume delete ") == []


# ---- systemd unit ------------------------------------------------------------------------------


def unit_path(prefix):
    candidates = [prefix / "lib" / "systemd" / "system" / "lvssd.service"]
    if prefix.name == "usr":  # a /usr build installs where systemd's pkg-config says
        candidates += [prefix.parent / "lib" / "systemd" / "system" / "lvssd.service",
                       prefix / "lib" / "systemd" / "system" / "lvssd.service"]
    for c in candidates:
        if c.exists():
            return c
    pytest.fail(f"lvssd.service was not installed (looked at {[str(c) for c in candidates]})")


def test_unit_file(prefix):
    unit = unit_path(prefix)
    text = unit.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert settings.get("Type") == "notify", text
    exec_start = settings.get("ExecStart", "").split()
    assert exec_start and exec_start[1:] == ["--foreground"], settings.get("ExecStart")
    # The path where lvssd is installed: the staged binary is STAGE + that path.
    path = exec_start[0]
    assert path.startswith("/") and "@" not in path, path
    real_prefix = str(Path(path).parent.parent)
    assert str(prefix).endswith(real_prefix), f"ExecStart={path} is not under the prefix of {prefix}"
    stage = str(prefix)[: len(str(prefix)) - len(real_prefix)]
    staged = Path(stage + path)
    assert staged.is_file() and os.access(staged, os.X_OK), f"ExecStart={path}, but {staged} is not installed"
    for key in ("RuntimeDirectory", "StateDirectory"):
        assert settings.get(key) == "lvss", (key, settings.get(key))
    assert settings.get("KillMode") == "process"  # the guardian must outlive a dead lvssd
    assert int(settings.get("TimeoutStopSec", "0")) >= 20


def test_unit_file_verifies(prefix):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = unit_path(prefix)
    # Documentation=man:... is looked up with man: find the staged pages.
    env = dict(os.environ, MANPATH=str(prefix / "share" / "man"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env,
                          timeout=120)
    exec_start = re.search(r"^ExecStart=(\S+)", unit.read_text(), re.M).group(1)
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    # In a staging install the binary is not at its final path yet: the one complaint allowed.
    other = [l for l in lines if not (exec_start in l and "is not executable" in l)]
    assert not other, f"systemd-analyze verify {unit}:\n" + "\n".join(lines)


# ---- D-Bus policy ------------------------------------------------------------------------------


def test_dbus_policy(prefix, tmp_path):
    conf = installed(prefix, "share", "dbus-1", "system.d", "org.lvss.conf")
    root = ET.parse(conf).getroot()  # well-formed XML, or this raises
    assert root.tag == "busconfig"
    policies = {tuple(sorted(p.attrib.items())): p for p in root.findall("policy")}
    root_policy = policies.get((("user", "root"),))
    default_policy = policies.get((("context", "default"),))
    assert root_policy is not None and default_policy is not None, list(policies)
    assert any(a.get("own") == "org.lvss" for a in root_policy.findall("allow"))
    assert any(a.get("send_destination") == "org.lvss" for a in default_policy.findall("allow"))
    # Nobody but root may own the name.
    for p in root.iter("policy"):
        if p is not root_policy:
            assert not any(a.get("own") for a in p.findall("allow")), ET.tostring(p)

    # The bus daemon itself accepts it: a private dbus-daemon that includes it starts and serves.
    if not shutil.which("dbus-daemon"):
        return
    bus_conf = tmp_path / "bus.conf"
    bus_conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={tmp_path}/bus</listen>
  <policy context="default"><allow user="*"/></policy>
  <include>{conf}</include>
</busconfig>
""")
    proc = subprocess.Popen(["dbus-daemon", f"--config-file={bus_conf}", "--nofork", "--print-address"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        address = proc.stdout.readline() if ready else ""
        if not address:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"dbus-daemon refused the policy {conf}: {err}")
        assert address.startswith("unix:"), address
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


# ---- liblvss: the library, its headers and pkg-config file, as an application builds on them ----


def staged_pkgconfig(prefix):
    """(env, sysroot) for pkg-config to find the staged liblvss.pc with its paths under the stage."""
    pcs = list(prefix.glob("lib/**/pkgconfig/liblvss.pc"))
    assert pcs, f"liblvss.pc was not installed under {prefix}/lib"
    text = pcs[0].read_text()
    m = re.search(r"^prefix=(.*)$", text, re.M)
    assert m, text
    pc_prefix = m.group(1)
    assert str(prefix).endswith(pc_prefix), (prefix, pc_prefix)
    sysroot = str(prefix)[: len(str(prefix)) - len(pc_prefix)]
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent), PKG_CONFIG_SYSROOT_DIR=sysroot)
    return env, sysroot


def test_liblvss_exports_only_versioned_lvss_symbols(prefix):
    libs = list(prefix.glob("lib/**/liblvss.so.0"))
    assert libs, "liblvss.so.0 was not installed"
    out = subprocess.run(["nm", "-D", "--defined-only", str(libs[0])], capture_output=True, text=True,
                         check=True).stdout
    syms = [line.split()[-1] for line in out.splitlines() if line.split()[1] in "TDBR"]
    assert any(s.startswith("lvss_writer_connect@@LVSS_0.1") for s in syms), syms
    assert any(s.startswith("lvss_wmd_from_xml@@LVSS_0.1") for s in syms), syms
    stray = [s for s in syms if not (s.startswith("lvss_") and s.endswith("@@LVSS_0.1"))]
    assert not stray, f"liblvss exports symbols outside LVSS_0.1: {stray}"


def test_example_writer_builds_against_the_installed_library(prefix, tmp_path):
    env, sysroot = staged_pkgconfig(prefix)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "liblvss"], capture_output=True, text=True,
                           env=env, check=True).stdout.split()
    assert any(f.startswith("-I") and f.endswith("/include") for f in flags), flags
    example = Path(__file__).resolve().parents[2] / "docs" / "example-writer.c"
    exe = tmp_path / "example-writer"
    proc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", "-o", str(exe), str(example), *flags],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # It runs against the staged library and says how to use it when given nothing.
    libdir = [f[2:] for f in flags if f.startswith("-L")]
    run_env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdir))
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=run_env, timeout=30)
    assert "usage" in (proc.stdout + proc.stderr).lower(), (proc.returncode, proc.stdout, proc.stderr)

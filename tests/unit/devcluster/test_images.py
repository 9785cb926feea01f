"""The OCI archive writer, the operator recipe's parity with the Dockerfile, and an import into containerd."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubatch.devcluster import images
from kubatch.devcluster.images import OPERATOR, ImageConfig, Layer, write_archive, write_layer

REPO = Path(__file__).resolve().parents[3]
REF = "localhost/test/app:1.0"
CONFIG = ImageConfig(
    entrypoint=("/usr/bin/hello",),
    cmd=("--loud",),
    env={"PATH": "/usr/bin", "MODE": "test"},
    user="10001:10001",
    working_dir="/home/app",
    exposed_ports=("8080/tcp",),
    labels={"org.opencontainers.image.title": "app"},
)


# --------------------------------------------------------------------------------------------------
# The archive writer


def sample_layer(src: Path) -> Layer:
    src.mkdir(parents=True, exist_ok=True)
    script = src / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    tree = src / "tree"
    (tree / "pkg" / "__pycache__").mkdir(parents=True, exist_ok=True)
    (tree / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (tree / "pkg" / "mod.py").write_text("X = 1\n")
    if not (tree / "pkg" / "alias.py").exists():
        os.link(tree / "pkg" / "mod.py", tree / "pkg" / "alias.py")
        (tree / "pkg" / "current").symlink_to("mod.py")
    layer = Layer("sample")
    layer.add_file(script, "/usr/bin/hello")
    layer.add_bytes("/etc/motd", b"hi\n")
    layer.add_symlink("/bin/hi", "/usr/bin/hello")
    layer.add_dir("/tmp", mode=0o1777)
    layer.add_dir("/home/app", mode=0o750, uid=10001, gid=10001)
    layer.add_tree(tree, "/opt/tree", skip=lambda rel: rel.endswith("__pycache__"))
    return layer


def build(tmp: Path, name: str) -> tuple[Path, str]:
    blob = write_layer(sample_layer(tmp / "src"), tmp / name / "layer.tar.gz")
    archive = tmp / name / "image.tar"
    return archive, write_archive(archive, [blob], CONFIG, [REF, "localhost/test/app:latest"])


def read_members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_archive_is_a_valid_oci_layout(tmp_path: Path) -> None:
    archive, manifest_digest = build(tmp_path, "a")
    files = read_members(archive)
    blobs = {f"sha256:{name.rpartition('/')[2]}": data for name, data in files.items() if name.startswith("blobs/")}
    assert all(sha(data) == digest for digest, data in blobs.items()), "every blob is named by its digest"
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref}
        for ref in (REF, "localhost/test/app:latest")
    ]
    for desc in index["manifests"]:
        assert desc["digest"] == manifest_digest
        assert desc["size"] == len(blobs[manifest_digest])
        assert desc["mediaType"] == images.MEDIA_MANIFEST

    manifest = json.loads(blobs[manifest_digest])
    assert manifest["mediaType"] == images.MEDIA_MANIFEST
    config_blob = blobs[manifest["config"]["digest"]]
    assert manifest["config"]["size"] == len(config_blob)
    config = json.loads(config_blob)
    assert config["config"] == {
        "Entrypoint": ["/usr/bin/hello"],
        "Cmd": ["--loud"],
        "Env": ["PATH=/usr/bin", "MODE=test"],
        "User": "10001:10001",
        "WorkingDir": "/home/app",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.opencontainers.image.title": "app"},
    }
    assert (config["os"], config["architecture"]) == ("linux", images.oci_arch())
    (layer_desc,) = manifest["layers"]
    assert layer_desc["mediaType"] == images.MEDIA_LAYER
    layer_gz = blobs[layer_desc["digest"]]
    assert layer_desc["size"] == len(layer_gz)
    layer_tar = gzip.decompress(layer_gz)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(layer_tar)]}

    with tarfile.open(fileobj=gzip.open(tmp_path / "a" / "layer.tar.gz")) as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = [m.name for m in tar.getmembers()]
    assert names == sorted(names), "written in path order"
    assert all(m.mtime == 0 and m.uname == m.gname == "" for m in members.values())
    for parent in ("usr", "usr/bin", "bin", "etc", "home", "opt", "opt/tree", "opt/tree/pkg"):
        assert members[parent].isdir(), parent
    assert members["usr/bin/hello"].mode == 0o755
    assert members["etc/motd"].mode == 0o644
    assert members["bin/hi"].issym() and members["bin/hi"].linkname == "/usr/bin/hello"
    assert members["tmp"].mode == 0o1777
    home = members["home/app"]
    assert (home.mode, home.uid, home.gid) == (0o750, 10001, 10001)
    # Hard links stay links: the first path in order holds the data, the other points at it.
    assert members["opt/tree/pkg/alias.py"].isreg()
    assert members["opt/tree/pkg/mod.py"].islnk() and members["opt/tree/pkg/mod.py"].linkname == "opt/tree/pkg/alias.py"
    assert members["opt/tree/pkg/current"].issym()
    assert not any("__pycache__" in name for name in names)


def test_same_input_same_digest(tmp_path: Path) -> None:
    first, digest = build(tmp_path, "a")
    os.utime(tmp_path / "src" / "hello.sh", (1, 1))  # host mtimes do not reach the image
    second, again = build(tmp_path, "b")
    assert digest == again
    assert first.read_bytes() == second.read_bytes()
    changed = Layer("sample")
    changed.add_bytes("/etc/motd", b"changed\n")
    blob = write_layer(changed, tmp_path / "c" / "layer.tar.gz")
    assert write_archive(tmp_path / "c" / "image.tar", [blob], CONFIG, [REF]) != digest


def test_references_must_be_full(tmp_path: Path) -> None:
    blob = write_layer(sample_layer(tmp_path / "src"), tmp_path / "layer.tar.gz")
    for ref in ("busybox", "busybox:latest", "localhost/busybox"):
        with pytest.raises(ValueError):
            write_archive(tmp_path / "x.tar", [blob], CONFIG, [ref])


def test_debian_mirror_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://mirror.test/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\nSigned-By: /nonexistent.gpg\n\n"
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert images.debian_mirror("bookworm", [deb822]) == ("http://mirror.test/debian", None)
    assert images.debian_mirror("bookworm-security", [deb822])[0] == "http://mirror.test/debian-security"
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# deb http://old.test/debian bookworm main\ndeb [arch=amd64] http://other.test/debian bookworm main\n"
    )
    disabled = tmp_path / "x.list.disabled"
    disabled.write_text("deb http://disabled.test/debian bookworm main\n")
    assert images.debian_mirror("bookworm", [disabled, one_line])[0] == "http://other.test/debian"
    with pytest.raises(RuntimeError):
        images.debian_mirror("trixie", [deb822, one_line])


def test_base_layer_strips_what_a_runtime_does_not_need() -> None:
    stripped = [
        "usr/share/doc/python3/changelog.Debian.gz",
        "usr/share/man/man1",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
        "usr/lib/python3.11/__pycache__",
        "var/log/dpkg.log",
        "dev/null",
        "etc/hostname",
    ]
    kept = ["usr/share/doc/python3/copyright", "usr/share/doc", "usr/share/man", "var/log", "usr/bin/python3.11", "tmp"]
    assert all(images._strip_base(p) for p in stripped)
    assert not any(images._strip_base(p) for p in kept)


# --------------------------------------------------------------------------------------------------
# Parity with the Dockerfile: the operator recipe declares the same image


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def last(ins: list[tuple[str, str]], op: str) -> str:
    return [arg for o, arg in ins if o == op][-1]


def test_operator_recipe_matches_the_dockerfile() -> None:
    ins = dockerfile()
    config = OPERATOR.config
    assert last(ins, "FROM").split()[0] == f"python:{OPERATOR.python}-slim"
    assert json.loads(last(ins, "ENTRYPOINT")) == list(config.entrypoint)
    assert not [arg for op, arg in ins if op == "CMD"] and not config.cmd
    assert last(ins, "USER") == config.user
    assert last(ins, "WORKDIR") == config.working_dir
    exposed = [p if "/" in p else f"{p}/tcp" for arg in (a for o, a in ins if o == "EXPOSE") for p in arg.split()]
    assert exposed == list(config.exposed_ports)
    env = dict(kv.split("=", 1) for arg in (a for o, a in ins if o == "ENV") for kv in shlex.split(arg))
    base_env = {"PATH", "LANG"}  # set by python:3.11-slim itself, not by the Dockerfile
    assert {k: v for k, v in config.env.items() if k not in base_env} == env
    assert config.env["PATH"].split(":")[0] == f"{OPERATOR.venv}/bin", "`python` is the venv's"

    # The same user: `groupadd`/`useradd` with the same ids, home and shell.
    runs = [shlex.split(arg) for op, arg in ins if op == "RUN"]
    words = [w for run in runs for w in run]
    useradd = words[words.index("useradd") :]
    groupadd = words[words.index("groupadd") :]
    user = OPERATOR.user
    assert groupadd[groupadd.index("--gid") + 1] == str(user.gid) and user.name in groupadd[:5]
    for flag, value in (("--uid", user.uid), ("--gid", user.gid), ("--home-dir", user.home), ("--shell", user.shell)):
        assert useradd[useradd.index(flag) + 1] == str(value), flag
    assert user.name in useradd[: useradd.index("&&") if "&&" in useradd else None]
    assert config.user == f"{user.uid}:{user.gid}"

    # The same package: `pip install .` in the directory the repository's sources were copied to.
    pip = words.index("pip")
    assert (
        words[pip + 1] == "install" and next(w for w in words[pip + 2 :] if not w.startswith("-")) == OPERATOR.install
    )
    copies = [arg.split() for op, arg in ins if op == "COPY"]
    workdirs = [arg for op, arg in ins if op == "WORKDIR"]
    copied = [src for *srcs, _dest in copies for src in srcs]
    assert sorted(copied) == sorted(OPERATOR.sources)
    assert workdirs[0] == "/src" and all(dest in ("./", "./" + srcs[0]) for *srcs, dest in copies)
    with (REPO / "pyproject.toml").open("rb") as fh:
        assert tomllib.load(fh)["project"]["name"] == OPERATOR.distribution == "kubatch"
    assert OPERATOR.config.entrypoint[-1] == OPERATOR.distribution


def test_operator_reference_tracks_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "debian_mirror", lambda suite: ("http://mirror.test/debian", None))
    repo = tmp_path / "repo"
    for name in OPERATOR.sources:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            repo.mkdir(exist_ok=True)
            shutil.copy2(src, repo / name)
    ref = images.operator_ref(repo)
    repository, _, tag = ref.rpartition(":")
    version, _, digest = tag.rpartition("-")
    assert (repository, version) == (OPERATOR.repository, _version()) and re.fullmatch(r"[0-9a-f]{12}", digest)
    assert images.operator_ref(repo) == ref
    (repo / "operator" / "kubatch" / "__pycache__").mkdir(exist_ok=True)
    (repo / "operator" / "kubatch" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert images.operator_ref(repo) == ref, "build artefacts are not inputs"
    with (repo / "operator" / "kubatch" / "__init__.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert images.operator_ref(repo) != ref


def _version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


# --------------------------------------------------------------------------------------------------
# A throwaway containerd imports the busybox archive


@contextlib.contextmanager
def throwaway_containerd() -> Iterator[Callable[..., str]]:
    """containerd with its own root, state and socket in a temporary directory; yields `ctr -n k8s.io`."""
    missing = [tool for tool in ("containerd", "ctr") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make system-deps`")
    home = Path(tempfile.mkdtemp(prefix="kbctd-"))  # short: the socket path must fit in 108 bytes
    config = home / "config.toml"
    sock = home / "containerd.sock"
    config.write_text(
        f"""version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{home}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"
"""
    )
    log = (home / "containerd.log").open("wb")
    proc = subprocess.Popen(
        ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def ctr(*args: str) -> str:
        out = subprocess.run(
            ["ctr", "-a", str(sock), "-n", "k8s.io", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {out.stderr}")
        return out.stdout

    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["ctr", "-a", str(sock), "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start:\n{(home / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield ctr
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted((p for p in mounted if p.startswith(f"{home}/")), reverse=True):
            subprocess.run(["umount", point], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a throwaway containerd, which needs root")
def test_busybox_archive_imports_into_containerd(tmp_path: Path) -> None:
    image = images.build_busybox(cache=tmp_path / "cache")
    assert image.refs == (images.BUSYBOX_REF,)
    with throwaway_containerd() as ctr:
        ctr("images", "import", str(image.archive))
        listed: dict[str, Any] = {line.split()[0]: line for line in ctr("images", "ls").splitlines()[1:]}
        assert "localhost/busybox:latest" in listed, listed
        checked = [line for line in ctr("images", "check").splitlines() if line.startswith(images.BUSYBOX_REF)]
        assert checked and "complete" in checked[0], checked

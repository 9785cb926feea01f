"""Container images without Docker: OCI image-layout archives for `ctr -n k8s.io images import`.

This module owns every image the real nodes load, built on this machine without an image builder
or registry:

* the archive writer (stdlib only): a `Layer` (files, directories, symlinks, host trees with modes
  and owners) becomes a gzip'd tar blob with reproducible digests (`write_layer`), and layers plus an
  `ImageConfig` become an `oci-layout` tar whose index names each reference (`write_archive`);
* the recipes `localhost/pause:1` (pause.c from the k8s.io/kubernetes module), `localhost/busybox:latest`
  (Debian's busybox-static) and the operator image `localhost/kubatch:<version>-<hash>` (also tagged
  `:dev`): the Dockerfile's semantics (`OPERATOR`) on a debootstrapped Debian base, in three layers
  (base, dependencies, the kubatch wheel) so a code change rebuilds only the last;
* `build_all(repo)` and `python -m kubatch.devcluster.images`, caching everything under
  `${KUBATCH_CACHE:-~/.cache/kubatch}/images/` by a hash of its inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, cast

EPOCH = "1970-01-01T00:00:00Z"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The archive writer


@dataclass(frozen=True)
class ImageConfig:
    """What a Dockerfile's ENTRYPOINT, CMD, ENV, USER, WORKDIR, EXPOSE and LABEL set."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()  # "8080/tcp"
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_oci(self) -> dict[str, object]:
        """The `config` object of an OCI image config (empty fields left out)."""
        out: dict[str, object] = {}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.env:
            out["Env"] = [f"{k}={v}" for k, v in self.env.items()]
        if self.user:
            out["User"] = self.user
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.labels:
            out["Labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class _Entry:
    kind: Literal["dir", "file", "bytes", "symlink", "host"]
    mode: int | None = None  # None: the host file's mode
    uid: int = 0
    gid: int = 0
    source: Path | None = None
    data: bytes = b""
    target: str = ""


class Layer:
    """One filesystem layer: image paths mapped to directories, files, symlinks or whole host trees.

    Missing parent directories are added as root-owned 0755. Every entry gets mtime 0 and no user
    or group names, and entries are written in path order, so the same input gives the same digest.
    """

    def __init__(self, comment: str) -> None:
        self.comment = comment  # the image history's `created_by`
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def _path(path: str) -> str:
        norm = os.path.normpath("/" + path).lstrip("/")
        if norm in ("", "."):
            raise ValueError(f"not a path inside an image: {path!r}")
        return norm

    def add_dir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._entries[self._path(path)] = _Entry("dir", mode=mode, uid=uid, gid=gid)

    def add_file(self, source: Path, path: str, *, mode: int | None = None, uid: int = 0, gid: int = 0) -> None:
        """The host file `source` at `path` (its mode unless `mode` is given; owned by uid:gid)."""
        self._entries[self._path(path)] = _Entry("file", mode=mode, uid=uid, gid=gid, source=source)

    def add_bytes(self, path: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self._entries[self._path(path)] = _Entry("bytes", mode=mode, uid=uid, gid=gid, data=data)

    def add_symlink(self, path: str, target: str) -> None:
        self._entries[self._path(path)] = _Entry("symlink", mode=0o777, target=target)

    def add_tree(self, source: Path, path: str = "/", *, skip: Callable[[str], bool] | None = None) -> None:
        """Everything under the host directory `source`, with its modes, owners, symlinks and hard links.

        `skip(relative_path)` drops an entry (and, for a directory, everything under it).
        """
        base = path.strip("/") and self._path(path)
        if base:
            self._entries[base] = _Entry("host", source=source)

        def walk(directory: Path, rel: str) -> None:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
            for child in children:
                child_rel = f"{rel}/{child.name}" if rel else child.name
                if skip is not None and skip(child_rel):
                    continue
                self._entries[f"{base}/{child_rel}" if base else child_rel] = _Entry("host", source=Path(child.path))
                if child.is_dir(follow_symlinks=False):
                    walk(Path(child.path), child_rel)

        walk(source, "")

    def _complete(self) -> dict[str, _Entry]:
        entries = dict(self._entries)
        for path in self._entries:
            parent = path.rpartition("/")[0]
            while parent and parent not in entries:
                entries[parent] = _Entry("dir", mode=0o755)
                parent = parent.rpartition("/")[0]
        return entries

    def write_tar(self, tar: tarfile.TarFile) -> None:
        entries = self._complete()
        for path in sorted(entries):
            entry = entries[path]
            if entry.kind == "host":
                assert entry.source is not None
                info = tar.gettarinfo(str(entry.source), arcname=path)  # hard links: LNKTYPE to the first path
                if info is None:  # a socket
                    continue
                info.mtime, info.uname, info.gname = 0, "", ""
                if info.isreg():
                    with entry.source.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
                continue
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid = 0, entry.uid, entry.gid
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, cast(int, entry.mode)
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                tar.addfile(info)
            elif entry.kind == "bytes":
                info.mode, info.size = cast(int, entry.mode), len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                assert entry.source is not None
                st = entry.source.stat()
                info.mode = entry.mode if entry.mode is not None else st.st_mode & 0o7777
                info.size = st.st_size
                with entry.source.open("rb") as fh:
                    tar.addfile(info, fh)


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: the gzip'd tar on disk and the two digests an image refers to it by."""

    path: Path
    digest: str  # sha256 of the gzip'd bytes: the manifest's layer digest
    diff_id: str  # sha256 of the uncompressed tar: the config's rootfs.diff_ids
    size: int
    comment: str

    def save(self, meta: Path) -> None:
        fields = {"digest": self.digest, "diff_id": self.diff_id, "size": self.size, "comment": self.comment}
        meta.write_text(json.dumps(fields, indent=1))

    @classmethod
    def load(cls, path: Path, meta: Path) -> LayerBlob:
        d = json.loads(meta.read_text())
        return cls(path, d["digest"], d["diff_id"], d["size"], d["comment"])


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, sink: IO[bytes] | gzip.GzipFile) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def flush(self) -> None:
        self.sink.flush()


def write_layer(layer: Layer, out: Path) -> LayerBlob:
    """Write `layer` as a gzip'd tar at `out` (mtime 0 in the tar and the gzip header: reproducible)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with part.open("wb") as raw:
        gz_hash = _HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=gz_hash, compresslevel=6, mtime=0) as gz:
            tar_hash = _HashingWriter(gz)
            with tarfile.open(fileobj=cast(IO[bytes], tar_hash), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                layer.write_tar(tar)
    part.replace(out)
    return LayerBlob(
        out, f"sha256:{gz_hash.sha.hexdigest()}", f"sha256:{tar_hash.sha.hexdigest()}", gz_hash.size, layer.comment
    )


def oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _check_ref(ref: str) -> None:
    if not re.fullmatch(r"[a-z0-9.\-]+(:[0-9]+)?(/[a-z0-9._\-]+)+:[\w][\w.\-]{0,127}", ref):
        raise ValueError(f"not a full image reference (host/name:tag): {ref!r}")


def write_archive(out: Path, layers: Sequence[LayerBlob], config: ImageConfig, refs: Sequence[str]) -> str:
    """Write an OCI image-layout tar of one image (the layers, bottom first) named by every ref in `refs`.

    Each reference gets an index entry annotated with `io.containerd.image.name` (what `ctr images
    import` names the image) and `org.opencontainers.image.ref.name`, both the full reference.
    Returns the manifest digest.
    """
    if not refs:
        raise ValueError("an archive needs at least one reference")
    for ref in refs:
        _check_ref(ref)
    arch = oci_arch()
    image_config = _canonical(
        {
            "architecture": arch,
            "os": "linux",
            "created": EPOCH,
            "config": config.to_oci(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [{"created": EPOCH, "created_by": layer.comment} for layer in layers],
        }
    )
    config_digest = f"sha256:{hashlib.sha256(image_config).hexdigest()}"
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(image_config)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
        }
    )
    manifest_digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    index = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                    "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
                }
                for ref in refs
            ],
        }
    )

    def add(tar: tarfile.TarFile, name: str, size: int, fh: IO[bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        tar.addfile(info, fh)

    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        layout = _canonical({"imageLayoutVersion": "1.0.0"})
        add(tar, "oci-layout", len(layout), io.BytesIO(layout))
        for layer in {layer.digest: layer for layer in layers}.values():
            with layer.path.open("rb") as fh:
                add(tar, f"blobs/sha256/{layer.digest.removeprefix('sha256:')}", layer.size, fh)
        for digest, data in ((config_digest, image_config), (manifest_digest, manifest)):
            add(tar, f"blobs/sha256/{digest.removeprefix('sha256:')}", len(data), io.BytesIO(data))
        add(tar, "index.json", len(index), io.BytesIO(index))
    part.replace(out)
    return manifest_digest


def unpack(archive: Path, dest: Path) -> None:
    """Extract the (first) image of an OCI archive into `dest`, layers in order (no whiteouts: we write none)."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> IO[bytes]:
            fh = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert fh is not None, digest
            return fh

        index = json.load(cast(IO[bytes], tar.extractfile("index.json")))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r:gz") as lt:
                lt.extractall(dest, numeric_owner=True, filter="fully_trusted")


# --------------------------------------------------------------------------------------------------
# The cache


def cache_dir() -> Path:
    """`${KUBATCH_CACHE:-~/.cache/kubatch}/images`."""
    return Path(os.environ.get("KUBATCH_CACHE") or Path.home() / ".cache" / "kubatch").expanduser() / "images"


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    """An archive on disk and the references it names (import it once: it tags all of them)."""

    refs: tuple[str, ...]
    archive: Path


class _Cache:
    """Files keyed by `<slot>-<first 16 hex of the input hash>`; a new key replaces the slot's old files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def prune(self, directory: Path, slot: str, keep: str, suffixes: Sequence[str]) -> None:
        names = "|".join(re.escape(s) for s in suffixes)
        pattern = re.compile(rf"{re.escape(slot)}-[0-9a-f]{{16}}({names})")
        for path in directory.iterdir():
            if pattern.fullmatch(path.name) and not path.name.startswith(f"{slot}-{keep[:16]}"):
                _assert_unmounted(path)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    @contextlib.contextmanager
    def workdir(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=self.root, prefix="work-") as tmp:
            yield Path(tmp)

    def layer(self, slot: str, key: str, make: Callable[[Path], Layer]) -> LayerBlob:
        """The cached layer for `key`, or `make(workdir)` written now (the workdir lives until it is written)."""
        layers = self.root / "layers"
        layers.mkdir(exist_ok=True)
        path, meta = layers / f"{slot}-{key[:16]}.tar.gz", layers / f"{slot}-{key[:16]}.json"
        if path.is_file() and meta.is_file():
            return LayerBlob.load(path, meta)
        t0 = time.monotonic()
        with self.workdir() as work:
            blob = write_layer(make(work), path)
        blob.save(meta)
        self.prune(layers, slot, key, (".tar.gz", ".json"))
        log(f"layer {slot}: {blob.size / 1e6:.1f} MB in {time.monotonic() - t0:.1f}s")
        return blob

    def archive(self, name: str, layers: Sequence[LayerBlob], config: ImageConfig, refs: Sequence[str]) -> BuiltImage:
        key = _hash([layer.digest for layer in layers], config.to_oci(), list(refs), oci_arch())
        path = self.root / f"{name}-{key[:16]}.tar"
        if not path.is_file():
            write_archive(path, layers, config, refs)
            self.prune(self.root, name, key, (".tar",))
        return BuiltImage(tuple(refs), path)


def _assert_unmounted(path: Path) -> None:
    """Refuse to delete a tree something is mounted in (the builds mount only in private namespaces)."""
    resolved = str(path.resolve())
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == resolved or point.startswith(resolved + "/"):
                raise RuntimeError(f"{point} is mounted: not deleting {path}")


def _run(
    cmd: Sequence[str | Path], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, capture: bool = False
) -> str:
    """Run `cmd` (umask 022: what it creates goes into images); its output to stderr unless captured."""
    stdout = subprocess.PIPE if capture else 2  # stdout is for the CLI's results
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, check=True, text=True, umask=0o022, stdout=stdout)
    return out.stdout or ""


# --------------------------------------------------------------------------------------------------
# pause and busybox

PAUSE_REF = "localhost/pause:1"
# As the upstream image (build/pause/Dockerfile): FROM scratch, the static binary, USER 65535:65535.
PAUSE_CONFIG = ImageConfig(entrypoint=("/pause",), user="65535:65535")
PAUSE_CFLAGS = ("-Os", "-static")

BUSYBOX_REF = "localhost/busybox:latest"
BUSYBOX = Path("/bin/busybox")
# As Docker Hub's busybox: CMD only, so a pod's `args` (what a job's `command` becomes) run as given.
BUSYBOX_CONFIG = ImageConfig(cmd=("/bin/sh",), env={"PATH": DEFAULT_PATH})
BUSYBOX_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
BUSYBOX_GROUP = "root:x:0:\nnobody:x:65534:\n"


def kubernetes_module(repo: Path) -> tuple[Path, str]:
    """The k8s.io/kubernetes module the dev cluster builds from: (its directory, its version)."""
    moddir = repo / "hack" / "cluster" / "k8s"
    query = ["go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "k8s.io/kubernetes"]
    fields = _run(query, cwd=moddir, capture=True).split()
    if len(fields) < 2:  # not downloaded yet: only the version printed
        _run(["go", "mod", "download", "k8s.io/kubernetes"], cwd=moddir)
        fields = _run(query, cwd=moddir, capture=True).split()
    return Path(fields[0]), fields[1]


def build_pause(repo: Path, cache: Path | None = None) -> BuiltImage:
    """`localhost/pause:1`: build/pause/linux/pause.c of the k8s.io/kubernetes module, static and stripped."""
    c = _Cache(cache or cache_dir())
    moddir, version = kubernetes_module(repo)
    source = moddir / "build" / "pause" / "linux" / "pause.c"
    gcc = _run(["gcc", "--version"], capture=True).splitlines()[0]
    key = _hash("pause", 1, _file_hash(source), version, gcc, PAUSE_CFLAGS)

    def make(work: Path) -> Layer:
        binary = work / "pause"
        _run(["gcc", *PAUSE_CFLAGS, f"-DVERSION={version}", "-o", binary, source])
        _run(["strip", binary])
        layer = Layer(f"gcc {' '.join(PAUSE_CFLAGS)} pause.c ({version})")
        layer.add_file(binary, "/pause", mode=0o755)
        return layer

    with c.locked():
        return c.archive("pause", [c.layer("pause", key, make)], PAUSE_CONFIG, [PAUSE_REF])


def _is_static_elf(path: Path) -> bool:
    """A 64-bit little-endian ELF without a PT_INTERP program header."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def build_busybox(cache: Path | None = None) -> BuiltImage:
    """`localhost/busybox:latest`: Debian's static /bin/busybox, a symlink per applet, root and nobody."""
    if not _is_static_elf(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} is not a static binary: install busybox-static (make system-deps)")
    c = _Cache(cache or cache_dir())
    key = _hash("busybox", 1, _file_hash(BUSYBOX), BUSYBOX_PASSWD, BUSYBOX_GROUP)

    def make(work: Path) -> Layer:
        layer = Layer("busybox-static with its applets")
        layer.add_file(BUSYBOX, "/bin/busybox", mode=0o755)
        for applet in _run([BUSYBOX, "--list-full"], capture=True).split():
            if applet != "bin/busybox":
                layer.add_symlink(applet, "/bin/busybox")
        layer.add_bytes("/etc/passwd", BUSYBOX_PASSWD.encode())
        layer.add_bytes("/etc/group", BUSYBOX_GROUP.encode())
        layer.add_dir("/root", mode=0o700)
        layer.add_dir("/tmp", mode=0o1777)
        for d in ("/dev", "/proc", "/sys", "/home", "/var"):
            layer.add_dir(d)
        return layer

    with c.locked():
        return c.archive("busybox", [c.layer("busybox", key, make)], BUSYBOX_CONFIG, [BUSYBOX_REF])


# --------------------------------------------------------------------------------------------------
# The operator image


@dataclass(frozen=True)
class SystemUser:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class OperatorRecipe:
    """The Dockerfile's content as data: tests/unit/devcluster/test_images.py checks the two agree."""

    python: str  # the Dockerfile's `FROM python:<python>-slim`
    suite: str  # the Debian release whose python3 is that version
    packages: tuple[str, ...]  # debootstrap --include
    user: SystemUser  # groupadd/useradd --system
    sources: tuple[str, ...]  # what the Dockerfile COPYs for the build, relative to the repository
    install: str  # `pip install <install>` from the directory the sources were copied to
    distribution: str  # the distribution that installs
    venv: str  # where it is installed; its bin/ first on PATH, so `python` is the venv's
    repository: str  # the image name, tagged <version>-<input hash> and `dev`
    config: ImageConfig


OPERATOR = OperatorRecipe(
    python="3.11",
    suite="bookworm",
    packages=("python3", "python3-venv", "ca-certificates"),
    user=SystemUser("kubatch", 10001, 10001, "/nonexistent", "/usr/sbin/nologin"),
    sources=("pyproject.toml", "README.md", "operator"),
    install=".",
    distribution="kubatch",
    venv="/opt/kubatch",
    repository="localhost/kubatch",
    config=ImageConfig(
        entrypoint=("python", "-m", "kubatch"),
        env={
            "PATH": f"/opt/kubatch/bin:{DEFAULT_PATH}",  # python:3.11-slim's own PATH and LANG
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        },
        user="10001:10001",
        working_dir="/",
        exposed_ports=("8080/tcp", "8081/tcp", "9443/tcp"),
        labels={"org.opencontainers.image.title": "kubatch"},
    ),
)

# Bump when the corresponding step changes in a way its other inputs do not show.
BASE_REVISION, DEPS_REVISION, APP_REVISION = 1, 1, 1
# Children of these directories are left out of the base layer (a runtime needs none of them).
# fmt: off
_EMPTIED = frozenset({
    "dev", "proc", "sys", "run", "tmp", "mnt", "srv", "var/tmp", "var/log", "var/lib/apt/lists", "var/cache/apt",
    "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/linda",
})
_ETC_FILES = {"etc/hosts": b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", "etc/resolv.conf": b""}
_PIP_INSTALL = ["--quiet", "--no-index", "--find-links", "/mnt", "--no-compile", "--no-cache-dir",
                "--disable-pip-version-check", "--no-warn-script-location"]
# fmt: on
_CHROOT_ENV = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def _strip_base(rel: str) -> bool:
    parent, _, name = rel.rpartition("/")
    if name == "__pycache__" or parent in _EMPTIED or rel in ("etc/hostname", "etc/machine-id"):
        return True
    if parent in ("var/cache/debconf", "var/lib/dpkg") and name.endswith("-old"):
        return True
    parts = rel.split("/")  # usr/share/doc/<package>/: only the copyright file stays
    return parts[:3] == ["usr", "share", "doc"] and len(parts) == 5 and name != "copyright"


def _strip_python(rel: str) -> bool:
    return rel.rpartition("/")[2] == "__pycache__"


def debian_mirror(suite: str, files: Sequence[Path] | None = None) -> tuple[str, Path | None]:
    """The archive URI apt uses for `suite` and its Signed-By keyring, from /etc/apt/sources.list{,.d/*}."""
    if files is None:
        files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file() or f.suffix not in (".list", ".sources"):
            continue
        # Comment lines go (a deb822 stanza may hold some); blank lines separate stanzas.
        lines = [ln.split("#", 1)[0].rstrip() for ln in f.read_text().splitlines() if not ln.lstrip().startswith("#")]
        if f.suffix == ".sources":
            for stanza in "\n".join(lines).split("\n\n"):
                fields: dict[str, str] = {}
                for ln in stanza.splitlines():
                    k, sep, v = ln.partition(":")
                    if sep and not ln[:1].isspace():
                        fields[k.strip().lower()] = v.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and suite in fields.get("suites", "").split()
                    and fields.get("enabled", "yes") != "no"
                    and fields.get("uris")
                ):
                    signed = Path(fields.get("signed-by", "/nonexistent"))
                    return fields["uris"].split()[0].rstrip("/"), signed if signed.is_file() else None
        else:
            for ln in lines:
                words = re.sub(r"\[[^\]]*\]", "", ln).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    signed_by = re.search(r"signed-by=(\S+?)[\s\]]", ln)
                    keyring = Path(signed_by.group(1)) if signed_by else None
                    return words[1].rstrip("/"), keyring if keyring and keyring.is_file() else None
    raise RuntimeError(f"no `deb ... {suite}` source in /etc/apt/sources.list or sources.list.d")


def _in_rootfs(rootfs: Path, commands: Sequence[Sequence[str]], binds: Mapping[str, tuple[Path, bool]]) -> None:
    """Run `commands` chrooted in `rootfs`, with host directories bind-mounted (path → (host dir, read-only)).

    The mounts live in a private mount namespace (`unshare --mount`): they vanish with the process,
    whatever happens to it, so the cached trees never keep a mount.
    """
    script = ["set -eu"]
    for target, (host, read_only) in binds.items():
        point = shlex.quote(str(rootfs / target.lstrip("/")))
        script.append(f"mkdir -p {point} && mount --bind {shlex.quote(str(host))} {point}")
        if read_only:
            script.append(f"mount -o remount,bind,ro {point}")
    for cmd in commands:
        script.append(shlex.join(["chroot", str(rootfs), *cmd]))
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)], env=_CHROOT_ENV)


def _base_rootfs(c: _Cache, recipe: OperatorRecipe, keys: _OperatorInputs) -> Path:
    """The debootstrapped Debian tree with the recipe's user (cached; never changed once complete)."""
    rootfs, done = c.root / f"rootfs-{keys.base[:16]}", c.root / f"rootfs-{keys.base[:16]}.done"
    if done.is_file():
        return rootfs
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        raise RuntimeError("debootstrap is not installed: run `make system-deps`")
    if rootfs.exists():
        _assert_unmounted(rootfs)
        shutil.rmtree(rootfs)
    t0 = time.monotonic()
    log(f"debootstrap {recipe.suite} from {keys.mirror} (the first build takes minutes)")
    debs = c.root / "debs"
    debs.mkdir(exist_ok=True)
    unshare = ["unshare", "--mount", "--propagation", "private"]
    keyring = [f"--keyring={keys.keyring}"] if keys.keyring else []
    options = ["--variant=minbase", f"--include={','.join(recipe.packages)}", f"--cache-dir={debs}", *keyring]
    _run([*unshare, debootstrap, *options, recipe.suite, rootfs, keys.mirror])
    u = recipe.user  # the Dockerfile's commands
    groupadd = f"groupadd --system --gid {u.gid} {u.name}"
    useradd = f"useradd --system --uid {u.uid} --gid {u.gid} --no-create-home --home-dir {u.home} --shell {u.shell}"
    _in_rootfs(rootfs, [groupadd.split(), [*useradd.split(), u.name]], {})
    if not (rootfs / f"usr/bin/python{recipe.python}").is_file():
        raise RuntimeError(f"{recipe.suite}'s python3 is not python{recipe.python}")
    (rootfs / recipe.venv.lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)  # the layers above go there
    wrapper = rootfs / "usr/local/bin/python"  # `python` is the venv's even with a PATH that misses its bin/
    wrapper.write_text(f'#!/bin/sh\nexec {recipe.venv}/bin/python "$@"\n')
    wrapper.chmod(0o755)
    done.touch()
    c.prune(c.root, "rootfs", keys.base, ("", ".done"))
    log(f"base rootfs ready in {time.monotonic() - t0:.0f}s")
    return rootfs


def _pyproject(repo: Path) -> dict[str, object]:
    with (repo / "pyproject.toml").open("rb") as fh:
        project: dict[str, object] = tomllib.load(fh)["project"]
    return project


def _source_files(repo: Path, recipe: OperatorRecipe) -> list[tuple[str, Path]]:
    """The files the Dockerfile's COPYs bring in (build artefacts left out), as (relative path, file)."""
    out = []
    for name in recipe.sources:
        top = repo / name
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for p in paths:
            rel = p.relative_to(repo)
            if any(part == "__pycache__" or part.endswith(".egg-info") for part in rel.parts) or p.suffix == ".pyc":
                continue
            out.append((rel.as_posix(), p))
    return out


def _pip(rootfs: Path) -> str:
    """The pip wheel python3-venv ships: run from the wheel, it leaves no pip in the image."""
    wheels = sorted((rootfs / "usr/share/python-wheels").glob("pip-*.whl"))
    if not wheels:
        raise RuntimeError("no pip wheel in the base rootfs (python3-venv missing?)")
    return f"/{wheels[-1].relative_to(rootfs).as_posix()}/pip"


@dataclass(frozen=True)
class _OperatorInputs:
    """The operator image's cache keys; each one covers the layers below it."""

    mirror: str
    keyring: Path | None
    version: str
    dependencies: tuple[str, ...]
    base: str
    deps: str
    app: str

    @property
    def tag(self) -> str:
        return f"{self.version}-{self.app[:12]}"


def _operator_inputs(repo: Path, recipe: OperatorRecipe) -> _OperatorInputs:
    project = _pyproject(repo)
    mirror, keyring = debian_mirror(recipe.suite)
    dependencies = tuple(str(d) for d in cast(list[str], project.get("dependencies", [])))
    base = _hash(
        "base", BASE_REVISION, recipe.suite, recipe.packages, dataclasses.asdict(recipe.user), recipe.venv, mirror
    )
    deps = _hash("deps", DEPS_REVISION, base, dependencies, project.get("requires-python"))
    sources = [(rel, _file_hash(p), os.access(p, os.X_OK)) for rel, p in _source_files(repo, recipe)]
    app = _hash("app", APP_REVISION, deps, sources, recipe.install, recipe.distribution, recipe.config.to_oci())
    return _OperatorInputs(mirror, keyring, str(project["version"]), dependencies, base, deps, app)


def operator_ref(repo: Path, recipe: OperatorRecipe = OPERATOR) -> str:
    """`localhost/kubatch:<version>-<hash of every input>`, what build_operator tags besides `:dev` (no build)."""
    return f"{recipe.repository}:{_operator_inputs(repo, recipe).tag}"


def build_operator(repo: Path, cache: Path | None = None, recipe: OperatorRecipe = OPERATOR) -> BuiltImage:
    """The operator image: the Dockerfile (`recipe`) on Debian, as base, dependency and kubatch layers."""
    c = _Cache(cache or cache_dir())
    keys = _operator_inputs(repo, recipe)
    deps = list(keys.dependencies)
    with c.locked():
        t0 = time.monotonic()
        rootfs = _base_rootfs(c, recipe, keys)

        def base(work: Path) -> Layer:
            layer = Layer(
                f"debootstrap --variant=minbase --include={','.join(recipe.packages)} {recipe.suite}; "
                f"useradd {recipe.user.name}"
            )
            layer.add_tree(rootfs, skip=_strip_base)
            for path, data in _ETC_FILES.items():
                layer.add_bytes(path, data)
            return layer

        base_layer = c.layer("kubatch-base", keys.base, base)
        venv_dir = _dependencies_venv(c, recipe, keys, rootfs)

        def dependencies(work: Path) -> Layer:
            layer = Layer(f"python3 -m venv {recipe.venv} && pip install {' '.join(deps)}")
            layer.add_tree(venv_dir, recipe.venv, skip=_strip_python)
            return layer

        deps_layer = c.layer("kubatch-deps", keys.deps, dependencies)

        def application(work: Path) -> Layer:
            # `COPY` the sources, build the wheel on the host, install it in the chroot into a staging
            # root: what lands there is exactly what `pip install` adds on top of the dependencies.
            copied, wheels, stage = work / "src", work / "wheels", work / "stage"
            src = copied / recipe.install
            for rel, path in _source_files(repo, recipe):
                (copied / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copied / rel)
            builder = _build_env(c, repo)
            _run([builder, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, src])
            (wheel,) = wheels.glob(f"{recipe.distribution}-*.whl")
            stage.mkdir()
            install = [f"{recipe.venv}/bin/python", _pip(rootfs), "install", *_PIP_INSTALL, "--no-deps"]
            staged = ["--ignore-installed", "--root", "/srv", f"/mnt/{wheel.name}"]  # only what the wheel adds
            binds = {recipe.venv: (venv_dir, True), "/mnt": (wheels, True), "/srv": (stage, False)}
            _in_rootfs(rootfs, [install + staged], binds)
            layer = Layer(f"pip install {recipe.install} ({wheel.name})")
            layer.add_tree(stage / recipe.venv.lstrip("/"), recipe.venv, skip=_strip_python)
            return layer

        app_layer = c.layer("kubatch-app", keys.app, application)
        config = dataclasses.replace(
            recipe.config, labels={**recipe.config.labels, "org.opencontainers.image.version": keys.version}
        )
        image = c.archive(
            "kubatch",
            [base_layer, deps_layer, app_layer],
            config,
            [f"{recipe.repository}:{keys.tag}", f"{recipe.repository}:dev"],
        )
        log(f"operator image {image.refs[0]} ready in {time.monotonic() - t0:.1f}s")
        return image


def _build_env(c: _Cache, repo: Path) -> Path:
    """A venv holding pyproject's build requirements (cached by them): building the wheel with it
    skips the isolated environment pip would otherwise make for every build (4-5 s of a rebuild)."""
    with (repo / "pyproject.toml").open("rb") as fh:
        requires = [str(r) for r in tomllib.load(fh)["build-system"]["requires"]]
    key = _hash("buildenv", requires, sys.version)
    env, done = c.root / f"buildenv-{key[:16]}", c.root / f"buildenv-{key[:16]}.done"
    if not done.is_file():
        if env.exists():
            shutil.rmtree(env)
        _run([sys.executable, "-m", "venv", env])
        _run([env / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requires])
        done.touch()
        c.prune(c.root, "buildenv", key, ("", ".done"))
    return env / "bin" / "python"


def _dependencies_venv(c: _Cache, recipe: OperatorRecipe, keys: _OperatorInputs, rootfs: Path) -> Path:
    """The venv with the runtime dependencies (cached by their spec): made by the base's python3 from
    wheels downloaded on the host for it (the host reaches PyPI, the chroot needs no network)."""
    venv_dir, done = c.root / f"venv-{keys.deps[:16]}", c.root / f"venv-{keys.deps[:16]}.done"
    if done.is_file():
        return venv_dir
    t0 = time.monotonic()
    if venv_dir.exists():
        _assert_unmounted(venv_dir)
        shutil.rmtree(venv_dir)
    venv_dir.mkdir(mode=0o755)
    with c.workdir() as wheels:
        # Wheels for the base's python and glibc: pip does not widen a manylinux_2_N platform itself.
        glibc = _run(["chroot", rootfs, "getconf", "GNU_LIBC_VERSION"], capture=True).split()[1]
        glibc_minor, arch = int(glibc.split(".")[1]), platform.machine()
        platforms = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 16, -1)] + [f"manylinux2014_{arch}"]
        target = f"--python-version {recipe.python} --implementation cp --abi cp{recipe.python.replace('.', '')}"
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(wheels)]
        _run(download + target.split() + [f"--platform={p}" for p in platforms] + list(keys.dependencies))
        _in_rootfs(
            rootfs,
            [
                ["/usr/bin/python3", "-m", "venv", "--without-pip", recipe.venv],
                [f"{recipe.venv}/bin/python", _pip(rootfs), "install", *_PIP_INSTALL, *keys.dependencies],
            ],
            {recipe.venv: (venv_dir, False), "/mnt": (wheels, True)},
        )
    done.touch()
    c.prune(c.root, "venv", keys.deps, ("", ".done"))
    log(f"dependencies installed in {time.monotonic() - t0:.0f}s")
    return venv_dir


# --------------------------------------------------------------------------------------------------
# Entry points


def build_images(repo: Path, *, operator: bool = True, cache: Path | None = None) -> list[BuiltImage]:
    """Build (or find cached) pause, busybox and, unless `operator=False`, the operator image."""
    images = [build_pause(repo, cache), build_busybox(cache)]
    if operator:
        images.append(build_operator(repo, cache))
    return images


def node_images(repo: Path, cache: Path | None = None) -> list[Path]:
    """The archives every real node imports: `localhost/pause:1` (its sandbox image) and `localhost/busybox:latest`."""
    return [build_pause(repo, cache).archive, build_busybox(cache).archive]


def operator_image(repo: Path, cache: Path | None = None) -> tuple[str, Path]:
    """The operator image's `localhost/kubatch:<version>-<hash>` reference and its archive (also tagged `:dev`)."""
    image = build_operator(repo, cache)
    return image.refs[0], image.archive


def build_all(repo: Path, *, operator: bool = True, cache: Path | None = None) -> dict[str, Path]:
    """Every reference → its archive (the operator archive appears twice: `:<version>-<hash>` and `:dev`)."""
    return {ref: image.archive for image in build_images(repo, operator=operator, cache=cache) for ref in image.refs}


def main(argv: list[str] | None = None) -> int:
    from kubatch.devcluster.cluster import find_repo

    parser = argparse.ArgumentParser(
        prog="python -m kubatch.devcluster.images",
        description="Build the real nodes' images as OCI archives (cached) and print their paths.",
    )
    parser.add_argument(
        "--operator",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also build the operator image (default: yes)",
    )
    args = parser.parse_args(argv)
    for image in build_images(find_repo(), operator=args.operator):
        log(f"{', '.join(image.refs)}: {image.archive.stat().st_size / 1e6:.1f} MB")
        print(image.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())

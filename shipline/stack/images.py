"""Base images made locally: nothing can be pulled from Docker Hub on these machines.

- `k8s.gcr.io/pause:3.2`: the kubelet's pod sandbox, from the source tree's pause.c.
- `shipline/busybox:1.35`: Debian's static busybox with its applets, a stand-in for `busybox`.
- `shipline/golang:1.19`: Debian's Go 1.19 tree (dereferenced: parts are symlinks into
  /usr/share), the C library its dynamically linked `go` needs, and busybox for `RUN`;
  a stand-in for `golang:1.19` in multi-stage Dockerfiles.
Each is `docker import`ed from a tarball written here (docker SDK).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from shipline.stack.layout import StackLayout

PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"
BUSYBOX_IMAGE = "shipline/busybox:1.35"
GOLANG_IMAGE = "shipline/golang:1.19"
_GOROOT = Path("/usr/lib/go-1.19")
_BUSYBOX = Path("/bin/busybox")


def _image_exists(client, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_busybox(tar: tarfile.TarFile) -> None:
    """/bin/busybox plus one symlink per applet, /tmp, and a root user."""
    for folder in ("bin", "etc", "usr", "usr/bin", "sbin", "usr/sbin"):
        _add_dir(tar, folder)
    _add_dir(tar, "tmp", 0o1777)
    tar.add(_BUSYBOX, arcname="bin/busybox")
    applets = subprocess.run(
        [str(_BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = tarfile.TarInfo(applet)
        link.type = tarfile.SYMTYPE
        link.linkname = "/bin/busybox"
        tar.addfile(link)
    passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    info = tarfile.TarInfo("etc/passwd")
    info.size = len(passwd)
    tar.addfile(info, io.BytesIO(passwd))


def _shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """The shared objects (and loader) that `ldd` lists for these executables."""
    libs: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for word in line.split():
                if word.startswith("/"):
                    libs.add(Path(word))
    return libs


def _import(client, tar_path: Path, ref: str, changes: list[str]) -> None:
    repository, _, tag = ref.rpartition(":")
    client.api.import_image(src=str(tar_path), repository=repository, tag=tag, changes=changes)


def ensure_images(layout: StackLayout, client, pause_binary: Path, console: Console) -> None:
    """Create the pause, busybox and Go builder images where missing."""
    work = layout.cache / "images"
    work.mkdir(parents=True, exist_ok=True)
    if not _image_exists(client, PAUSE_IMAGE):
        tar_path = work / "pause.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(pause_binary, arcname="pause")
        _import(client, tar_path, PAUSE_IMAGE, ['ENTRYPOINT ["/pause"]'])
        tar_path.unlink()
        console.print(f"[green]✓[/green] image {PAUSE_IMAGE}")
    if not _image_exists(client, BUSYBOX_IMAGE):
        tar_path = work / "busybox.tar"
        with tarfile.open(tar_path, "w") as tar:
            _add_busybox(tar)
        _import(client, tar_path, BUSYBOX_IMAGE, ['CMD ["sh"]'])
        tar_path.unlink()
        console.print(f"[green]✓[/green] image {BUSYBOX_IMAGE}")
    if not _image_exists(client, GOLANG_IMAGE):
        with console.status(f"creating {GOLANG_IMAGE} from Debian's Go 1.19 (~480 MB)"):
            tar_path = work / "golang.tar"
            tools = [_GOROOT / "bin" / "go", *sorted((_GOROOT / "pkg/tool").glob("*/*"))]
            with tarfile.open(tar_path, "w") as tar:
                _add_busybox(tar)
                for folder in ("lib", "lib64", "usr/lib", "lib/x86_64-linux-gnu"):
                    _add_dir(tar, folder)
                for lib in sorted(_shared_libraries(tools)):
                    tar.add(lib.resolve(), arcname=str(lib).lstrip("/"))
                # dereference: src, api, misc and test are symlinks into /usr/share.
                tar.dereference = True
                tar.add(_GOROOT, arcname=str(_GOROOT).lstrip("/"))
            _import(
                client,
                tar_path,
                GOLANG_IMAGE,
                [
                    f"ENV PATH={_GOROOT}/bin:/usr/local/bin:/usr/bin:/bin",
                    "ENV GOCACHE=/tmp/gocache",
                    "ENV HOME=/tmp",
                    "ENV CGO_ENABLED=0",
                    "ENV GOPROXY=off",
                    "WORKDIR /src",
                    'CMD ["sh"]',
                ],
            )
            tar_path.unlink()
        console.print(f"[green]✓[/green] image {GOLANG_IMAGE}")

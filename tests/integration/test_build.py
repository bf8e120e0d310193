"""The build step on the real docker engine and the real registry (127.0.0.1:5000)."""

from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tasks.build import BuildResult, build_and_push, cache_tag
from tasks.docker_engine import connect
from tasks.errors import BuildError, InputError, TransientError
from tasks.image_ref import parse_image
from tasks.registry import MANIFEST_TYPES, Registry, RegistryAuthError
from tests.unit.test_image_ref import INVALID, VALID

pytestmark = pytest.mark.integration

BASE = "shipline/busybox:1.35"


class Lines(logging.Handler):
    """Collects the formatted log lines of one logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log() -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger(f"test-build-{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.INFO)
    handler = Lines()
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture
def repo(stack) -> str:
    """A repository name nobody else uses."""
    return f"{stack.registry}/shipline-test/build-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pr12er-shaped checkout; the working directory is its root."""
    server = tmp_path / "server"
    (server / "deploy").mkdir(parents=True)
    # Unique content, so the engine's layer cache cannot skip the RUN step's output.
    (server / "main.txt").write_text(f"hello from the context {uuid.uuid4()}\n")
    (server / "secret.log").write_text("must not reach the image\n")
    (server / ".dockerignore").write_text("*.log\n")
    (server / "deploy/Dockerfile").write_text(
        f"FROM {BASE}\nCOPY main.txt /app/main.txt\n"
        "RUN echo built-line-one && echo built-line-two\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def registry_digest(image: str) -> str | None:
    ref = parse_image(image)
    response = httpx.head(
        f"http://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
        timeout=10,
    )
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


def local_image_ids(docker_client) -> set[str]:
    return {image.id for image in docker_client.images.list(all=True)}


def test_build_push_returns_the_registry_digest_and_streams_output(
    project, repo, log, docker_client
):
    logger, lines = log
    fractions: list[float] = []
    result = build_and_push(
        f"{repo}:v1",
        "server",
        "./server/deploy/Dockerfile",
        log=logger,
        progress=lambda fraction, text: fractions.append(fraction),
    )
    assert isinstance(result, BuildResult)
    assert result.built is True
    assert result.image == f"{repo}:v1"
    assert result.digest.startswith("sha256:")
    assert registry_digest(f"{repo}:v1") == result.digest
    assert registry_digest(f"{repo}:{cache_tag(result.key)}") == result.digest
    # Line by line: every record is one line, ANSI-free, the steps in order.
    assert all("\n" not in line and "\x1b" not in line for line in lines.lines)
    steps = [line for line in lines.lines if line.startswith("Step ")]
    # The classic builder adds the labels as a last step.
    assert steps == [
        f"Step 1/4 : FROM {BASE}",
        "Step 2/4 : COPY main.txt /app/main.txt",
        "Step 3/4 : RUN echo built-line-one && echo built-line-two",
        f"Step 4/4 : LABEL dev.shipline.build-key={result.key}",
    ]
    assert "built-line-one" in lines.lines and "built-line-two" in lines.lines
    assert fractions and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    # .dockerignore held: the ignored file is not in the image.
    listing = docker_client.containers.run(
        f"{repo}:v1", ["ls", "/app"], remove=True, network_mode="none"
    )
    assert listing.decode().split() == ["main.txt"]


def test_same_inputs_build_nothing_and_push_nothing(project, repo, log, docker_client):
    logger, lines = log
    first = build_and_push(f"{repo}:v1", "server", "server/deploy/Dockerfile", log=logger)
    ids_before = local_image_ids(docker_client)
    lines.lines.clear()
    again = build_and_push(f"{repo}:v1", "server", "server/deploy/Dockerfile", log=logger)
    assert again == BuildResult(first.image, first.digest, first.key, built=False)
    assert local_image_ids(docker_client) == ids_before
    assert any(line.startswith("reused ") for line in lines.lines)
    assert not any(line.startswith(("Step ", "building ")) for line in lines.lines)


def test_same_inputs_with_a_new_tag_only_copy_the_manifest(project, repo, log, docker_client):
    logger, lines = log
    first = build_and_push(f"{repo}:v1", "server", "server/deploy/Dockerfile", log=logger)
    ids_before = local_image_ids(docker_client)
    lines.lines.clear()
    second = build_and_push(f"{repo}:v2", "server", "server/deploy/Dockerfile", log=logger)
    assert second.built is False
    assert second.digest == first.digest == registry_digest(f"{repo}:v2")
    assert local_image_ids(docker_client) == ids_before
    # The engine never saw v2: the tag exists only in the registry.
    assert f"{repo}:v2" not in {tag for image in docker_client.images.list() for tag in image.tags}
    assert any("tagged the image of build key" in line for line in lines.lines)


def test_a_changed_file_builds_again(project, repo, log):
    logger, _ = log
    first = build_and_push(f"{repo}:v1", "server", "server/deploy/Dockerfile", log=logger)
    (project / "server/main.txt").write_text("changed\n")
    second = build_and_push(f"{repo}:v2", "server", "server/deploy/Dockerfile", log=logger)
    assert second.built is True and second.key != first.key
    assert second.digest != first.digest
    assert registry_digest(f"{repo}:v1") == first.digest


def test_a_failing_run_step_names_the_step_and_the_output_tail(tmp_path, repo, log):
    logger, _ = log
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN echo one\nRUN echo about-to-fail && false\nRUN echo never\n"
    )
    with pytest.raises(BuildError) as raised:
        build_and_push(f"{repo}:v1", str(tmp_path), str(tmp_path / "Dockerfile"), log=logger)
    message = str(raised.value)
    assert "Step 3/5 : RUN echo about-to-fail && false" in message
    assert "about-to-fail" in message.split("last ", 1)[1]
    assert "returned a non-zero code: 1" in message
    assert not raised.value.retryable
    assert registry_digest(f"{repo}:v1") is None


def test_multi_stage_dockerfile_outside_the_context(
    tmp_path, repo, log, docker_client, monkeypatch
):
    logger, _ = log
    monkeypatch.chdir(tmp_path)
    (tmp_path / "server").mkdir()
    (tmp_path / "server/input.txt").write_text("from-the-context\n")
    (tmp_path / "server/Dockerfile").write_text("FROM scratch\n")  # must NOT be used
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/Dockerfile").write_text(
        f"FROM {BASE} AS builder\n"
        "COPY input.txt /work/input.txt\n"
        "RUN tr a-z A-Z < /work/input.txt > /work/out.txt\n"
        f"FROM {BASE} AS runtime\n"
        "COPY --from=builder /work/out.txt /out.txt\n"
        'CMD ["cat", "/out.txt"]\n'
        f"FROM {BASE} AS debug\n"
    )
    result = build_and_push(
        f"{repo}:multi", "server", "./deploy/Dockerfile", target="runtime", log=logger
    )
    assert result.built and registry_digest(f"{repo}:multi") == result.digest
    output = docker_client.containers.run(f"{repo}:multi", remove=True, network_mode="none")
    assert output.decode() == "FROM-THE-CONTEXT\n"
    # Same inputs through the same outside path: reused, not rebuilt.
    assert (
        build_and_push(
            f"{repo}:multi", "server", "./deploy/Dockerfile", target="runtime", log=logger
        ).built
        is False
    )


def test_build_args_reach_the_build_and_the_key(tmp_path, repo, log, docker_client):
    logger, _ = log
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nARG GREETING\nRUN echo $GREETING > /g\n")
    context, dockerfile = str(tmp_path), str(tmp_path / "Dockerfile")
    one = build_and_push(
        f"{repo}:a", context, dockerfile, build_args=[("GREETING", "hi")], log=logger
    )
    two = build_and_push(
        f"{repo}:b", context, dockerfile, build_args=[("GREETING", "ho")], log=logger
    )
    assert one.built and two.built and one.digest != two.digest
    got = docker_client.containers.run(f"{repo}:b", ["cat", "/g"], remove=True, network_mode="none")
    assert got.decode() == "ho\n"


def test_missing_dockerfile_or_context_names_the_path(tmp_path, repo):
    with pytest.raises(InputError, match=r"Dockerfile .*nope/Dockerfile does not exist"):
        build_and_push(f"{repo}:v1", str(tmp_path), str(tmp_path / "nope/Dockerfile"))
    with pytest.raises(InputError, match=r"build context .*missing-dir is not a directory"):
        build_and_push(f"{repo}:v1", str(tmp_path / "missing-dir"), str(tmp_path / "Dockerfile"))


def test_unreachable_engine_is_transient(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(TransientError, match="cannot reach the docker engine"):
        connect()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_registry_is_transient(stack):
    with Registry(f"127.0.0.1:{free_port()}") as registry, pytest.raises(TransientError):
        registry.manifest_digest(parse_image(f"127.0.0.1:{free_port()}/app:v1"))


def test_registry_5xx_is_transient(stack):
    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        with Registry(host) as registry, pytest.raises(TransientError, match="503") as raised:
            registry.manifest_digest(parse_image(f"{host}/app:v1"))
        assert raised.value.retryable
    finally:
        server.shutdown()


@pytest.fixture
def auth_registry(tmp_path):
    """A second real registry (docker-registry) that wants basic auth: user `ci`, `s3cret`."""
    import crypt  # bcrypt is the only hash docker-registry's htpasswd accepts

    port = free_port()
    (tmp_path / "htpasswd").write_text(
        f"ci:{crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"
    )
    (tmp_path / "config.yml").write_text(
        json.dumps(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
                "auth": {"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}},
            }
        )
    )
    process = subprocess.Popen(
        [
            shutil.which("docker-registry") or "/usr/bin/docker-registry",
            "serve",
            str(tmp_path / "config.yml"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def write_docker_config(folder: Path, host: str, password: str) -> None:
    import base64

    auth = base64.b64encode(f"ci:{password}".encode()).decode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_registry_credentials_come_from_the_docker_config(auth_registry, tmp_path, monkeypatch):
    ref = parse_image(f"{auth_registry}/app:v1")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    with Registry(auth_registry) as registry, pytest.raises(RegistryAuthError) as raised:
        registry.manifest_digest(ref)
    assert "without credentials" in str(raised.value) and "docker login" in str(raised.value)

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "wrong"))
    write_docker_config(tmp_path / "wrong", auth_registry, "not-the-password")
    with Registry(auth_registry) as registry, pytest.raises(RegistryAuthError) as raised:
        registry.manifest_digest(ref)
    assert "refused the credentials" in str(raised.value)
    assert "not-the-password" not in str(raised.value) and "Basic" not in str(raised.value)
    assert not raised.value.retryable

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "right"))
    write_docker_config(tmp_path / "right", auth_registry, "s3cret")
    with Registry(auth_registry) as registry:
        assert registry.manifest_digest(ref) is None  # authenticated; the tag is absent


# The local engine is docker 20.10, whose vendored reference parser predates two rules the
# current one has: an uppercase first component is a registry host, IPv6 hosts, and the
# 255-character limit applies to the path without the registry host.
OLD_ENGINE_REFUSES = {"Foo/bar", "[::1]:5000/app:v1", "localhost:5000/" + "a" * 255}


def _references() -> list[str]:
    # `docker tag` refuses digests by design, so only references without one are compared.
    texts = [text for text, *_ in VALID] + [text for text, _ in INVALID]
    return [text for text in texts if text and "@" not in text]


def _ours(text: str) -> bool:
    try:
        parse_image(text)
    except InputError:
        return False
    return True


def _docker_tag_accepts(reference: str) -> bool:
    # Never untag afterwards what existed before (`shipline/busybox:1.35` is in the table).
    existed = subprocess.run(["docker", "image", "inspect", reference], capture_output=True)
    done = subprocess.run(
        ["docker", "tag", BASE, reference], capture_output=True, text=True, timeout=30
    )
    if done.returncode == 0 and existed.returncode != 0:
        subprocess.run(["docker", "rmi", reference], capture_output=True, timeout=30)
    return done.returncode == 0


def test_image_ref_verdicts_match_the_docker_cli_parser(tmp_path):
    # The CLI (v28) parses the reference before it contacts the engine: with no engine,
    # a bad reference fails with "Error parsing reference", a good one cannot connect.
    environment = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    disagreements = []
    for text in _references():
        done = subprocess.run(
            ["docker", "tag", BASE, text], capture_output=True, text=True, env=environment
        )
        assert done.returncode != 0
        cli_accepts = "Error parsing reference" not in done.stderr
        if cli_accepts != _ours(text):
            disagreements.append((text, done.stderr.strip()))
    assert disagreements == []


def test_image_ref_verdicts_match_docker_tag_on_the_engine(stack):
    disagreements = [
        text
        for text in _references()
        if _docker_tag_accepts(text) != (_ours(text) and text not in OLD_ENGINE_REFUSES)
    ]
    assert disagreements == []
    assert all(_ours(text) for text in OLD_ENGINE_REFUSES)


def test_pinned_digest_is_refused_as_a_build_target(tmp_path):
    with pytest.raises(InputError, match="names a digest"):
        build_and_push(
            "127.0.0.1:5000/app@sha256:" + "a" * 64, str(tmp_path), str(tmp_path / "Dockerfile")
        )

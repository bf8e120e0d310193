"""Loading the kubeconfig: kubectl's merge rules, and clear errors for any broken file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.credentials import kubeconfig_secrets
from tasks.errors import InputError
from tasks.kube import Cluster, kubeconfig_path

TOKEN = "tok-0123456789abcdef"


def kubeconfig(
    *,
    context: str = "main",
    namespace: str = "ns-main",
    cluster: str = "main",
    server: str = "https://127.0.0.1:6443",
    current: str | None = "main",
    token: str = TOKEN,
) -> str:
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {cluster}",
        "  cluster:",
        f"    server: {server}",
        "users:",
        f"- name: user-{context}",
        "  user:",
        f"    token: {token}",
        "contexts:",
        f"- name: {context}",
        "  context:",
        f"    cluster: {cluster}",
        f"    user: user-{context}",
        f"    namespace: {namespace}",
    ]
    if current is not None:
        lines.append(f"current-context: {current}")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def connect_error(setting: str | None, **kwargs: str) -> str:
    with pytest.raises(InputError) as raised:
        Cluster.connect(setting, **kwargs)
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert "--kubeconfig" not in message  # `shipline run` has no such option
    return message


def connected(setting: str | None, **kwargs: str) -> tuple[str, str]:
    cluster = Cluster.connect(setting, **kwargs)
    try:
        return cluster.api_client.configuration.host, cluster.namespace
    finally:
        cluster.close()


# --- files that cannot be used ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("just a string\n", "its top level is a string, not a mapping"),
        ("- a\n- b\n", "its top level is a list"),
        ('users: ["x"]\n', "users[0] is a string, not a mapping with name and user"),
        ("users: x\n", "users is a string, not a list"),
        ("clusters:\n- cluster: {server: https://127.0.0.1}\n", "clusters[0] has no name"),
        ("contexts:\n- name: c\n  context: [a]\n", "contexts[0] (c): context is a list"),
        ("current-context: [a]\n", "current-context is a list, not a context name"),
    ],
)
def test_a_file_of_the_wrong_shape_is_named_with_its_problem(
    tmp_path: Path, text: str, problem: str
):
    path = write(tmp_path / "config", text)
    message = connect_error(path)
    assert f"kubeconfig {path} is not a kubeconfig: {problem}" in message
    assert "KUBECONFIG" in message


def test_invalid_yaml_names_line_and_column_but_not_the_text(tmp_path: Path):
    path = write(tmp_path / "config", f"users:\n- name: u\n  user: {{token: {TOKEN}: x}}\n")
    message = connect_error(path)
    assert f"kubeconfig {path} is not valid YAML at line 3" in message
    assert TOKEN not in message


def test_a_directory_is_called_a_directory(tmp_path: Path):
    message = connect_error(str(tmp_path))
    assert f"kubeconfig {tmp_path} is a directory, not a file" in message
    assert "does not exist" not in message


def test_a_missing_file_says_how_to_set_kubeconfig(tmp_path: Path):
    message = connect_error(str(tmp_path / "nope"))
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in message
    assert "set KUBECONFIG" in message and 'eval "$(shipline stack env)"' in message


def test_all_files_of_a_list_missing(tmp_path: Path):
    setting = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    message = connect_error(setting)
    assert f"none of the kubeconfig files in {setting} exists" in message


def test_no_kubeconfig_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    message = connect_error(None)
    assert "KUBECONFIG is not set" in message
    assert str(tmp_path / "home" / ".kube" / "config") in message


def test_an_empty_file(tmp_path: Path):
    path = write(tmp_path / "config", "")
    assert f"kubeconfig {path} is empty" in connect_error(path)


def test_no_current_context_and_an_undefined_context(tmp_path: Path):
    path = write(tmp_path / "config", kubeconfig(current=None))
    assert "sets no current-context" in connect_error(path)
    assert 'context "other" is not defined' in connect_error(path, context="other")
    path = write(tmp_path / "config2", kubeconfig(current="gone"))
    assert 'context "gone" is not defined' in connect_error(path)


def test_a_directory_in_a_list_is_an_error_as_in_kubectl(tmp_path: Path):
    good = write(tmp_path / "config", kubeconfig())
    message = connect_error(os.pathsep.join([str(tmp_path), good]))
    assert "is a directory, not a file" in message


def test_a_broken_file_in_a_list_is_named(tmp_path: Path):
    good = write(tmp_path / "config", kubeconfig())
    broken = write(tmp_path / "broken", "just a string\n")
    message = connect_error(os.pathsep.join([good, broken]))
    assert f"kubeconfig {broken} is not a kubeconfig" in message


def test_errors_come_from_kubeconfig_env_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("KUBECONFIG", write(tmp_path / "config", 'users: ["x"]\n'))
    assert "users[0] is a string" in connect_error(None)


# --- files that work -------------------------------------------------------------------


def test_one_file(tmp_path: Path):
    path = write(tmp_path / "config", kubeconfig())
    assert connected(path) == ("https://127.0.0.1:6443", "ns-main")


def test_namespace_defaults_to_default(tmp_path: Path):
    path = write(tmp_path / "config", kubeconfig().replace("    namespace: ns-main\n", ""))
    assert connected(path)[1] == "default"


def test_missing_files_of_a_list_are_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    good = write(tmp_path / "config", kubeconfig())
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "nope"), "", good]))
    assert connected(None) == ("https://127.0.0.1:6443", "ns-main")


def test_empty_files_of_a_list_are_skipped(tmp_path: Path):
    empty = write(tmp_path / "empty", "")
    good = write(tmp_path / "config", kubeconfig())
    assert connected(os.pathsep.join([empty, good]))[1] == "ns-main"


def test_first_current_context_wins_as_in_kubectl(tmp_path: Path):
    # The kubernetes client's own merger would let the last file's current-context win.
    first = write(
        tmp_path / "first",
        kubeconfig(
            context="one", namespace="ns-one", server="https://127.0.0.1:1111", current="one"
        ),
    )
    second = write(
        tmp_path / "second",
        kubeconfig(context="two", namespace="ns-two", cluster="c2", current="two"),
    )
    assert connected(os.pathsep.join([first, second])) == ("https://127.0.0.1:1111", "ns-one")
    assert connected(os.pathsep.join([second, first])) == ("https://127.0.0.1:6443", "ns-two")


def test_a_file_without_current_context_lets_a_later_one_choose(tmp_path: Path):
    first = write(tmp_path / "first", kubeconfig(context="one", namespace="ns-one", current=None))
    second = write(tmp_path / "second", kubeconfig(context="two", cluster="c2", current="two"))
    assert connected(os.pathsep.join([first, second]))[1] == "ns-main"


def test_a_context_in_one_file_uses_a_cluster_from_another(tmp_path: Path):
    contexts = write(
        tmp_path / "contexts",
        "contexts:\n- name: other\n  context: {cluster: main, user: user-main, namespace: ns-x}\n"
        "current-context: other\n",
    )
    main = write(tmp_path / "main", kubeconfig())
    assert connected(os.pathsep.join([contexts, main])) == ("https://127.0.0.1:6443", "ns-x")
    # Named explicitly, a context wins over every current-context.
    assert connected(os.pathsep.join([contexts, main]), context="main")[1] == "ns-main"


def test_first_definition_of_a_name_wins(tmp_path: Path):
    first = write(tmp_path / "first", kubeconfig(namespace="ns-first"))
    second = write(
        tmp_path / "second", kubeconfig(namespace="ns-second", server="https://127.0.0.1:2222")
    )
    assert connected(os.pathsep.join([first, second])) == ("https://127.0.0.1:6443", "ns-first")


def test_kubeconfig_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert kubeconfig_path() == str(tmp_path / "home" / ".kube" / "config")
    monkeypatch.setenv("KUBECONFIG", "/a:/b")
    assert kubeconfig_path() == "/a:/b"
    assert kubeconfig_path("/explicit") == "/explicit"


# --- the secrets a kubeconfig holds, whatever its shape ---------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "just a string\n",
        'users: ["x"]\n',
        "users: x\n",
        "users:\n- null\n- name: u\n  user: null\n",
        "- 1\n- 2\n",
        "a: [\n",  # not YAML
        "",
        "users:\n- name: u\n  user: {token: true, password: ''}\n",
    ],
)
def test_kubeconfig_secrets_survive_any_shape(tmp_path: Path, text: str):
    assert kubeconfig_secrets(write(tmp_path / "config", text)) == []


def test_kubeconfig_secrets_collect_what_they_can(tmp_path: Path):
    text = (
        'users:\n- "x"\n- name: u\n  user:\n    token: t1\n    password: 1234\n'
        "- name: v\n  user:\n    auth-provider:\n      config: {id-token: t2, refresh-token: t3}\n"
        "- name: w\n  user: {client-key-data: k1, username: admin}\n"
    )
    found = kubeconfig_secrets(write(tmp_path / "config", text))
    assert sorted(found) == ["1234", "k1", "t1", "t2", "t3"]


def test_kubeconfig_secrets_of_a_looping_alias(tmp_path: Path):
    text = "users: &u\n- name: u\n  user: {token: t1}\n- *u\n"
    assert kubeconfig_secrets(write(tmp_path / "config", text)) == ["t1"]


def test_kubeconfig_secrets_of_every_file_in_a_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    one = write(tmp_path / "one", kubeconfig(token="t-one"))
    two = write(tmp_path / "two", kubeconfig(token="t-two"))
    broken = write(tmp_path / "broken", "just a string\n")
    setting = os.pathsep.join([one, str(tmp_path / "nope"), str(tmp_path), broken, two])
    assert sorted(kubeconfig_secrets(setting)) == ["t-one", "t-two"]
    # None: the kubeconfig Cluster.connect would use, $KUBECONFIG here.
    monkeypatch.setenv("KUBECONFIG", setting)
    assert sorted(kubeconfig_secrets(None)) == ["t-one", "t-two"]


def test_kubeconfig_secrets_of_the_default_file(tmp_path: Path):
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    write(home / "config", kubeconfig(token="t-home"))
    assert kubeconfig_secrets(None) == ["t-home"]
    assert kubeconfig_secrets("") == ["t-home"]


# --- the run's namespace for shell lines: what kubectl itself makes of the overlay -------


def kubectl_namespace(environ: dict[str, str]) -> tuple[str, str]:
    """(current context, its namespace) as kubectl reads them; it contacts no cluster."""
    import subprocess

    shown = subprocess.run(
        [
            "kubectl",
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.current-context} {.contexts[0].context.namespace}"
            " {.contexts[0].context.cluster} {.contexts[0].context.user}",
        ],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return shown[0], " ".join(shown[1:])


def test_overlay_gives_the_current_context_the_run_namespace(tmp_path: Path):
    from flows.shell_namespace import shell_kube_env

    first = tmp_path / "first"
    first.write_text(kubeconfig(context="main", namespace="ns-main"))
    second = tmp_path / "second"
    second.write_text(kubeconfig(context="other", namespace="ns-other", current=None))
    environ = {"PATH": os.environ["PATH"], "KUBECONFIG": f"{first}:{second}"}
    assert kubectl_namespace(environ) == ("main", "ns-main main user-main")
    with shell_kube_env("ns-run", environ) as overlay:
        # One file, as okteto gives its commands (`--kubeconfig "$KUBECONFIG"` works).
        single = Path(overlay["KUBECONFIG"])
        assert single.is_file()
        assert single.stat().st_mode & 0o077 == 0  # it holds the credentials
        assert single.parent.stat().st_mode & 0o077 == 0
        context, rest = kubectl_namespace({**environ, **overlay})
        other = kubectl_namespace({**environ, **overlay, "KUBECONFIG": str(single)})
    assert (context, rest) == other == ("main", "ns-run main user-main")
    assert not single.exists()


def test_no_overlay_without_a_namespace_or_a_current_context(tmp_path: Path):
    from flows.shell_namespace import shell_kube_env

    config = tmp_path / "config"
    config.write_text(kubeconfig(current=None))
    with shell_kube_env(None, {"KUBECONFIG": str(config)}) as overlay:
        assert overlay == {}
    with shell_kube_env("ns-run", {"KUBECONFIG": str(config)}) as overlay:
        assert overlay == {}
    with shell_kube_env("ns-run", {"KUBECONFIG": str(tmp_path / "missing")}) as overlay:
        assert overlay == {}


def test_a_relative_kubeconfig_reaches_shell_lines_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # Shell lines run in the pipeline's folder, not where shipline was started.
    from flows.shell_namespace import shell_kube_env

    (tmp_path / "kc").mkdir()
    (tmp_path / "kc" / "config").write_text(kubeconfig())
    monkeypatch.chdir(tmp_path)
    with shell_kube_env(None, {"KUBECONFIG": "kc/config"}) as env:
        assert env == {"KUBECONFIG": str(tmp_path / "kc" / "config")}
    (tmp_path / "kc" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    config = (tmp_path / "kc" / "config").read_text()
    config = config.replace("    server:", "    certificate-authority: ca.crt\n    server:")
    (tmp_path / "kc" / "config").write_text(config)
    environ = {"PATH": os.environ["PATH"], "KUBECONFIG": "kc/config"}
    with shell_kube_env("ns-run", environ) as env:
        flat = Path(env["KUBECONFIG"]).read_text()
        assert kubectl_namespace({**environ, **env})[1] == "ns-run main user-main"
    # kubectl resolves a relative file of a kubeconfig against that file's folder; the
    # flattened copy carries its content instead.
    assert "certificate-authority-data:" in flat


def test_folders_of_killed_runs_are_removed_by_the_next(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # A run killed with SIGKILL leaves its folder (a kubeconfig with credentials) behind.
    import subprocess
    import tempfile

    from flows.shell_namespace import shell_kube_env

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / "tmp" / f"shipline-kube-{dead.pid}-abc"
    running = tmp_path / "tmp" / f"shipline-kube-{os.getpid()}-def"
    orphan.mkdir()
    running.mkdir()
    (tmp_path / "config").write_text(kubeconfig())
    environ = {"PATH": os.environ["PATH"], "KUBECONFIG": str(tmp_path / "config")}
    with shell_kube_env("ns-run", environ) as env:
        assert Path(env["KUBECONFIG"]).parent.name.startswith(f"shipline-kube-{os.getpid()}-")
    assert not orphan.exists()
    assert running.exists()

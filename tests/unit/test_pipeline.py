"""flows.pipeline on whole files: the pr12er pipeline, Okteto manifests, and file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import PipelineOptions, parse_pipeline, read_pipeline
from flows.steps import ApplyStep, BuildStep, KubeScope, RestartStep, SetImageStep, WaitStep
from tasks.errors import InputError, PipelineError

PR12ER = Path(__file__).parent / "testdata" / "pipelines" / "pr12er"
OPTIONS = PipelineOptions(commit="c0ffee", branch="main", registry="127.0.0.1:5000")


def test_pr12er_pipeline_becomes_typed_steps() -> None:
    pipeline = read_pipeline(PR12ER / "okteto-pipeline.yaml", OPTIONS)
    scope = KubeScope("default")
    image = "127.0.0.1:5000/pr12er-server:c0ffee"
    k8s = tuple(
        str(PR12ER / "k8s" / n) for n in ("envoy.yaml", "grafana-agent.yaml", "server.yaml")
    )
    assert pipeline.workdir == str(PR12ER)
    assert pipeline.namespace == "default"
    assert [(s.kind, s.entry, s.line) for s in pipeline.steps] == [
        ("build", 1, 3),
        ("apply", 2, 4),
        ("set-image", 3, 5),
        ("restart", 4, 6),
        ("wait", 5, 7),
        ("wait", 5, 7),
    ]
    build, apply, set_image, restart, wait_server, wait_agent = pipeline.steps
    assert isinstance(build, BuildStep)
    assert (build.image, build.context, build.dockerfile, build.push) == (
        image,
        str(PR12ER / "server"),
        str(PR12ER / "server" / "deploy" / "Dockerfile"),
        True,
    )
    assert apply == ApplyStep(2, 4, apply.command, k8s, scope, substitute=True, only=None)
    assert isinstance(set_image, SetImageStep)
    assert set_image.images == (("server", image),)
    assert set_image.names == ("server",)
    assert isinstance(restart, RestartStep)
    assert (restart.workload_kind, restart.names) == ("Deployment", ("grafana-agent",))
    assert isinstance(wait_server, WaitStep) and isinstance(wait_agent, WaitStep)
    assert (wait_server.name, wait_agent.name) == ("server", "grafana-agent")
    assert wait_server.command == "kubectl rollout status deployment server"
    assert pipeline.variables["OKTETO_GIT_COMMIT"] == "c0ffee"
    assert pipeline.variables["OKTETO_GIT_BRANCH"] == "main"
    assert pipeline.variables["OKTETO_NAMESPACE"] == "default"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"nope\.yaml does not exist: check the path"):
        read_pipeline(tmp_path / "nope.yaml", OPTIONS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deploy:\n  - a\n  - 'b\n", r"p\.yaml line \d+, column \d+: not valid YAML"),
        ("deploy: [a\n", r"not valid YAML"),
        ("- a\n- b\n", r"expected a mapping with a `deploy:` list at the top, found list"),
        ("build: {}\n", r"no `deploy:` list"),
        ("x: 1\n\ndeploy: echo hi\n", r"p\.yaml line 3: `deploy` must be a list"),
        ("deploy:\n  - echo\n  - 3\n", r"p\.yaml line 3: a deploy entry must be a shell line"),
        ("deploy:\n  - name: x\n", r"line 2: a deploy entry must be a shell line or a map"),
        ("deploy:\n  - echo 'open\n", r"p\.yaml line 2: unclosed single quote"),
        ('deploy:\n  - echo "$(date"\n', r"p\.yaml line 2: unclosed"),
        ('deploy:\n  - echo "open\n', r"line 2: unclosed double quote \(\"\)"),
        ("deploy:\n  commands: [a]\n  divert: {}\n", r"deploy\.divert is not supported"),
    ],
)
def test_file_errors_name_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, path=tmp_path / "p.yaml", options=OPTIONS)


def test_pipeline_error_is_an_input_error() -> None:
    assert issubclass(PipelineError, InputError)
    assert PipelineError("x").exit_code == 2


def test_entries_may_be_name_command_maps_and_deploy_commands(tmp_path: Path) -> None:
    text = (
        "deploy:\n"
        "  commands:\n"
        "    - name: roll\n"
        "      command: kubectl rollout restart deploy/api\n"
        "    - echo done\n"
    )
    pipeline = parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)
    assert [(s.kind, s.line) for s in pipeline.steps] == [("restart", 3), ("shell", 5)]


def test_okteto_manifest_build_section(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    text = (
        "name: shop\n"
        "build:\n"
        "  base:\n"
        "    context: api\n"
        "    dockerfile: Dockerfile.base\n"
        "  api:\n"
        "    context: api\n"
        "    target: prod\n"
        "    args:\n"
        "      VERSION: ${OKTETO_GIT_COMMIT}\n"
        "    depends_on: base\n"
        "deploy:\n"
        "  - kubectl set image deploy/api api=${OKTETO_BUILD_API_IMAGE}\n"
    )
    pipeline = parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)
    base, api, set_image = pipeline.steps
    assert isinstance(base, BuildStep) and isinstance(api, BuildStep)
    assert base.image == "127.0.0.1:5000/shop-base:c0ffee"
    assert base.dockerfile == str(tmp_path / "api" / "Dockerfile.base")
    assert (api.entry, api.line, api.service) == (0, 6, "api")
    assert api.build_args == (("VERSION", "c0ffee"),)
    assert api.target == "prod"
    assert api.needs_images == (base.image,)
    assert isinstance(set_image, SetImageStep)
    assert set_image.images == (("api", "127.0.0.1:5000/shop-api:c0ffee"),)
    assert pipeline.variables["OKTETO_BUILD_API_TAG"] == "c0ffee"
    assert pipeline.variables["OKTETO_BUILD_API_REPOSITORY"] == "shop-api"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("  api:\n    pull: always\n", r"line 2: build\.api\.pull is not supported"),
        ("  api: image-name\n", r"line 2: build\.api must be a mapping"),
        ("  api:\n    depends_on: db\n", r"build\.api\.depends_on names db"),
    ],
)
def test_okteto_manifest_build_errors(build: str, message: str, tmp_path: Path) -> None:
    text = f"build:\n{build}deploy:\n  - echo hi\n"
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)


def test_namespace_precedence_line_then_run_then_kubeconfig(tmp_path: Path) -> None:
    text = (
        "deploy:\n"
        "  - kubectl -n line-ns rollout restart deploy/a\n"
        "  - kubectl rollout restart deploy/b\n"
        "  - kubectl --context other rollout restart deploy/c\n"
    )
    asked: list[tuple[str | None, str | None]] = []

    def kube_namespace(context: str | None, kubeconfig: str | None) -> str | None:
        asked.append((context, kubeconfig))
        return {None: "ctx-ns", "other": "other-ns"}[context]

    from_kubeconfig = PipelineOptions(commit="c", kube_namespace=kube_namespace)
    steps = parse_pipeline(text, path=tmp_path / "p.yaml", options=from_kubeconfig).steps
    assert [(s.scope.namespace, s.scope.explicit_namespace) for s in steps] == [
        ("line-ns", True),
        ("ctx-ns", False),
        ("other-ns", False),
    ]
    assert steps[2].scope.context == "other"

    from_run = PipelineOptions(commit="c", namespace="run-ns", kube_namespace=kube_namespace)
    asked.clear()
    pipeline = parse_pipeline(text, path=tmp_path / "p.yaml", options=from_run)
    assert [s.scope.namespace for s in pipeline.steps] == ["line-ns", "run-ns", "run-ns"]
    assert pipeline.namespace == "run-ns"
    assert pipeline.variables["OKTETO_NAMESPACE"] == "run-ns"
    # The run names the namespace: the kubeconfig is read only for the line that names a
    # context, which must exist (kubectl fails the line otherwise, -n or not).
    assert asked == [("other", None)]


def test_no_namespace_anywhere_is_default(tmp_path: Path) -> None:
    pipeline = parse_pipeline(
        "deploy:\n  - kubectl rollout restart deploy/a\n", path=tmp_path / "p.yaml", options=OPTIONS
    )
    assert pipeline.steps[0].scope == KubeScope("default")


def _bomb(levels: int) -> str:
    """A "billion laughs" mapping: each level a list of nine aliases of the one before."""
    lines = ["  l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A repeated key: the tester's case crashed zip(strict=True) with a ValueError.
        (
            "deploy:\n  - echo a\ndeploy:\n  - echo b\n  - echo c\n",
            r'p\.yaml line 3: mapping key "deploy" already defined at line 1; keep one',
        ),
        (
            "deploy:\n  - echo a\ndeploy:\n  - echo b\n",
            r'line 3: mapping key "deploy" already defined at line 1',
        ),
        (
            "build:\n  api:\n    context: a\n    context: b\ndeploy:\n  - echo hi\n",
            r'line 4: mapping key "context" already defined at line 3',
        ),
        (
            "deploy:\n  - name: x\n    command: echo a\n    command: echo b\n",
            r'line 4: mapping key "command" already defined at line 3',
        ),
        # Nesting past MAX_DEPTH: a RecursionError before.
        (
            "deploy:\n  - echo hi\nx: " + "[" * 5000 + "]" * 5000 + "\n",
            r"p\.yaml line 3: YAML nested more than 200 levels deep; .*unclosed brackets",
        ),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", r"line 1: YAML nested more than 200 levels"),
        # An alias bomb, refused before anything expands it.
        (
            "deploy:\n  - echo hi\nx:\n" + _bomb(9),
            r"p\.yaml line \d+: excessive aliasing: up to the alias \*l\d here, .*"
            r'"document contains excessive aliasing"',
        ),
        (
            "build:\n  api:\n    args: &a [A=1, A=1, A=1, A=1, A=1, A=1, A=1, A=1, A=1]\n"
            "x:\n" + _bomb(8) + "deploy:\n  - echo hi\n",
            r"excessive aliasing",
        ),
        (
            "a: &a [x, *a]\ndeploy:\n  - echo hi\n",
            r"line 1: the alias \*a is inside the value of its own anchor &a \(line 1\)",
        ),
        # No steps at all: it ran nothing and reported success before.
        ("deploy: []\n", r"p\.yaml line 1: the pipeline has no steps: .* under `deploy:`"),
        ("x: 1\ndeploy:\n  commands: []\n", r"line 2: the pipeline has no steps"),
        ("build: {}\ndeploy: []\n", r"line 2: the pipeline has no steps"),
    ],
    ids=[
        "duplicate-deploy",
        "duplicate-same-length",
        "duplicate-build-field",
        "duplicate-entry-field",
        "deep",
        "deep-top",
        "alias-bomb",
        "alias-bomb-in-args",
        "alias-in-itself",
        "empty-deploy",
        "empty-commands",
        "empty-build-and-deploy",
    ],
)
def test_bad_yaml_is_refused_naming_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, path=tmp_path / "p.yaml", options=OPTIONS)


def test_merge_keys_may_override_and_lines_follow_the_winning_key(tmp_path: Path) -> None:
    text = "base: &base\n  deploy:\n    - echo a\n<<: *base\ndeploy:\n  - echo b\n  - echo c\n"
    pipeline = parse_pipeline(text, path=tmp_path / "p.yaml", options=OPTIONS)
    assert [(s.command, s.line) for s in pipeline.steps] == [("echo b", 6), ("echo c", 7)]


def test_a_build_only_manifest_has_steps(tmp_path: Path) -> None:
    text = "build:\n  api: {}\ndeploy: []\n"
    pipeline = parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)
    assert [s.kind for s in pipeline.steps] == ["build"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # Both were TypeError: 'int' object is not iterable.
        (
            "  svc:\n    args: 5\n",
            r"line 3: build\.svc\.args must be a map of NAME: VALUE or a list of NAME=VALUE "
            r"strings, found a number \(5\)",
        ),
        (
            "  svc:\n    depends_on: 5\n",
            r"line 3: build\.svc\.depends_on must be a build service's name or a list of "
            r"names, found a number \(5\)",
        ),
        (
            "  base: {}\n  svc:\n    depends_on:\n      - base\n      - 7\n",
            r"line 6: build\.svc\.depends_on must be a list of build service names, found a "
            r"number \(7\)",
        ),
        (
            "  svc:\n    args:\n      - A=1\n      - {B: 2}\n",
            r"line 5: build\.svc\.args must be a list of NAME=VALUE strings, found a mapping",
        ),
        ("  svc:\n    args:\n      A: [1]\n", r"line 4: build\.svc\.args\.A must be a string"),
        ("  svc:\n    image: [a]\n", r"line 3: build\.svc\.image must be a string, found a list"),
        ("  svc:\n    target: {a: b}\n", r"line 3: build\.svc\.target must be a string"),
        ("  svc:\n    args: true\n", r"args must be a map .*, found a boolean \(true\)"),
    ],
)
def test_okteto_manifest_build_field_types(build: str, message: str, tmp_path: Path) -> None:
    text = f"build:\n{build}deploy:\n  - echo hi\n"
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)


def test_okteto_manifest_scalar_build_fields_still_work(tmp_path: Path) -> None:
    text = (
        "build:\n"
        "  base: {}\n"
        "  api:\n"
        "    args: [VERSION=1]\n"
        "    depends_on: [base]\n"
        "    target: 2\n"
        "deploy:\n"
        "  - echo hi\n"
    )
    pipeline = parse_pipeline(text, path=tmp_path / "okteto.yml", options=OPTIONS)
    api = pipeline.steps[1]
    assert isinstance(api, BuildStep)
    assert (api.build_args, api.target, len(api.needs_images)) == ((("VERSION", "1"),), "2", 1)


def test_a_control_character_in_the_pipeline_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "okteto-pipeline.yaml"
    path.write_bytes(b"deploy:\n  - echo hi\n  - echo \x1b[31m\n")
    with pytest.raises(PipelineError, match=r"line 3: the control character U\+001B at column 10"):
        read_pipeline(path, OPTIONS)

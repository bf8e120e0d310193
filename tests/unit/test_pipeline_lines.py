"""flows.pipeline on single deploy lines: what each becomes, and what stays a shell step."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import PipelineOptions, parse_pipeline
from flows.steps import (
    ApplyStep,
    BuildStep,
    KubeScope,
    RestartStep,
    SetImageStep,
    ShellStep,
    Step,
    WaitStep,
)
from tasks.errors import PipelineError

ENV = {"HOME": "/home/u", "APP": "api", "SPACED": "a b", "REG": "r.example:5000"}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("b.yaml", "a.yaml", "B.yaml", ".hidden.yaml", "notes.txt"):
        (tmp_path / "k8s" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "k8s" / name).write_text("kind: ConfigMap\n")
    (tmp_path / "k8s" / "sub").mkdir()
    (tmp_path / "k8s" / "sub" / "c.yml").write_text("kind: ConfigMap\n")
    (tmp_path / "one.yaml").write_text("kind: ConfigMap\n")
    return tmp_path


def steps_of(lines: list[str], work: Path, **options: object) -> tuple[Step, ...]:
    # A block scalar per entry keeps any text (quotes, newlines) as written.
    text = "deploy:\n" + "".join(
        "  - |-\n" + "".join(f"    {row}\n" for row in line.split("\n")) for line in lines
    )
    settings = {"commit": "abc", "registry": "127.0.0.1:5000", "environ": ENV, **options}
    return parse_pipeline(
        text, path=work / "pipeline.yaml", options=PipelineOptions(**settings)
    ).steps


def one(line: str, work: Path, **options: object) -> Step:
    (step,) = steps_of([line], work, **options)
    return step


def k8s(work: Path, *names: str) -> tuple[str, ...]:
    return tuple(str(work / "k8s" / name) for name in names)


# --- builds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "image", "context", "dockerfile"),
    [
        (
            "okteto build -t okteto.dev/app:$OKTETO_GIT_COMMIT",
            "127.0.0.1:5000/app:abc",
            ".",
            "Dockerfile",
        ),
        (
            "okteto build -t x/app:1 -f ./srv/deploy/Dockerfile srv",
            "x/app:1",
            "srv",
            "srv/deploy/Dockerfile",
        ),
        ("okteto build srv --tag=x/app:1 --file srv/D", "x/app:1", "srv", "srv/D"),
        ("okteto build -tx/app:1 srv", "x/app:1", "srv", "srv/Dockerfile"),
        ('okteto build -t "$REG/$APP:1" .', "r.example:5000/api:1", ".", "Dockerfile"),
    ],
)
def test_okteto_build(line: str, image: str, context: str, dockerfile: str, work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, BuildStep)
    assert step.image == image
    assert step.context == str((work / context).resolve()) if context != "." else str(work)
    assert step.dockerfile == str(work / dockerfile)
    assert step.push


def test_dockerfile_is_relative_to_the_working_dir_not_the_context(work: Path) -> None:
    step = one("okteto build -t x/a:1 -f server/deploy/Dockerfile server", work)
    assert isinstance(step, BuildStep)
    assert step.dockerfile == str(work / "server" / "deploy" / "Dockerfile")
    assert step.context == str(work / "server")


def test_docker_build_then_push_merges(work: Path) -> None:
    steps = steps_of(
        [
            "docker build -t okteto.dev/a:1 --build-arg V=2 --build-arg APP --target t .",
            "docker push okteto.dev/a:1",
        ],
        work,
    )
    (build,) = steps
    assert isinstance(build, BuildStep)
    assert (build.image, build.push, build.target) == ("127.0.0.1:5000/a:1", True, "t")
    assert build.build_args == (("V", "2"), ("APP", "api"))


def test_docker_build_and_push_chain_merges(work: Path) -> None:
    (build,) = steps_of(["docker build -t x/a:1 . && docker push x/a:1"], work)
    assert isinstance(build, BuildStep) and build.push


def test_docker_build_without_push_does_not_push(work: Path) -> None:
    (build,) = steps_of(["docker build -t x/a:1 ."], work)
    assert isinstance(build, BuildStep) and not build.push


def test_push_of_another_image_is_a_shell_step(work: Path) -> None:
    build, push = steps_of(["docker build -t x/a:1 .", "docker push x/b:1"], work)
    assert isinstance(push, ShellStep)
    assert "no earlier docker build" in push.reason
    assert isinstance(build, BuildStep) and not build.push


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("docker build -t x/a:1", r"requires exactly 1 argument"),
        ("okteto build -t", r"flag needs an argument: -t"),
    ],
)
def test_build_lines_the_tool_refuses(line: str, message: str, work: Path) -> None:
    with pytest.raises(PipelineError, match=rf"pipeline\.yaml line 2: .*{message}"):
        one(line, work)


@pytest.mark.parametrize(
    "line",
    [
        "okteto build .",  # no tag
        "okteto build -t a:1 -t b:1 .",
        "okteto build -t a:1 --platform linux/arm64 .",
        "docker build -t a:1 https://github.com/x/y.git",
        "docker build -t a:1 - < Dockerfile",
    ],
)
def test_build_lines_not_modelled_are_shell_steps(line: str, work: Path) -> None:
    assert isinstance(one(line, work), ShellStep)


def test_a_line_left_to_a_tool_that_is_not_installed_is_refused_up_front(work: Path) -> None:
    # Run by bash it would fail with "command not found" after earlier lines applied.
    tools = work / "bin"
    tools.mkdir()
    environ = {**ENV, "PATH": str(tools)}
    with pytest.raises(PipelineError) as caught:
        steps_of(
            ["kubectl rollout restart deploy/a", "okteto build -t a:1 --platform linux/arm64 ."],
            work,
            environ=environ,
        )
    assert str(caught.value) == (
        f"{work / 'pipeline.yaml'} line 4: shipline does not model `okteto build -t a:1 "
        "--platform linux/arm64 .` (okteto build flag --platform is not modelled), and bash "
        "cannot run it: okteto is not installed (not on PATH); change the line or install it"
    )
    fake = tools / "okteto"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    (step,) = steps_of(["okteto build -t a:1 --platform linux/arm64 ."], work, environ=environ)
    assert isinstance(step, ShellStep)
    # After a shell line, which may install it, the line is left to bash.
    fake.unlink()
    steps = steps_of(
        ["./install-okteto.sh", "okteto build -t a:1 --platform linux/arm64 ."],
        work,
        environ=environ,
    )
    assert [s.kind for s in steps] == ["shell", "shell"]


# --- apply loops and apply -f -------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "for file in k8s/*.yaml; do envsubst < $file | kubectl apply -f -; done",
        'for f in k8s/*.yaml; do envsubst < "$f" | kubectl apply -f -; done',
        "for f in k8s/*.yaml\ndo\n  envsubst < ${f} | kubectl apply -f -\ndone",
        "for f in k8s/*.yaml; do envsubst <$f | kubectl apply -f - ; done",
    ],
)
def test_apply_loop(line: str, work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, ApplyStep)
    # bash's glob: hidden files skipped, sorted by collation (C locale here: B before a).
    assert step.files == k8s(work, "B.yaml", "a.yaml", "b.yaml")
    assert step.substitute and step.only is None


def test_apply_loop_with_shell_format_and_namespace(work: Path) -> None:
    step = one(
        "for f in k8s/a.yaml k8s/b.yaml; do envsubst '$APP ${TAG}' < $f | "
        "kubectl -n prod apply -f -; done",
        work,
    )
    assert isinstance(step, ApplyStep)
    assert step.files == k8s(work, "a.yaml", "b.yaml")
    assert step.only == frozenset({"APP", "TAG"})
    assert step.scope == KubeScope("prod", True)


def test_apply_loop_without_envsubst(work: Path) -> None:
    step = one('for f in k8s/a.yaml; do kubectl apply -f "$f"; done', work)
    assert isinstance(step, ApplyStep) and not step.substitute


def test_apply_loop_in_a_bash_script(work: Path) -> None:
    (work / "deploy.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\n"
        "for f in k8s/*.yaml; do\n  envsubst < $f | kubectl apply -f -\ndone\n"
    )
    step = one("bash deploy.sh", work)
    assert isinstance(step, ApplyStep)
    assert step.script == str(work / "deploy.sh")
    assert step.files == k8s(work, "B.yaml", "a.yaml", "b.yaml")


def test_a_script_that_is_more_than_the_loop_is_a_shell_step(work: Path) -> None:
    (work / "deploy.sh").write_text("echo hi\nfor f in k8s/*.yaml; do kubectl apply -f $f; done\n")
    step = one("bash deploy.sh", work)
    assert isinstance(step, ShellStep) and "not a single apply loop" in step.reason


def test_a_missing_script_is_refused_like_bash(work: Path) -> None:
    with pytest.raises(PipelineError, match=r"line 2: bash: nope\.sh: No such file"):
        one("bash nope.sh", work)


def test_a_glob_matching_nothing_is_an_error_naming_the_file(work: Path) -> None:
    with pytest.raises(PipelineError, match=r"line 2: the loop reads k8s/\*\.json, which is not"):
        one("for f in k8s/*.json; do envsubst < $f | kubectl apply -f -; done", work)


def test_files_made_by_an_earlier_shell_line_are_not_refused(work: Path) -> None:
    shell, loop = steps_of(
        ["./render.sh", "for f in out/*.yaml; do envsubst < $f | kubectl apply -f -; done"], work
    )
    assert isinstance(shell, ShellStep)
    assert isinstance(loop, ShellStep) and "does not exist yet" in loop.reason


@pytest.mark.parametrize(
    ("line", "files"),
    [
        # kubectl walks a directory in byte order, hidden files included.
        ("kubectl apply -f k8s", (".hidden.yaml", "B.yaml", "a.yaml", "b.yaml")),
        ("kubectl apply -f k8s -R", (".hidden.yaml", "B.yaml", "a.yaml", "b.yaml", "sub/c.yml")),
        ("kubectl apply -f k8s/a.yaml -f k8s/b.yaml", ("a.yaml", "b.yaml")),
        ("kubectl apply -f 'k8s/*.yaml'", (".hidden.yaml", "B.yaml", "a.yaml", "b.yaml")),
        ("kubectl apply --filename=k8s/a.yaml", ("a.yaml",)),
    ],
)
def test_kubectl_apply_files(line: str, files: tuple[str, ...], work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, ApplyStep)
    assert step.files == k8s(work, *files)
    assert not step.substitute


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("kubectl apply -f k8s/*.yaml", r"Unexpected args: \[k8s/a.yaml k8s/b.yaml\]"),
        ("kubectl apply", r"must specify one of -f and -k"),
        ("kubectl apply -f missing.yaml", r'the path "missing.yaml" does not exist'),
    ],
)
def test_kubectl_apply_refused(line: str, message: str, work: Path) -> None:
    with pytest.raises(PipelineError, match=message):
        one(line, work)


# --- set image, rollout -------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "kubectl set image deployment server server=okteto.dev/s:$OKTETO_GIT_COMMIT",
        "kubectl set image deployment/server server=okteto.dev/s:abc",
        "kubectl -n prod set image deploy/server server=okteto.dev/s:abc",
        "kubectl set image --namespace=prod deployments.apps server server=okteto.dev/s:abc",
        "kubectl set -n prod image deployment server server=okteto.dev/s:abc",
    ],
)
def test_set_image(line: str, work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, SetImageStep)
    assert (step.workload_kind, step.names) == ("Deployment", ("server",))
    assert step.images == (("server", "127.0.0.1:5000/s:abc"),)
    expected_ns = "prod" if "prod" in line else "default"
    assert step.scope.namespace == expected_ns


def test_set_image_star_and_several_names(work: Path) -> None:
    step = one("kubectl set image sts a b *=x/y:1", work)
    assert isinstance(step, SetImageStep)
    assert (step.workload_kind, step.names, step.images) == (
        "StatefulSet",
        ("a", "b"),
        (("*", "x/y:1"),),
    )


def test_set_image_of_mixed_kinds_gives_one_step_per_kind(work: Path) -> None:
    steps = steps_of(["kubectl set image deploy/a ds/b c=x:1"], work)
    assert [(s.workload_kind, s.names) for s in steps] == [
        ("Deployment", ("a",)),
        ("DaemonSet", ("b",)),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("kubectl set image deploy/a", r"at least one image update is required"),
        ("kubectl set image deploy/a c=x:1 deploy/b", r"all resources must be specified before"),
        ("kubectl set image deploy/a *=x:1 c=y:1", r"all containers are already specified by \*"),
        ("kubectl set image deploy a/b c=x:1", r"no need to specify a resource type"),
        ("kubectl set image deploy/ c=x:1", r"must have a single resource and name"),
        ("kubectl set image deploy a c=", r'invalid image format: "c="'),
    ],
)
def test_set_image_refused_like_kubectl(line: str, message: str, work: Path) -> None:
    with pytest.raises(
        PipelineError, match=rf"pipeline\.yaml line 2: kubectl set image: .*{message}"
    ):
        one(line, work)


@pytest.mark.parametrize(
    ("line", "kind", "names"),
    [
        ("kubectl rollout restart deployment grafana-agent", "Deployment", ("grafana-agent",)),
        ("kubectl rollout restart deploy/a deploy/b", "Deployment", ("a", "b")),
        ("kubectl rollout restart ds x", "DaemonSet", ("x",)),
        ("kubectl --context c rollout restart statefulset.apps/db", "StatefulSet", ("db",)),
    ],
)
def test_rollout_restart(line: str, kind: str, names: tuple[str, ...], work: Path) -> None:
    step = one(line, work, kube_namespace=lambda context, kubeconfig: "ctx")
    assert isinstance(step, RestartStep)
    assert (step.workload_kind, step.names) == (kind, names)


@pytest.mark.parametrize(
    ("line", "timeout"),
    [
        ("kubectl rollout status deployment server", None),
        ("kubectl rollout status deploy/server --timeout=90s", 90.0),
        ("kubectl rollout status deploy/server --timeout 1m30s -w", 90.0),
        ("kubectl rollout status --timeout=0 deployment server", None),
        ("kubectl rollout status deployment server --timeout=1.5h", 5400.0),
    ],
)
def test_rollout_status(line: str, timeout: float | None, work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, WaitStep)
    assert (step.workload_kind, step.name, step.timeout) == ("Deployment", "server", timeout)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("kubectl rollout status deploy/a --timeout=90", r'missing unit in duration "90"'),
        ("kubectl rollout status deploy/a --timeout=soon", r'invalid duration "soon"'),
        ("kubectl rollout status deploy/a deploy/b", r"only supported on individual resources"),
    ],
)
def test_rollout_status_refused(line: str, message: str, work: Path) -> None:
    with pytest.raises(PipelineError, match=message):
        one(line, work)


def test_and_chain_splits_into_steps(work: Path) -> None:
    steps = steps_of(
        [
            "kubectl rollout status deployment server && "
            "kubectl rollout status deployment grafana-agent"
        ],
        work,
    )
    assert [(type(s), s.command) for s in steps] == [
        (WaitStep, "kubectl rollout status deployment server"),
        (WaitStep, "kubectl rollout status deployment grafana-agent"),
    ]
    assert {s.entry for s in steps} == {1}


def test_and_chain_with_an_unknown_part_keeps_its_place(work: Path) -> None:
    steps = steps_of(["echo start && kubectl rollout restart deploy/a && sleep 1"], work)
    assert [s.kind for s in steps] == ["shell", "restart", "shell"]
    assert [s.command for s in steps] == [
        "echo start",
        "kubectl rollout restart deploy/a",
        "sleep 1",
    ]


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("cd sub && kubectl apply -f k8s/", "cd sub && kubectl apply -f k8s/"),
        (
            "export FOO=x && for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done",
            "export FOO=x && for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done",
        ),
        ("FOO=x && kubectl rollout restart deploy/a", "FOO=x && kubectl rollout restart deploy/a"),
        ("source env.sh && kubectl rollout restart deploy/a", None),
        ("command cd /tmp && kubectl rollout restart deploy/a", None),
        ("echo ${X:=1} && kubectl rollout restart deploy/$X", None),
        ("$CMD && kubectl rollout restart deploy/a", None),
        ("(cd sub) && kubectl rollout restart deploy/a", None),
        ("exit 0 && kubectl apply -f k8s/", None),
    ],
)
def test_and_chain_after_a_shell_state_change_stays_one_shell_step(
    line: str, kept: str | None, work: Path
) -> None:
    # bash runs the rest of the chain in the shell the first part changed (directory,
    # variables, options): split into steps, `kubectl apply -f k8s/` would read ./k8s.
    (step,) = steps_of([line], work)
    assert isinstance(step, ShellStep)
    assert step.command == (kept or line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("kubectl apply -f k8s/ &&", "syntax error: unexpected end of file"),
        ("&& kubectl rollout restart deploy/a", "syntax error near unexpected token `&&'"),
        ("echo x )", "syntax error near unexpected token `)'"),
        ("if true; then echo x", "syntax error: unexpected end of file"),
        ("echo a && && echo b", "syntax error near unexpected token `&&'"),
    ],
)
def test_a_line_bash_cannot_parse_is_refused_before_anything_runs(
    line: str, message: str, work: Path
) -> None:
    with pytest.raises(PipelineError) as caught:
        steps_of(["kubectl rollout restart deploy/a", line], work)
    assert "pipeline.yaml line 4: not valid shell" in str(caught.value)
    assert message in str(caught.value)


def test_and_chain_keeps_modelled_steps_before_a_state_change(work: Path) -> None:
    steps = steps_of(["kubectl rollout restart deploy/a && cd sub && kubectl apply -f x/"], work)
    assert [(s.kind, s.command) for s in steps] == [
        ("restart", "kubectl rollout restart deploy/a"),
        ("shell", "cd sub && kubectl apply -f x/"),
    ]


# --- shell steps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("echo hello", "echo is not a step shipline models"),
        ("kubectl get pods", "kubectl get is not modelled"),
        ("kubectl rollout restart deployment", "(no name given)"),
        ("kubectl rollout restart cronjob/x", "shipline models Deployments"),
        ("kubectl apply -f k8s --prune", "--prune is not modelled"),
        ("kubectl apply -f - < k8s/a.yaml", "pipes and redirections"),
        ("kubectl set image deploy/a c=$(cat img)", "command substitution $(...)"),
        ("kubectl set image deploy/a c=${IMG:-x}", "parameter expansion ${IMG:-x}"),
        ("IMG=x kubectl set image deploy/a c=$IMG", "a variable assignment"),
        ("true || kubectl rollout restart deploy/a", "a shell list with ||"),
        ("sleep 1; kubectl rollout restart deploy/a", "a shell list with ;"),
        ("cat <<EOF\nhi\nEOF", "<<"),
        ("helm upgrade x ./chart", "helm is not a step shipline models"),
    ],
)
def test_other_lines_are_shell_steps(line: str, reason: str, work: Path) -> None:
    step = one(line, work)
    assert isinstance(step, ShellStep)
    assert reason in step.reason
    assert step.command == line
    assert step.cwd == str(work)


def test_variables_process_env_and_run_vars(work: Path) -> None:
    step = one(
        "kubectl set image deploy/$APP app=$REG/$APP:${OKTETO_GIT_BRANCH}-$EXTRA",
        work,
        branch="main",
        variables={"EXTRA": "x"},
    )
    assert isinstance(step, SetImageStep)
    assert step.names == ("api",)
    assert step.images == (("app", "r.example:5000/api:main-x"),)


def test_unquoted_variables_split_like_bash(work: Path) -> None:
    step = one("kubectl rollout restart deploy $SPACED", work)
    assert isinstance(step, RestartStep) and step.names == ("a", "b")
    quoted = one('kubectl rollout restart deploy "$SPACED"', work)
    assert isinstance(quoted, RestartStep) and quoted.names == ("a b",)


def test_single_quotes_do_not_expand(work: Path) -> None:
    step = one("kubectl set image deploy/a 'c=$APP'", work)
    assert isinstance(step, SetImageStep) and step.images == (("c", "$APP"),)


# --- --kubeconfig and --context on a line ---------------------------------------------


def kubeconfig_namespaces(work: Path, monkeypatch: pytest.MonkeyPatch):
    """``kube_namespace`` as `shipline run` has it, over a kubeconfig in the work folder."""
    from flows.kube_context import context_namespace

    (work / "kc.yaml").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: main, context: {cluster: c, user: u, namespace: ns-kc}}]\n"
    )
    monkeypatch.chdir(work / "k8s")  # shipline started elsewhere than the pipeline's folder
    return lambda context, kubeconfig: context_namespace(
        kubeconfig=kubeconfig, context=context, environ={"HOME": "/nonexistent"}
    )


def test_a_relative_kubeconfig_is_read_from_the_pipeline_folder(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespaces = kubeconfig_namespaces(work, monkeypatch)
    line = "kubectl --kubeconfig kc.yaml rollout restart deploy/a"
    step = one(line, work, kube_namespace=namespaces)
    assert isinstance(step, RestartStep)
    assert step.scope.namespace == "ns-kc"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("kubectl --kubeconfig nope.yaml rollout restart deploy/a", "nope.yaml does not exist"),
        ("kubectl --kubeconfig kc.yaml --context gone rollout restart deploy/a", '"gone" does'),
    ],
)
@pytest.mark.parametrize("namespace", [None, "run-ns"])
def test_a_missing_kubeconfig_or_context_is_refused_with_or_without_a_namespace(
    line: str, message: str, namespace: str | None, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespaces = kubeconfig_namespaces(work, monkeypatch)
    with pytest.raises(PipelineError, match=message):
        one(line, work, kube_namespace=namespaces, namespace=namespace)

"""Lines run as bash would run them: in the run's namespace, with the shell's own state,
and `kubectl apply -f FILE` without envsubst."""

from __future__ import annotations

import uuid

import pytest
from shipline_runs import shipline_run

pytestmark = pytest.mark.integration


def config_map(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: '{value}'\n"


def test_lines_act_like_bash_in_the_run_namespace(stack, namespace, core, tmp_path):
    tag = uuid.uuid4().hex[:8]
    verbatim = "$HOME and ${OKTETO_GIT_COMMIT}"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.yaml").write_text(config_map(f"plain-{tag}", verbatim))
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "file.yaml").write_text(config_map(f"loop-{tag}", verbatim))
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "top.yaml").write_text(config_map(f"top-{tag}", "top"))
    (tmp_path / "sub" / "k8s").mkdir(parents=True)
    (tmp_path / "sub" / "k8s" / "sub.yaml").write_text(config_map(f"sub-{tag}", "sub"))
    (tmp_path / "tpl.yaml").write_text(config_map(f"exported-{tag}", "${FOO}"))
    (tmp_path / "okteto-pipeline.yaml").write_text(
        "deploy:\n"
        f"  - kubectl create configmap shell-{tag} --from-literal=v=shell\n"
        # KUBECONFIG is one file, as okteto gives it: tools that take one path work.
        f'  - kubectl --kubeconfig "$KUBECONFIG" create configmap one-{tag} --from-literal=v=one\n'
        "  - kubectl apply -f plain/file.yaml\n"
        "  - for f in loop/*.yaml; do kubectl apply -f $f; done\n"
        "  - cd sub && kubectl apply -f k8s/\n"
        "  - export FOO=exported && envsubst < tpl.yaml | kubectl apply -f -\n"
    )
    done = shipline_run(str(tmp_path / "okteto-pipeline.yaml"), "--commit", "c1", "-n", namespace)
    assert done.returncode == 0, done.stderr[-3000:]

    values = {c.metadata.name: c.data for c in core.list_namespaced_config_map(namespace).items}
    # A shell line's kubectl uses the run's namespace, not the kubeconfig's (default).
    assert values[f"shell-{tag}"] == {"v": "shell"}
    assert values[f"one-{tag}"] == {"v": "one"}
    default = {c.metadata.name for c in core.list_namespaced_config_map("default").items}
    assert not {name for name in default if tag in name}
    # kubectl apply -f reads files as they are: no variable is replaced.
    assert values[f"plain-{tag}"] == {"v": verbatim}
    assert values[f"loop-{tag}"] == {"v": verbatim}
    # `cd sub && ...` applies sub/k8s; `export FOO=... && envsubst ...` sees FOO.
    assert values[f"sub-{tag}"] == {"v": "sub"}
    assert f"top-{tag}" not in values
    assert values[f"exported-{tag}"] == {"v": "exported"}

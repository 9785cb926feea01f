"""The commands through click's CliRunner, without a cluster: flags, dry runs, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubatch.cli.client import Target, context_namespace, resource_path
from kubatch.cli.main import cli

KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: team-a}
- name: other
  context: {cluster: c, user: u, namespace: team-b}
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    return str(path)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_prints_the_manifest_in_the_context_namespace(kubeconfig: str) -> None:
    code, out, _ = run(
        "submit", "--kubeconfig", kubeconfig, "--dry-run", "--job-name", "j1", "--job-queue", "q",
        "--job-definition", "render:2", "--array-size", "10", "--depends-on", "prep:N_TO_N",
        "--depends-on-sequential", "--command", "sh -c 'echo $AWS_BATCH_JOB_ARRAY_INDEX'", "--env", "A=1",
        "--parameters", "frame=7", "--annotation", "sim.kubatch.dev/exit-code=3", "--memory", "512",
    )
    assert code == 0, out
    manifest = yaml.safe_load(out)
    assert manifest["metadata"] == {"name": "j1", "namespace": "team-a"}
    spec = manifest["spec"]
    assert spec["containerOverrides"]["command"] == ["sh", "-c", "echo $AWS_BATCH_JOB_ARRAY_INDEX"]
    assert spec["dependsOn"] == [{"jobName": "prep", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}]
    assert spec["podMetadata"] == {"annotations": {"sim.kubatch.dev/exit-code": "3"}}
    assert spec["parameters"] == {"frame": "7"}


def test_namespace_flag_on_the_group_or_the_command(kubeconfig: str) -> None:
    base = ["--dry-run", "--job-queue", "q", "--job-definition", "d", "--command-arg", "echo", "--command-arg", "a b"]
    code, out, _ = run("-n", "g", "submit", "--kubeconfig", kubeconfig, *base)
    assert code == 0 and yaml.safe_load(out)["metadata"]["namespace"] == "g"
    code, out, _ = run("-n", "g", "submit", "--kubeconfig", kubeconfig, "-n", "c", *base, "-o", "json")
    manifest = yaml.safe_load(out)
    assert manifest["metadata"] == {"generateName": "d-", "namespace": "c"}
    assert manifest["spec"]["containerOverrides"]["command"] == ["echo", "a b"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--job-definition", "d"], "Missing option '--job-queue'"),
        (["--job-queue", "q", "--job-definition", "d", "--env", "NOEQUALS"], "expected KEY=VALUE"),
        (["--job-queue", "q", "--job-definition", "d", "--command", "a", "--command-arg", "b"], "not both"),
        (["--job-queue", "q", "--job-definition", "d", "--command", "'unclosed"], "quotation"),
        (["--job-queue", "q", "--job-definition", "d", "--depends-on", "x:BOTH"], "type must be"),
        (["--job-queue", "q", "--job-definition", "d", "--array-size", "1"], "array size"),
        (["--job-queue", "q", "--job-definition", "d", "--memory", "0"], "--memory"),
        (["--job-queue", "q", "--job-definition", "d", "--array-size", "x"], "not a valid integer"),
        (["--job-queue", "q", "--job-definition", "d", "-o", "xml"], "'xml' is not one of"),
    ],
)
def test_submit_bad_flags_exit_2(kubeconfig: str, args: list[str], message: str) -> None:
    code, _, err = run("submit", "--kubeconfig", kubeconfig, "--dry-run", *args)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--status", "DONE"],
        ["list", "--created-after", "yesterday"],
        ["list", "-o", "xml"],
        ["describe", "job:x"],
        ["describe"],
        ["cancel"],
        ["cancel", "job:x"],
        ["terminate", "job#1"],
        ["logs", "job", "--attempt", "0"],
        ["watch", "--status", "nope"],
        ["nosuchcommand"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, _, _ = run(*args)
    assert code == 2


def test_missing_kubeconfig_is_an_error_with_exit_1(tmp_path: Path) -> None:
    code, _, err = run("list", "--kubeconfig", str(tmp_path / "missing"))
    assert code == 1
    assert err.startswith("error: kubeconfig ")
    assert "does not exist" in err


def test_unreachable_server_is_an_error_with_exit_1(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(_: float) -> None:
        return None

    monkeypatch.setattr("kubatch.cluster.client.asyncio.sleep", no_sleep)
    code, _, err = run("describe", "--kubeconfig", kubeconfig, "x")
    assert code == 1
    assert err.startswith("error: cannot reach the API server")


def test_context_namespace(kubeconfig: str, tmp_path: Path) -> None:
    assert context_namespace(kubeconfig) == "team-a"
    bare = tmp_path / "bare"
    bare.write_text("current-context: x\ncontexts: []\n")
    assert context_namespace(str(bare)) == "default"


def test_target_prefers_command_then_group_then_context(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from kubatch.cli.client import GlobalOptions

    with click.Context(cli, obj=GlobalOptions(kubeconfig=kubeconfig, namespace="grp")):
        assert Target.resolve(None, None) == Target(kubeconfig, "grp")
        assert Target.resolve(None, "cmd").namespace == "cmd"
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    with click.Context(cli, obj=GlobalOptions()):
        assert Target.resolve(None, None) == Target(kubeconfig, "team-a")


def test_resource_paths() -> None:
    assert resource_path("batchjobs", "ns", "j") == "/apis/kubatch.dev/v1alpha1/namespaces/ns/batchjobs/j"
    assert resource_path("batchjobs") == "/apis/kubatch.dev/v1alpha1/batchjobs"
    assert resource_path("jobqueues", "ns", "q") == "/apis/kubatch.dev/v1alpha1/jobqueues/q"
    assert resource_path("jobdefinitions", "ns") == "/apis/kubatch.dev/v1alpha1/namespaces/ns/jobdefinitions"

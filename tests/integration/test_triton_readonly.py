"""The real tritonserver, with the rendered Triton container's filesystem: a read-only root and, writable,
only the emptyDirs the renderer mounts.

``readOnlyRootFilesystem`` makes the container's root filesystem read-only and leaves its volume mounts
as they are. The test builds the same view in a private mount namespace (``unshare``: a user namespace
maps the caller to root, so no privileges are needed): every emptyDir the rendered container mounts
without ``readOnly`` stays writable, the ConfigMap's config.pbtxt is mounted read-only as its subPath
mount is, the backends (part of the image) are read-only, and then the root is remounted read-only.
tritonserver then starts with the rendered arguments, loads the python-backend model and answers a
request. If the renderer dropped one of the writable mounts the python backend needs (its execution
environment under /tmp), the server would fail to load the model (seen: "Failed to create temporary
directory for Python environments").
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from codepilot_operator.api import CodePilot
from codepilot_operator.api.platform import DEFAULT_PLATFORM
from codepilot_operator.render.configmap import CONFIG_KEY
from codepilot_operator.render.deployment import deployment
from codepilot_operator.render.served import served_versions
from codepilot_operator.render.tritonconfig import MODEL_REPOSITORY
from tests.fixtures.triton import (
    STARTUP_TIMEOUT,
    TritonServer,
    _args,
    _backends,
    free_ports,
    generate,
    triton_binary,
    triton_env,
    write_model_repository,
)


def rendered_pod(cp: CodePilot) -> dict[str, Any]:
    return dict(deployment(cp, served_versions(cp)[0], DEFAULT_PLATFORM)["spec"]["template"]["spec"])


def mount_script(pod: dict[str, Any], repository: Path, backends: Path, model: str) -> list[str]:
    """Shell lines giving tritonserver the rendered container's view of the filesystem."""
    (triton,) = pod["containers"]
    assert triton["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    here = {MODEL_REPOSITORY: repository}  # where each mount path is on this machine
    writable, read_only = [], []
    for mount in triton["volumeMounts"]:
        volume = volumes[mount["name"]]
        if mount.get("readOnly"):
            assert "configMap" in volume and mount["subPath"] == CONFIG_KEY, mount
            read_only.append(repository / model / CONFIG_KEY)
        else:
            assert set(volume) == {"name", "emptyDir"}, f"{mount['name']} is writable but not an emptyDir"
            writable.append(Path(here.get(mount["mountPath"], mount["mountPath"])))
    lines = ["set -e"]
    for path in sorted(writable, key=lambda p: len(p.parts)):  # parents first, children stay visible
        lines.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(path))}")
    for path in [backends, *read_only]:  # the image's files, and the ConfigMap's subPath
        quoted = shlex.quote(str(path))
        lines += [f"mount --bind {quoted} {quoted}", f"mount -o remount,bind,ro {quoted}"]
    lines.append("mount -o remount,bind,ro /")
    return lines


@pytest.mark.timeout(180)
def test_tritonserver_serves_with_a_read_only_root_and_the_rendered_emptydirs(
    triton_codepilot: CodePilot, tmp_path: Path
) -> None:
    assert shutil.which("unshare"), "util-linux's unshare is part of the test machine (Debian base)"
    repository = write_model_repository(triton_codepilot, tmp_path / "models")
    backends = _backends(tmp_path)
    ports = dict(zip(("http", "grpc", "metrics"), free_ports(3), strict=True))
    lines = mount_script(
        rendered_pod(triton_codepilot), repository, backends, triton_codepilot.spec.model.name
    )
    command = [str(triton_binary()), *_args(triton_codepilot, repository, backends, ports)]
    lines.append("exec " + shlex.join(command))
    log = tmp_path / "tritonserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "\n".join(lines)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=triton_env(),
        )
    server = TritonServer(triton_codepilot, process, ports, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.ready():
            assert process.poll() is None, f"tritonserver exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"tritonserver not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        answer = generate(server, "def fib(n):", max_tokens=4)
        assert answer["text_output"], answer
        probe = subprocess.run(  # the same view, for a write outside the emptyDirs
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                "\n".join([*lines[:-1], f"touch {shlex.quote(str(backends / 'written'))}"]),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe
    finally:
        server.stop()

"""The Dockerfile's contract, checked by parsing it (no container engine is needed to run these tests).

The chart runs the image with runAsNonRoot and a read-only root filesystem, and every CodePilot uses the
same image as its weight-fetcher init container with `command: [codepilot]`; these tests pin what those
depend on.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|git|cargo|rustc|[\w.+-]+-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their (KEYWORD, arguments) instructions; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())
RUNTIME = STAGES[-1]


def test_parser_reads_a_known_dockerfile() -> None:
    stages = parse_dockerfile(
        'FROM a AS one\nRUN x \\\n  && y\n# comment\nFROM b\nUSER 1000\nENTRYPOINT ["tool"]\n'
    )
    assert [(s.base, s.name) for s in stages] == [("a", "one"), ("b", None)]
    assert stages[0].all("RUN") == ["x  && y"]
    assert stages[1].all("USER") == ["1000"]


def test_multi_stage_build_makes_a_wheel_and_the_runtime_installs_only_wheels() -> None:
    assert len(STAGES) >= 2, "multi-stage: a build stage and a runtime stage"
    build_names = {s.name for s in STAGES[:-1]}
    assert any("pip wheel" in run or "-m build" in run for s in STAGES[:-1] for run in s.all("RUN"))
    runtime_runs = " ".join(RUNTIME.all("RUN"))
    from_build = re.findall(r"from=(\S+?)[,\s]", runtime_runs + " " + " ".join(RUNTIME.all("COPY")))
    assert from_build and set(from_build) <= build_names, "the runtime takes its wheels from the build stage"
    assert "--no-index" in runtime_runs, "the runtime installs only the built wheels, nothing from an index"


def test_runtime_stage_has_no_build_tools_or_sources() -> None:
    for run in RUNTIME.all("RUN"):
        assert "apt-get install" not in run and "apk add" not in run, run
        assert not BUILD_TOOLS.search(run), run
    copied = " ".join(RUNTIME.all("COPY") + RUNTIME.all("ADD"))
    assert "operator" not in copied and "pyproject.toml" not in copied, "no source tree in the runtime image"


def test_runtime_runs_as_a_numeric_non_root_user_matching_the_chart() -> None:
    """Kubernetes can only enforce runAsNonRoot for a numeric USER; the chart pins the same uid/gid."""
    users = RUNTIME.all("USER")
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0
    assert gid.isdigit() and int(gid) > 0
    last_user = max(i for i, (kw, _) in enumerate(RUNTIME.instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in RUNTIME.instructions[last_user:]), "nothing runs as root after USER"
    values = yaml.safe_load((REPO / "charts" / "codepilot-operator" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_is_codepilot_so_the_image_serves_operator_and_fetcher() -> None:
    (entrypoint,) = RUNTIME.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["codepilot"], "exec form, so signals reach the operator"
    (cmd,) = RUNTIME.all("CMD")
    assert json.loads(cmd) == ["run"]


def test_runtime_is_ready_for_a_read_only_root_filesystem() -> None:
    env = " ".join(RUNTIME.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env  # the chart mounts an emptyDir at /tmp


def test_dockerignore_sends_the_package_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if (
                fnmatch.fnmatch(path, bare)
                or path.startswith(bare + "/")
                or fnmatch.fnmatch(path, bare + "/*")
            ):
                result = not negate
        return result

    for needed in ("pyproject.toml", "README.md", "operator/codepilot_operator/cli/main.py"):
        assert not ignored(needed), needed
    for unwanted in (".git", "tests", "charts", "bench", ".venv"):
        assert ignored(unwanted), unwanted

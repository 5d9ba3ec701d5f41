"""Static checks of apptainer/pcsweep.def, parsed with spython's SingularityParser.

Apptainer itself cannot be installed on these machines (Debian bookworm has no apptainer or
singularity-container package, PyPI ships no runtime, and nothing else may be fetched), so the image
is never built here: the definition is checked statically instead. What is checked: the header
(`Bootstrap: docker` from a pinned `python:3.11.X-slim` tag, never `latest` or a moving tag), that
`%post` installs exact pins with `jax[cuda12]` (equality with pyproject and env.yml is
tests/unit/test_pins.py), that every `%files` source exists and none of them is the code (the code is
bound at run time), that `%test` imports jax, pcx, submitit and h5py and prints `jax.devices()`, that
nothing sets `LD_LIBRARY_PATH` (it would shadow the pip CUDA libraries) or uses `--cleanenv` (it
strips the SLURM_*/SUBMITIT_* variables submitit needs), the `%environment` defaults, and the labels.
Building and checking the real image on a GPU node: docs/apptainer.md.

Every check is also run on a deliberately broken copy written to a temporary folder.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the pin readers live in test_pins.py, beside this file
from test_pins import DEF_FILE, PYPROJECT, REPO, PinError, def_pins, def_recipe, post_commands, pyproject_pins

CODE_PATHS = {"pc", "launch", "collect", "plots", "scripts", "."}  # bound at run time, never copied in
TEST_IMPORTS = {"jax", "pcx", "submitit", "h5py"}
REQUIRED_LABELS = ("name", "version", "python", "jax", "pcx", "submitit")
ENV_DEFAULTS = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "HDF5_USE_FILE_LOCKING": "FALSE", "PYTHONNOUSERSITE": "1"}
FROM_RE = re.compile(r"python:3\.11\.(\d+)-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?")


def _header_problems(text: str, recipe) -> list[str]:
    problems = []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or lines[0].replace(" ", "").lower() != "bootstrap:docker":
        problems.append(f"header: first line must be 'Bootstrap: docker'; got {lines[0] if lines else ''!r}")
    image = recipe.fromHeader if recipe is not None else ""
    if not FROM_RE.fullmatch(image or ""):
        problems.append(
            f"header: From {image!r} is not a pinned python:3.11 tag; use e.g. python:3.11.11-slim-bookworm "
            "(a full X.Y.Z version, optionally @sha256:<digest>; never 'latest' or 'python:3.11-slim')"
        )
    return problems


def _test_section_commands(recipe) -> list[str]:
    """The original %test lines: spython stores them as `echo "<line>" >> /tests.sh` in install."""
    found = []
    for line in recipe.install:
        m = re.fullmatch(r'echo "(.*)" >> /tests\.sh', line.strip())
        if m:
            found.append(m.group(1))
    return found


def _test_problems(recipe) -> list[str]:
    imported: set[str] = set()
    prints_devices = False
    for command in _test_section_commands(recipe):
        words = shlex.split(command)
        if "-c" not in words or words.index("-c") + 1 >= len(words):
            continue
        try:
            tree = ast.parse(words[words.index("-c") + 1])
        except SyntaxError as e:
            return [f"%test: python -c code does not parse: {e}"]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                prints_devices |= any("jax.devices()" in ast.unparse(a) for a in node.args)
    problems = []
    if missing := sorted(TEST_IMPORTS - imported):
        problems.append(f"%test: must import {', '.join(sorted(TEST_IMPORTS))}; missing {', '.join(missing)}")
    if not prints_devices:
        problems.append("%test: must print(jax.devices()) so a build on a GPU node shows the GPU")
    return problems


def _files_problems(recipe, repo: Path) -> list[str]:
    problems = []
    for entry in recipe.files:
        source = entry.split()[0]
        if source.strip("/").split("/")[0] in CODE_PATHS or source in CODE_PATHS:
            problems.append(f"%files: {source!r} copies the code into the image; it is bound at run time")
        elif not (repo / source).exists():
            problems.append(f"%files: source {source!r} does not exist in the repository ({repo})")
    return problems


def _label_problems(recipe) -> list[str]:
    labels = dict(line.split(None, 1) for line in recipe.labels if line.strip())
    deps, _ = pyproject_pins()
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    m = FROM_RE.fullmatch(recipe.fromHeader or "")
    expected = {
        "name": "pcsweep",
        "version": version,
        "python": f"3.11.{m.group(1)}" if m else None,
        "jax": deps["jax"][1],
        "pcx": deps["pcx"][1],
        "submitit": deps["submitit"][1],
    }
    problems = []
    for key in REQUIRED_LABELS:
        got = labels.get(f"org.pcsweep.{key}")
        if got is None:
            problems.append(f"%labels: org.pcsweep.{key} is missing")
        elif expected[key] is not None and got.strip() != expected[key]:
            problems.append(f"%labels: org.pcsweep.{key} is {got.strip()!r}; expected {expected[key]!r}")
    return problems


def _environment_problems(recipe) -> list[str]:
    env = {}
    for line in recipe.environ:
        name, _, value = line.partition("=")
        value = value.strip().strip('"')
        env[name.strip()] = re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", value)  # ${X:-default} -> default
    return [
        f"%environment: {name} must default to {want}; got {env.get(name)!r}"
        for name, want in ENV_DEFAULTS.items()
        if env.get(name) != want
    ]


def def_problems(path: Path = DEF_FILE, repo: Path = REPO) -> list[str]:
    """Every problem found in an Apptainer definition; [] means it passes the static checks."""
    text = path.read_text()
    try:
        recipe = def_recipe(path)
    except NotImplementedError as e:  # spython supports only Bootstrap: docker
        return _header_problems(text, None) + [f"spython: {e}"]
    problems = _header_problems(text, recipe)
    try:
        pins = def_pins(path)
        if pins.get("jax", ((), ""))[0] != ("cuda12",):
            problems.append("%post: jax must be installed as jax[cuda12]==<pin>")
    except PinError as e:
        problems.append(f"%post: {e}")
    for command in post_commands(recipe.install):
        if re.search(r"pip3? install\b.*(\s-e\s|\s\.(\s|$)|\s\.\[)", command + " "):
            problems.append(f"%post: {command!r} installs the code; it is bound at run time")
    problems += _files_problems(recipe, repo)
    problems += _test_problems(recipe)
    problems += _label_problems(recipe)
    problems += _environment_problems(recipe)
    if "LD_LIBRARY_PATH" in text:
        problems.append("LD_LIBRARY_PATH appears; never override it (it shadows the pip CUDA libraries)")
    commands = recipe.install + recipe.environ + [recipe.cmd or "", recipe.entrypoint or ""]
    if any("--cleanenv" in c for c in commands):
        problems.append("--cleanenv is used; it strips the SLURM_*/SUBMITIT_* variables submitit needs")
    if not re.search(r"^%help\b", text, re.M):
        problems.append("%help section is missing")
    return problems


# ----------------------------------------------------------------------------------------------


def test_the_definition_passes_every_static_check():
    assert def_problems() == []


def test_from_is_a_pinned_python_311_slim_tag():
    assert FROM_RE.fullmatch(def_recipe().fromHeader)
    assert "latest" not in def_recipe().fromHeader


@pytest.fixture
def broken(tmp_path):
    """Write a copy of the definition with one edit and return its problems."""

    def make(old: str, new: str) -> list[str]:
        text = DEF_FILE.read_text()
        assert old in text, f"pcsweep.def no longer contains {old!r}: update this test"
        path = tmp_path / "pcsweep.def"
        path.write_text(text.replace(old, new, 1))
        return def_problems(path)

    return make


FROM = "From: python:3.11.11-slim-bookworm"
TEST_LINE = (
    "print('jax', jax.__version__, 'pcx', m.version('pcx'), 'submitit', submitit.__version__, "
    "'devices:', jax.devices())"
)
TEST_IMPORT = "import importlib.metadata as m, jax, pcx, submitit, h5py;"
NOUSERSITE = "    export PYTHONNOUSERSITE=1\n"
HDF5_LOCKING = '    export HDF5_USE_FILE_LOCKING="${HDF5_USE_FILE_LOCKING:-FALSE}"\n'


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (FROM, "From: python:latest", "is not a pinned python:3.11 tag"),
        (FROM, "From: python:3.11-slim", "is not a pinned python:3.11 tag"),
        (FROM, "From: python:3.12.8-slim-bookworm", "is not a pinned python:3.11 tag"),
        ("Bootstrap: docker", "Bootstrap: library", "first line must be 'Bootstrap: docker'"),
        ('"jax[cuda12]==0.4.38"', '"jax==0.4.38"', "jax must be installed as jax[cuda12]"),
        ('"numpy==2.4.6"', '"numpy"', "'numpy' is not an exact pin"),
        ('"pyyaml==6.0.4"', '"pyyaml==6.0.4" .', "installs the code"),
        ("%files\n", "%files\n    requirements.lock /opt/requirements.lock\n", "'requirements.lock' does not exist"),
        ("%files\n", "%files\n    pc /opt/pcsweep/pc\n", "copies the code into the image"),
        (TEST_IMPORT, TEST_IMPORT.replace(", h5py", ""), "missing h5py"),
        (TEST_LINE, "print('jax', jax.__version__)", "must print(jax.devices())"),
        (NOUSERSITE, NOUSERSITE + "    export LD_LIBRARY_PATH=/usr/local/cuda/lib64\n", "LD_LIBRARY_PATH appears"),
        ('"${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"', "true", "XLA_PYTHON_CLIENT_PREALLOCATE must default to false"),
        (HDF5_LOCKING, "", "HDF5_USE_FILE_LOCKING must default to FALSE"),
        ("org.pcsweep.jax 0.4.38", "org.pcsweep.jax 0.4.37", "org.pcsweep.jax is '0.4.37'; expected '0.4.38'"),
        ("    org.pcsweep.pcx 0.6.3\n", "", "org.pcsweep.pcx is missing"),
        ("org.pcsweep.python 3.11.11", "org.pcsweep.python 3.11.10", "org.pcsweep.python is '3.11.10'"),
        ("%test\n", "%runscript\n    exec apptainer exec --cleanenv img.sif \"$@\"\n\n%test\n", "--cleanenv is used"),
        ("%help\n", "%helpless\n", "%help section is missing"),
    ],
)
def test_a_broken_copy_is_rejected(broken, old, new, expected):
    problems = broken(old, new)
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}; got {problems}"


def test_an_existing_files_source_is_accepted(broken):
    assert broken("%files\n", "%files\n    pyproject.toml /opt/pcsweep/pyproject.toml\n") == []


def test_a_pinned_digest_is_accepted(broken):
    assert broken(FROM, FROM + "@sha256:" + "0" * 64) == []

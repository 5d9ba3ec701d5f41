"""One pinned environment in three files: pyproject.toml, env.yml and apptainer/pcsweep.def agree.

pyproject.toml's `[project] dependencies` are the single source of pins. env.yml's `pip:` list must hold
exactly the same pins; the Apptainer definition's `%post` must `pip install` the same pins with
`jax[cuda12]==<jax pin>` in place of plain jax, and pyproject's `cuda` extra must be that same
`jax[cuda12]` pin. `pcx` is the predictive-coding library; the PyPI name `pcax` is an unrelated
package and must not appear as a dependency anywhere.

The checker functions are also run on deliberately broken copies written to a temporary folder, so
each test shows that the check can fail and that its message names the package and the versions.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
ENV_YML = REPO / "env.yml"
DEF_FILE = REPO / "apptainer" / "pcsweep.def"

# name -> (extras, exact version), e.g. "jax" -> (("cuda12",), "0.4.38")
Pins = dict[str, tuple[tuple[str, ...], str]]


class PinError(ValueError):
    """A requirement that is not an exact `name==version` pin, or a file without the expected list."""


def parse_pins(requirements: list[str], source: str) -> Pins:
    """Parse `name[extras]==version` strings into Pins; anything else is a PinError naming `source`."""
    pins: Pins = {}
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            raise PinError(f"{source}: {text!r} is not a requirement ({e})") from e
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise PinError(f"{source}: {text!r} is not an exact pin (expected name==version)")
        name = canonicalize_name(req.name)
        if name in pins:
            raise PinError(f"{source}: {req.name} is listed twice")
        pins[name] = (tuple(sorted(req.extras)), specs[0].version)
    return pins


def pyproject_pins(path: Path = PYPROJECT) -> tuple[Pins, dict[str, Pins]]:
    """The `[project] dependencies` pins and the pins of each optional-dependency extra."""
    project = tomllib.loads(path.read_text())["project"]
    extras = {
        extra: parse_pins(reqs, f"{path.name} [project.optional-dependencies] {extra}")
        for extra, reqs in project.get("optional-dependencies", {}).items()
    }
    return parse_pins(project["dependencies"], f"{path.name} [project] dependencies"), extras


def env_yml_pins(path: Path = ENV_YML) -> Pins:
    """The pins of env.yml's `pip:` list (an editable install of the project itself is skipped)."""
    env = yaml.safe_load(path.read_text())
    pip_lists = [d["pip"] for d in env.get("dependencies", []) if isinstance(d, dict) and "pip" in d]
    if len(pip_lists) != 1:
        raise PinError(f"{path.name}: expected one `pip:` list under dependencies, found {len(pip_lists)}")
    reqs = [r for r in pip_lists[0] if not re.fullmatch(r"-e\s+\.(\[[\w,-]+\])?", r.strip())]
    return parse_pins(reqs, f"{path.name} pip:")


def post_commands(install_lines: list[str]) -> list[str]:
    """The `%post` shell commands, with backslash-continued lines joined and comments dropped."""
    commands, current = [], ""
    for line in install_lines:
        line = line.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        commands.append(current + line)
        current = ""
    if current:
        commands.append(current)
    return commands


def pip_install_requirements(command: str) -> list[str] | None:
    """The requirement arguments of a `pip install` command, or None if it is no pip install."""
    words = shlex.split(command)
    for i in range(len(words) - 1):
        if words[i].rsplit("/", 1)[-1] in ("pip", "pip3") and words[i + 1] == "install":
            args = words[i + 2 :]
            return [a for a in args if not a.startswith("-")]
    return None


def def_recipe(path: Path = DEF_FILE):
    """The spython recipe of an Apptainer definition (its only stage)."""
    from spython.main.parse.parsers import SingularityParser

    try:
        recipes = SingularityParser(str(path)).recipe
    except SystemExit as e:  # spython calls sys.exit on a missing file
        raise PinError(f"{path}: spython could not read the definition ({e})") from e
    if len(recipes) != 1:
        raise PinError(f"{path}: expected one stage, got {list(recipes)}")
    return next(iter(recipes.values()))


def def_pins(path: Path = DEF_FILE) -> Pins:
    """The pins of every `pip install` in the definition's `%post` (`%test` lines excluded)."""
    lines = [line for line in def_recipe(path).install if not line.rstrip().endswith(">> /tests.sh")]
    reqs: list[str] = []
    for command in post_commands(lines):
        found = pip_install_requirements(command)
        if found is not None:
            reqs += found
    if not reqs:
        raise PinError(f"{path.name}: no `pip install` with requirements in %post")
    return parse_pins(reqs, f"{path.name} %post")


def _fmt(pin: tuple[tuple[str, ...], str] | None) -> str:
    if pin is None:
        return "missing"
    extras, version = pin
    return f"[{','.join(extras)}]=={version}" if extras else f"=={version}"


def pin_disagreements(pyproject: Path = PYPROJECT, env_yml: Path = ENV_YML, def_file: Path = DEF_FILE) -> list[str]:
    """Every disagreement between the three files, one message per package naming all three versions."""
    deps, extras = pyproject_pins(pyproject)
    env = env_yml_pins(env_yml)
    image = def_pins(def_file)
    problems = []
    jax_version = deps.get("jax", ((), None))[1]
    cuda_jax = ((("cuda12",), jax_version))
    for name in sorted(set(deps) | set(env) | set(image)):
        want = deps.get(name)
        image_want = cuda_jax if name == "jax" else want
        if env.get(name) != want or image.get(name) != image_want:
            problems.append(
                f"{name}: pyproject {_fmt(want)}, env.yml {_fmt(env.get(name))}, "
                f"apptainer/pcsweep.def {_fmt(image.get(name))}"
                + (f" (the image must install jax{_fmt(cuda_jax)})" if name == "jax" else "")
            )
    cuda_extra = extras.get("cuda")
    if cuda_extra != {"jax": cuda_jax}:
        shown = ", ".join(f"{n}{_fmt(p)}" for n, p in (cuda_extra or {}).items()) or "missing"
        problems.append(f"pyproject extra `cuda`: got [{shown}]; expected [jax{_fmt(cuda_jax)}] (same jax as the pins)")
    return problems


def pcax_mentions(pyproject: Path = PYPROJECT, env_yml: Path = ENV_YML, def_file: Path = DEF_FILE) -> list[str]:
    """Every place where `pcax` (an unrelated PyPI package) is a dependency or a pip argument."""
    deps, extras = pyproject_pins(pyproject)
    found = [f"{pyproject.name} dependencies" for n in deps if "pcax" in n]
    found += [f"{pyproject.name} extra {e}" for e, pins in extras.items() for n in pins if "pcax" in n]
    env = yaml.safe_load(env_yml.read_text())
    for entry in env.get("dependencies", []):
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        found += [f"{env_yml.name}: {item}" for item in items if "pcax" in str(item).lower()]
    for command in post_commands(def_recipe(def_file).install):
        reqs = pip_install_requirements(command) or []
        found += [f"{def_file.name} %post: {r}" for r in reqs if "pcax" in r.lower()]
    return found


# ----------------------------------------------------------------------------------------------
# The real files


def test_pyproject_env_yml_and_image_pins_agree():
    problems = pin_disagreements()
    assert not problems, "pins disagree (pyproject.toml is the source; fix the others):\n" + "\n".join(problems)


def test_every_dependency_is_an_exact_pin_and_the_image_uses_cuda_jax():
    deps, extras = pyproject_pins()
    assert {"pcx", "jax", "jaxlib", "submitit", "cloudpickle"} <= set(deps)
    assert def_pins()["jax"] == (("cuda12",), deps["jax"][1])
    assert def_pins()["jaxlib"] == deps["jaxlib"]
    assert extras["cuda"] == {"jax": (("cuda12",), deps["jax"][1])}


def test_pcax_is_no_dependency_anywhere():
    assert pcax_mentions() == []


def test_env_yml_is_a_conda_forge_python_311_environment():
    env = yaml.safe_load(ENV_YML.read_text())
    assert env["name"] == "pcsweep"
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


# ----------------------------------------------------------------------------------------------
# The checkers fail on broken copies


@pytest.fixture
def copies(tmp_path):
    """Editable copies of the three files in tmp_path (the def's folder layout is irrelevant here)."""
    paths = {"pyproject": tmp_path / "pyproject.toml", "env": tmp_path / "env.yml", "def": tmp_path / "pcsweep.def"}
    paths["pyproject"].write_text(PYPROJECT.read_text())
    paths["env"].write_text(ENV_YML.read_text())
    paths["def"].write_text(DEF_FILE.read_text())
    return paths


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def _check(paths) -> list[str]:
    return pin_disagreements(paths["pyproject"], paths["env"], paths["def"])


def test_unchanged_copies_agree(copies):
    assert _check(copies) == []


def test_a_changed_env_yml_pin_is_reported_with_all_three_versions(copies):
    _edit(copies["env"], "- numpy==2.4.6", "- numpy==2.4.5")
    assert _check(copies) == [
        "numpy: pyproject ==2.4.6, env.yml ==2.4.5, apptainer/pcsweep.def ==2.4.6"
    ]


def test_a_changed_image_pin_is_reported(copies):
    _edit(copies["def"], '"pcx==0.6.3"', '"pcx==0.6.2"')
    assert _check(copies) == ["pcx: pyproject ==0.6.3, env.yml ==0.6.3, apptainer/pcsweep.def ==0.6.2"]


def test_plain_jax_in_the_image_is_reported(copies):
    _edit(copies["def"], '"jax[cuda12]==0.4.38"', '"jax==0.4.38"')
    (problem,) = _check(copies)
    assert problem.startswith("jax: pyproject ==0.4.38, env.yml ==0.4.38, apptainer/pcsweep.def ==0.4.38")
    assert "must install jax[cuda12]==0.4.38" in problem


def test_a_pin_changed_only_in_pyproject_is_reported(copies):
    _edit(copies["pyproject"], '"h5py==3.16.0"', '"h5py==3.15.0"')
    assert _check(copies) == ["h5py: pyproject ==3.15.0, env.yml ==3.16.0, apptainer/pcsweep.def ==3.16.0"]


def test_a_package_missing_from_env_yml_is_reported(copies):
    _edit(copies["env"], "      - tqdm==4.70.1\n", "")
    assert _check(copies) == ["tqdm: pyproject ==4.70.1, env.yml missing, apptainer/pcsweep.def ==4.70.1"]


def test_an_extra_package_in_the_image_is_reported(copies):
    _edit(copies["def"], '"pyyaml==6.0.4"', '"pyyaml==6.0.4" "rich==14.0.0"')
    assert _check(copies) == ["rich: pyproject missing, env.yml missing, apptainer/pcsweep.def ==14.0.0"]


def test_a_wrong_cuda_extra_is_reported(copies):
    _edit(copies["pyproject"], 'cuda = ["jax[cuda12]==0.4.38"]', 'cuda = ["jax[cuda12]==0.4.37"]')
    (problem,) = _check(copies)
    assert problem.startswith("pyproject extra `cuda`: got [jax[cuda12]==0.4.37]")


def test_an_unpinned_requirement_is_an_error(copies):
    _edit(copies["def"], '"optax==0.2.5"', '"optax>=0.2"')
    with pytest.raises(PinError, match="optax>=0.2.*not an exact pin"):
        _check(copies)


def test_pcax_is_found_where_it_is_added(copies):
    _edit(copies["env"], "- pcx==0.6.3", "- pcax==0.6.3")
    _edit(copies["def"], '"pcx==0.6.3"', '"pcax==0.6.3"')
    assert pcax_mentions(copies["pyproject"], copies["env"], copies["def"]) == [
        "env.yml: pcax==0.6.3",
        "pcsweep.def %post: pcax==0.6.3",
    ]

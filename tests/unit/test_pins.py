"""One pinned environment in three files: pyproject.toml, env.yml and apptainer/pcsweep.def agree.

pyproject.toml's `[project] dependencies` are the single source of pins. env.yml's `pip:` list must hold
exactly the same pins; the Apptainer definition's `%post` must `pip install` the same pins with
`jax[cuda12]==<jax pin>` in place of plain jax, and pyproject's `cuda` extra must be that same
`jax[cuda12]` pin. `pcx` is the predictive-coding library; the PyPI name `pcax` is an unrelated
package and must not appear as a dependency anywhere.

`jax[cuda12]` itself asks for the nvidia-* CUDA wheels with lower bounds only, so constraints-cuda.txt
(written by scripts/pin-cuda from a pip dry-run resolution) pins every package it pulls in exactly. The
constraint checks below keep that file from drifting: it pins jax, jaxlib and both CUDA plugin packages
at pyproject's jax version, agrees with pyproject on every package both name, and is used with `-c` by
the three installs of the CUDA path: the image's `%post` (copied in by `%files`), env.yml's `pip:` list
and `make gpu-check`'s install of the `cuda` extra.

The checker functions are also run on deliberately broken copies written to a temporary folder, so
each test shows that the check can fail and that its message names the package and the versions.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
ENV_YML = REPO / "env.yml"
DEF_FILE = REPO / "apptainer" / "pcsweep.def"
CONSTRAINTS = REPO / "constraints-cuda.txt"
MAKEFILE = REPO / "Makefile"
CUDA_JAX_PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt")  # all at the jax pin
CUDA_LIBS = ("nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12")  # must be pinned

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
    reqs = [r for r in pip_lists[0] if not re.fullmatch(r"-e\s+\.(\[[\w,-]+\])?|-c\s+\S+", r.strip())]
    return parse_pins(reqs, f"{path.name} pip:")


def env_yml_constraint_files(path: Path = ENV_YML) -> list[str]:
    """The files named by `-c FILE` entries of env.yml's `pip:` list."""
    env = yaml.safe_load(path.read_text())
    entries = [e for d in env.get("dependencies", []) if isinstance(d, dict) for e in d.get("pip", [])]
    return [m.group(1) for e in entries if (m := re.fullmatch(r"-c\s+(\S+)", str(e).strip()))]


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


class PipInstall(NamedTuple):
    """The arguments of one `pip install` command: requirements and the files given with -c."""

    requirements: list[str]
    constraints: list[str]


VALUE_OPTIONS = {"-c", "--constraint", "-r", "--requirement", "-e", "--editable", "-i", "--index-url",
                 "--extra-index-url", "-f", "--find-links", "-t", "--target", "--report"}


def pip_install_args(command: str) -> PipInstall | None:
    """Split a `pip install` command into requirements and `-c` files; None if it is no pip install."""
    words = shlex.split(command)
    for i in range(len(words) - 1):
        if words[i].rsplit("/", 1)[-1] in ("pip", "pip3") and words[i + 1] == "install":
            found = PipInstall([], [])
            args = iter(words[i + 2 :])
            for arg in args:
                if arg in VALUE_OPTIONS:
                    value = next(args, "")
                    if arg in ("-c", "--constraint"):
                        found.constraints.append(value)
                    elif arg in ("-e", "--editable"):
                        found.requirements.append(value)
                elif arg.startswith("--constraint="):
                    found.constraints.append(arg.split("=", 1)[1])
                elif not arg.startswith("-"):
                    found.requirements.append(arg)
            return found
    return None


def pip_install_requirements(command: str) -> list[str] | None:
    """The requirement arguments of a `pip install` command, or None if it is no pip install."""
    found = pip_install_args(command)
    return None if found is None else found.requirements


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


def pcax_mentions(
    pyproject: Path = PYPROJECT, env_yml: Path = ENV_YML, def_file: Path = DEF_FILE, constraints: Path = CONSTRAINTS
) -> list[str]:
    """Every place where `pcax` (an unrelated PyPI package) is a dependency, a constraint or a pip argument."""
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
    found += [f"{constraints.name}: {n}" for n in constraint_pins(constraints) if "pcax" in n]
    return found


def constraint_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """name -> exact version of a constraints file; pip forbids extras in constraints, so they are errors."""
    if not path.is_file():
        raise PinError(f"{path.name} is missing; write it with scripts/pin-cuda")
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    pins = parse_pins([ln for ln in lines if ln], path.name)
    if extras := [n for n, (x, _) in pins.items() if x]:
        raise PinError(f"{path.name}: constraints cannot carry extras ({', '.join(extras)})")
    return {name: version for name, (_, version) in pins.items()}


def def_constraint_files(def_file: Path = DEF_FILE) -> tuple[dict[str, str], list[str]]:
    """The definition's `%files` (source -> destination) and the `-c` files of the pip install of jax[cuda12]."""
    recipe = def_recipe(def_file)
    copied = dict((e.split() + [e.split()[0]])[:2] for e in recipe.files if e.strip())
    used: list[str] = []
    for command in post_commands(recipe.install):
        found = pip_install_args(command)
        if found and any(r.startswith("jax[cuda12]") for r in found.requirements):
            used += found.constraints
    return copied, used


def makefile_cuda_install(makefile: Path = MAKEFILE) -> PipInstall | None:
    """The pip install of the `cuda` extra in the Makefile's gpu-check recipe, or None if there is none."""
    recipe, inside = [], False
    for line in makefile.read_text().splitlines():
        if re.match(r"gpu-check\s*:", line):
            inside = True
        elif inside and line.startswith("\t"):
            recipe.append(line.strip())
        elif inside and line.strip():
            break
    for command in recipe:
        found = pip_install_args(command.replace("$(BIN)/python -m pip", "pip"))
        if found and any(".[cuda]" in r for r in found.requirements):
            return found
    return None


def constraint_problems(
    pyproject: Path = PYPROJECT,
    env_yml: Path = ENV_YML,
    def_file: Path = DEF_FILE,
    constraints: Path = CONSTRAINTS,
    makefile: Path = MAKEFILE,
) -> list[str]:
    """Every way constraints-cuda.txt disagrees with the pins, or is not used by the three CUDA-path installs."""
    deps, _ = pyproject_pins(pyproject)
    pins = constraint_pins(constraints)
    name = constraints.name
    jax_version = deps["jax"][1]
    problems = [
        f"{name}: {p} is {pins.get(p, 'missing')}; expected {jax_version} (pyproject's jax pin): run scripts/pin-cuda"
        for p in CUDA_JAX_PACKAGES
        if pins.get(p) != jax_version
    ]
    problems += [f"{name}: {lib} is missing; run scripts/pin-cuda" for lib in CUDA_LIBS if lib not in pins]
    problems += [
        f"{name}: {p}=={pins[p]} but pyproject.toml pins {p}=={deps[p][1]}: run scripts/pin-cuda"
        for p in sorted(set(pins) & set(deps))
        if pins[p] != deps[p][1]
    ]
    header = constraints.read_text()
    if "Produced by: scripts/pin-cuda" not in header or f"jax[cuda12]=={jax_version}" not in header:
        problems.append(f"{name}: the header must say it was made by scripts/pin-cuda for jax[cuda12]=={jax_version}")
    copied, used = def_constraint_files(def_file)
    if name not in copied:
        problems.append(f"{def_file.name}: %files must copy {name} into the image")
    elif copied[name] not in used:
        problems.append(f"{def_file.name}: the pip install of jax[cuda12] must use -c {copied[name]}")
    if name not in env_yml_constraint_files(env_yml):
        problems.append(f"{env_yml.name}: the pip: list must hold `-c {name}`")
    cuda_install = makefile_cuda_install(makefile)
    if cuda_install is None or name not in cuda_install.constraints:
        problems.append(f"{makefile.name}: gpu-check must install '.[cuda]' with -c {name}")
    return problems


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


def test_the_cuda_constraints_agree_and_are_used_by_every_cuda_install():
    problems = constraint_problems()
    assert not problems, "constraints-cuda.txt drifted (regenerate: scripts/pin-cuda):\n" + "\n".join(problems)


def test_the_cuda_constraints_pin_the_cuda_wheels_exactly():
    pins = constraint_pins()
    deps, _ = pyproject_pins()
    assert {p: pins[p] for p in CUDA_JAX_PACKAGES} == dict.fromkeys(CUDA_JAX_PACKAGES, deps["jax"][1])
    nvidia = [n for n in pins if n.startswith("nvidia-")]
    assert set(CUDA_LIBS) <= set(nvidia) and all(n.endswith("-cu12") for n in nvidia)


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
    paths = {"pyproject": tmp_path / "pyproject.toml", "env": tmp_path / "env.yml", "def": tmp_path / "pcsweep.def",
             "constraints": tmp_path / CONSTRAINTS.name, "make": tmp_path / "Makefile"}
    for key, real in (("pyproject", PYPROJECT), ("env", ENV_YML), ("def", DEF_FILE), ("constraints", CONSTRAINTS),
                      ("make", MAKEFILE)):
        paths[key].write_text(real.read_text())
    return paths


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def _check(paths) -> list[str]:
    return pin_disagreements(paths["pyproject"], paths["env"], paths["def"])


def _check_constraints(paths) -> list[str]:
    return constraint_problems(paths["pyproject"], paths["env"], paths["def"], paths["constraints"], paths["make"])


def test_unchanged_copies_agree(copies):
    assert _check(copies) == []
    assert _check_constraints(copies) == []


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
    assert pcax_mentions(copies["pyproject"], copies["env"], copies["def"], copies["constraints"]) == [
        "env.yml: pcax==0.6.3",
        "pcsweep.def %post: pcax==0.6.3",
    ]


def test_pcax_in_the_constraints_is_found(copies):
    _edit(copies["constraints"], "jax==0.4.38\n", "jax==0.4.38\npcax==0.1.0\n")
    assert pcax_mentions(copies["pyproject"], copies["env"], copies["def"], copies["constraints"]) == [
        "constraints-cuda.txt: pcax"
    ]


@pytest.mark.parametrize(
    ("key", "old", "new", "expected"),
    [
        ("constraints", "jax-cuda12-plugin==0.4.38", "jax-cuda12-plugin==0.4.37",
         "constraints-cuda.txt: jax-cuda12-plugin is 0.4.37; expected 0.4.38"),
        ("constraints", "jax==0.4.38\n", "", "constraints-cuda.txt: jax is missing; expected 0.4.38"),
        ("constraints", "numpy==2.4.6", "numpy==2.4.5",
         "constraints-cuda.txt: numpy==2.4.5 but pyproject.toml pins numpy==2.4.6"),
        ("constraints", "nvidia-cudnn-cu12==", "nvidia-cudnn-cu11==",
         "constraints-cuda.txt: nvidia-cudnn-cu12 is missing"),
        ("constraints", "Produced by: scripts/pin-cuda", "Produced by: hand",
         "the header must say it was made by scripts/pin-cuda"),
        ("pyproject", '"jax==0.4.38"', '"jax==0.4.37"',
         "constraints-cuda.txt: jax-cuda12-pjrt is 0.4.38; expected 0.4.37"),
        ("def", "    constraints-cuda.txt /opt/constraints-cuda.txt\n", "",
         "pcsweep.def: %files must copy constraints-cuda.txt into the image"),
        ("def", "pip install -c /opt/constraints-cuda.txt", "pip install",
         "pcsweep.def: the pip install of jax[cuda12] must use -c /opt/constraints-cuda.txt"),
        ("env", "      - -c constraints-cuda.txt\n", "", "env.yml: the pip: list must hold `-c constraints-cuda.txt`"),
        ("make", "'.[cuda]' -c constraints-cuda.txt", "'.[cuda]'",
         "Makefile: gpu-check must install '.[cuda]' with -c constraints-cuda.txt"),
    ],
)
def test_a_drifted_cuda_constraint_is_reported(copies, key, old, new, expected):
    _edit(copies[key], old, new)
    problems = _check_constraints(copies)
    assert any(expected in p for p in problems), f"expected a problem containing {expected!r}; got {problems}"


def test_an_unpinned_or_extra_carrying_constraint_is_an_error(copies):
    _edit(copies["constraints"], "scipy==1.17.1", "scipy>=1.17")
    with pytest.raises(PinError, match="scipy>=1.17.*not an exact pin"):
        _check_constraints(copies)
    _edit(copies["constraints"], "scipy>=1.17", "scipy[dev]==1.17.1")
    with pytest.raises(PinError, match="constraints cannot carry extras"):
        _check_constraints(copies)


def test_a_missing_constraints_file_is_an_error(copies):
    copies["constraints"].unlink()
    with pytest.raises(PinError, match="constraints-cuda.txt is missing; write it with scripts/pin-cuda"):
        _check_constraints(copies)

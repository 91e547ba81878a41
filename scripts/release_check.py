"""Build, check and install the distributions; run `python -m django` commands from the installed wheel.

Run through ./scripts/release-check (which installs the `release` extra). See docs/release.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODELS = '''from django.db import models


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
'''


def step(title: str) -> None:
    print(f"== {title}", flush=True)


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"FAILED ({proc.returncode}): {' '.join(map(str, args))}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def check_contents(wheel: Path, sdist: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "tablemigrate/py.typed" in names, "the wheel has no py.typed"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "the wheel has no LICENSE"
    assert not any(n.startswith("tests/") for n in names), "the wheel carries tests"
    with tarfile.open(sdist) as tar:
        members = [m.split("/", 1)[1] for m in tar.getnames() if "/" in m]
    for required in ("LICENSE", "README.md", "CHANGELOG.md", "tablemigrate/py.typed", "pyproject.toml"):
        assert required in members, f"the sdist has no {required}"
    assert not any(m.startswith("tests/") for m in members), "the sdist carries tests"


def check_classifiers(wheel: Path) -> None:
    from trove_classifiers import classifiers as known

    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    declared = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Classifier: ")]
    unknown = [c for c in declared if c not in known]
    assert not unknown, f"classifiers PyPI does not know: {unknown}"
    print(f"{len(declared)} classifiers, all known; License-Expression: MIT" if "License-Expression: MIT" in text
          else "no License-Expression")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tablemigrate-release-") as tmp_name:
        tmp = Path(tmp_name)
        dist = tmp / "dist"
        step("build the sdist and the wheel")
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
        wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
        print(wheel.name, sdist.name)
        step("twine check --strict")
        print(run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist).strip())
        step("contents and classifiers")
        check_contents(wheel, sdist)
        check_classifiers(wheel)
        step("install the wheel in a new virtualenv")
        venv = tmp / "venv"
        run(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
        where = run(python, "-c", "import tablemigrate; print(tablemigrate.__file__, tablemigrate.__version__)",
                    cwd=tmp, env=env)
        assert str(venv) in where, f"tablemigrate imported from {where}"
        print(where.strip())
        step("python -m django commands on a tiny project")
        site = tmp / "site"
        site.mkdir()
        run(python, "-m", "django", "startproject", "mysite", site, env=env)
        run(python, "-m", "django", "startapp", "blog", cwd=site, env=env)
        (site / "blog" / "models.py").write_text(MODELS)
        settings = site / "mysite" / "settings.py"
        settings.write_text(settings.read_text().replace("'django.contrib.staticfiles',",
                                                         "'django.contrib.staticfiles',\n    'tablemigrate',\n    'blog',"))
        project_env = dict(env, DJANGO_SETTINGS_MODULE="mysite.settings")
        for args in (("tablemigrate", "--help"), ("tablemigrate", "generate", "Initial", "--noinput"),
                     ("tablemigrate", "run", "--noinput"), ("tablemigrate", "show", "--no-sql"),
                     ("tablemigrate", "generate", "--check", "--noinput"), ("check",)):
            out = run(python, "-m", "django", *args, cwd=site, env=project_env)
            print(f"python -m django {' '.join(args)}: ok ({len(out.splitlines())} lines)")
        step("the demo on the example project, from the wheel")
        example = tmp / "example"
        example.mkdir()
        shutil.copy(ROOT / "manage.py", example)
        shutil.copytree(ROOT / "example_project", example / "example_project",
                        ignore=shutil.ignore_patterns("*.sqlite3*", "backups", "__pycache__"))
        for args in (("generate", "--noinput"), ("show",), ("run", "--noinput")):
            run(python, "manage.py", "tablemigrate", *args, cwd=example, env=env)
            print(f"manage.py tablemigrate {' '.join(args)}: ok")
    print("release checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

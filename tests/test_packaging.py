"""The package's metadata agrees with itself: one version, the Django range, the classifiers and tox's
environments; the licence and py.typed ship; the sdist carries no tests; the docs tools stay out of the
`test` extra. Building and installing the distributions is scripts/release-check (docs/release.md)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

import tablemigrate

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+; the other versions check this")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def minors(classifiers: list[str], prefix: str) -> list[tuple[int, int]]:
    found = [c.removeprefix(prefix) for c in classifiers if c.startswith(prefix)]
    return sorted(tuple(map(int, v.split("."))) for v in found if re.fullmatch(r"\d+\.\d+", v))  # type: ignore[misc]


def tox_pairs() -> set[tuple[tuple[int, int], tuple[int, int]]]:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    pairs = set()
    for env in tox["tox"]["envlist"].split():
        m = re.fullmatch(r"py3(\d+)-django(\d)(\d)(-\w+)?", env)  # a suffix: an env for one integration
        assert m, env
        pairs.add(((3, int(m[1])), (int(m[2]), int(m[3]))))
    return pairs


def test_one_version_source(pyproject, project):
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tablemigrate.__version__"}
    # The CHANGELOG's first section names the version under way ("Unreleased (0.3: ...)" or "0.3.0").
    heading = next(line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    upcoming = re.search(r"\d+\.\d+", heading)
    assert upcoming is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", tablemigrate.__version__)
    assert tablemigrate.__version__.startswith(upcoming[0] + ".")


def test_the_declared_django_range_is_what_the_classifiers_and_tox_cover(project):
    django = next(d for d in project["dependencies"] if d.startswith("Django"))
    m = re.fullmatch(r"Django>=(\d+)\.(\d+),<(\d+)\.(\d+)", django.replace(" ", ""))
    assert m, f"{django}: declare the range with an upper bound"
    lower, upper = (int(m[1]), int(m[2])), (int(m[3]), int(m[4]))
    declared = minors(project["classifiers"], "Framework :: Django :: ")
    assert declared[0] == lower
    assert upper == (declared[-1][0], declared[-1][1] + 1)  # every minor up to the last classifier
    assert {d for _p, d in tox_pairs()} == set(declared)


def test_every_python_classifier_is_tested_and_required(project):
    pythons = minors(project["classifiers"], "Programming Language :: Python :: ")
    assert project["requires-python"] == f">={pythons[0][0]}.{pythons[0][1]}"
    assert {p for p, _d in tox_pairs()} == set(pythons)


def test_licence_typing_and_sdist_contents(pyproject, project):
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Typing :: Typed" in project["classifiers"]
    assert (ROOT / "tablemigrate" / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["tablemigrate"]
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "prune tests" in manifest and "include LICENSE README.md CHANGELOG.md" in manifest
    assert set(project["urls"]) >= {"Documentation", "Source", "Changelog"}


def test_the_docs_tools_are_their_own_extra_and_the_suite_installs_both(project):
    extras = project["optional-dependencies"]
    assert not any(r.startswith("mkdocs") for r in extras["test"])
    assert any(r.startswith("mkdocs-material") for r in extras["docs"])
    assert "-e '.[test,docs,djlt]'" in (ROOT / "scripts" / "test").read_text()
    # dj-lite-tenant (tests/test_dj_lite_tenant.py) needs Django >= 5.1: never in `test`, which tox pairs with 4.2
    assert not any("dj-lite-tenant" in r for r in extras["test"])
    assert all("python_version >= '3.11'" in r for r in extras["djlt"])

"""The project's metadata: a license setuptools accepts without a deprecation warning, a citation file."""

from __future__ import annotations

import warnings

import pytest
import yaml

from tests.conftest import REPO


def test_pyproject_license_is_an_spdx_string_without_warnings():
    """The issue: every install printed setuptools' `project.license` (TOML table) deprecation warning."""
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = pyprojecttoml.apply_configuration(Distribution(), str(REPO / "pyproject.toml"))
    assert not [w for w in caught if "license" in str(w.message).lower()]
    assert getattr(dist.metadata, "license_expression", None) == "MIT"


def test_citation_file_names_the_paper_and_the_software():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Prompted Contrastive Learning for Skeleton-based Action Recognition"
    assert [a["family-names"] for a in paper["authors"]] == ["Su", "Liu", "Wang"]
    assert "Circuits and Systems for Video Technology" in paper["journal"] and paper["year"] == 2026
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "CITATION.cff" in readme and "Prompted Contrastive Learning for Skeleton-based Action Recognition" in readme

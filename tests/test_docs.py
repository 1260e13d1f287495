"""The API reference builds from the docstrings with warnings as errors (``python docs/build_api.py``), every
documented public name has a docstring, and the shared parameter docs are filled in."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build_api():
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("pdoc")
    build = _build_api()
    files = build.build(tmp_path / "api")
    names = {p.relative_to(tmp_path / "api").as_posix() for p in files}
    assert "seegaan.html" in names and "seegaan/stats.html" in names and "seegaan/options.html" in names
    page = (tmp_path / "api" / "seegaan" / "options.html").read_text()
    assert "TestOptions" in page and "%(" not in page  # the shared parameter docs were filled in


def test_a_broken_module_fails_the_build_and_leaves_nothing(tmp_path):
    pytest.importorskip("pdoc")
    build = _build_api()
    build.MODULES = [*build.MODULES, "seegaan.no_such_module"]
    with pytest.raises(Warning):
        build.build(tmp_path / "api")
    assert not (tmp_path / "api").exists() and not list(tmp_path.glob(".api-*"))


def test_every_documented_public_name_has_a_docstring():
    build = _build_api()
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in build.MODULES:
            module = importlib.import_module(name)
            if not (module.__doc__ or "").strip():
                missing.append(name)
            for attr in getattr(module, "__all__", ()):
                value = getattr(module, attr)
                if (callable(value) or isinstance(value, type)) and not (getattr(value, "__doc__", "") or "").strip():
                    missing.append(f"{name}.{attr}")
    assert not missing, missing


def test_fill_doc_fills_and_refuses_unknown_names():
    from seegaan._internal.docs import docdict, fill_doc

    @fill_doc
    def f():
        """Do it.

        Parameters
        ----------
        %(alpha)s
        """

    assert docdict["alpha"].strip().splitlines()[0] in f.__doc__ and "%(" not in f.__doc__
    with pytest.raises(KeyError, match="no docdict entry 'nope'"):

        @fill_doc
        def g():
            """%(nope)s"""


def test_no_placeholder_is_left_in_a_public_docstring():
    import seegaan

    for name in ("sequence", "local_sequence", "pixel_test"):
        assert "%(" not in getattr(seegaan, name).__doc__, name
    from seegaan.options import TestOptions

    assert "%(" not in TestOptions.__doc__


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    import re

    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    import re

    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """Every link to a file of the repository exists, and every #anchor names a heading of its page."""
    import re

    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"]
    pages += sorted((ROOT / "docs").glob("*.md"))
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif ROOT not in dest.parents and dest != ROOT:
                broken.append(f"{page.name}: {target} (outside the repository)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)

"""The README and the documentation site: they build, their links resolve, their commands parse.

What a reader copies from the docs must work as written: the site builds with ``mkdocs --strict``
(no page left out of the nav, no broken link or anchor), every shell command in a ``bash``/``sh``
block parses with the flags of the script it calls, every repository path and ``tl_jax.*`` name
the text mentions exists, and the Python examples import what the package has.
"""

import ast
import glob
import importlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

from markdown.extensions import toc
import pytest
import yaml

import doc_commands

ROOT = doc_commands.ROOT
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# README and the pages, plus BENCHMARKS.md for links and paths (its commands are historical records
# of runs, some with argparse benchmark scripts; they are not parsed).
TEXTS = [ROOT / "README.md", *PAGES]
LINKED = [*TEXTS, ROOT / "BENCHMARKS.md"]
QUICKSTART = ("pip install -e . && python scripts/train.py --config configs/quickstart.py "
              "--workdir runs/quickstart")
TESTS = """pip install -e '.[test]' && python -m pytest -m "not slow" -n 2"""
# Programs a documented command may call besides python, pip and scripts/*.sh; their arguments
# are checked only where they name repository paths.
EXTERNAL = {"mkdocs", "tensorboard", "jupyter", "tfds"}
REPO_DIRS = ("tl_jax", "configs", "scripts", "tests", "notebooks", "docs")


def _rel(path: pathlib.Path) -> str:
  return str(path.relative_to(ROOT))


def _mkdocs_build(config_file: pathlib.Path, site_dir: pathlib.Path) -> subprocess.CompletedProcess:
  env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about MkDocs 2.0
  return subprocess.run(
      [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config_file),
       "--site-dir", str(site_dir)],
      cwd=config_file.parent, env=env, capture_output=True, text=True, timeout=300)


def test_site_builds_strict(tmp_path):
  result = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
  assert result.returncode == 0, result.stdout + result.stderr
  for page in PAGES:
    built = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
    assert (tmp_path / "site" / built).is_file(), built
  # The figures the studies page shows travel with the site.
  assert sorted(p.name for p in (tmp_path / "site" / "results").glob("*.png")) == sorted(
      p.name for p in (DOCS / "results").glob("*.png"))


def test_strict_build_fails_on_broken_link_and_page_outside_nav(tmp_path):
  # mkdocs.yml's `validation` must make these warnings (and so errors under --strict), or the
  # test above would pass over a broken site.
  shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
  shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "*.csv"))
  (tmp_path / "docs" / "orphan.md").write_text("# Not in the nav\n")
  result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
  out = result.stdout + result.stderr
  assert result.returncode != 0 and "orphan.md" in out, out
  (tmp_path / "docs" / "orphan.md").unlink()
  with open(tmp_path / "docs" / "data.md", "a") as f:
    f.write("\n[gone](no_such_page.md) [no anchor](zoo.md#no-such-heading)\n")
  result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
  out = result.stdout + result.stderr
  assert result.returncode != 0 and "no_such_page.md" in out and "no-such-heading" in out, out


def _nav_pages(nav) -> list[str]:
  if isinstance(nav, str):
    return [nav]
  if isinstance(nav, dict):
    return [p for v in nav.values() for p in _nav_pages(v)]
  return [p for item in nav for p in _nav_pages(item)]


def test_nav_lists_every_page_once():
  nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
  assert sorted(nav) == sorted(p.name for p in PAGES)


def test_readme_keeps_the_two_commands_verbatim():
  readme = (ROOT / "README.md").read_text()
  blocks = [b.strip() for b in doc_commands.fenced_blocks(readme, ("bash", "sh"))]
  assert QUICKSTART in blocks and TESTS in blocks
  # .ci/run runs the README's test command verbatim.
  assert TESTS in (ROOT / ".ci" / "run").read_text().splitlines()


def _extras() -> set[str]:
  return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _expand(path: str) -> list[str]:
  """``a/{b,c}.py`` -> ``[a/b.py, a/c.py]`` (one brace group, as the docs write them)."""
  m = re.search(r"\{([^{}]*)\}", path)
  if not m:
    return [path]
  return [p for alt in m[1].split(",") for p in _expand(path[:m.start()] + alt + path[m.end():])]


def _missing_paths(words) -> list[str]:
  """The words that name a repository path (``tests/x.py``, ``notebooks/*.ipynb``) that does not exist."""
  missing = []
  for word in words:
    for path in _expand(word.rstrip(".,;:)")):
      path = re.sub(r"(\.py):.*$", r"\1", path)  # tests/x.py::node, configs/x.py:ARG
      if path.split("/")[0] in REPO_DIRS and "/" in path and not glob.glob(str(ROOT / path)):
        missing.append(path)
  return missing


def _check_command(argv: list[str], extras: set[str]) -> None:
  while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", argv[0]):  # KEY=value prefixes
    argv = argv[1:]
  program, args = argv[0], argv[1:]
  assert not _missing_paths(args), f"{argv}: no such path {_missing_paths(args)}"
  if program == "python" and args[:1] == ["-c"]:
    compile(args[1], "<python -c>", "exec")
  elif program == "python" and args[:2] == ["-m", "tl_jax"] or program == "tl-jax":
    doc_commands.parse_script(argv)  # the installed command: its flags, --config NAME a packaged config
  elif program == "python" and args[:1] == ["-m"]:
    assert args[1] in ("pytest", "mkdocs"), argv
  elif program == "python":
    assert re.fullmatch(r"scripts/\w+\.py", args[0]) and (ROOT / args[0]).is_file(), argv
    doc_commands.parse_script(argv)  # unknown flags, config keys or values raise
  elif program == "pip":
    for arg in args:
      if m := re.fullmatch(r"(?:\.|tl_jax)\[([\w,-]+)\]", arg):
        assert set(m[1].split(",")) <= extras, f"{argv}: extras {m[1]} not all in pyproject.toml ({extras})"
  elif program.startswith("scripts/"):
    assert os.access(ROOT / program, os.X_OK), f"{program} is not an executable file"
  else:
    assert program in EXTERNAL, f"{argv}: unknown program {program!r}; teach tests/test_docs.py to check it"


@pytest.mark.parametrize("path", TEXTS, ids=_rel)
def test_documented_shell_commands_parse(path, monkeypatch):
  monkeypatch.chdir(ROOT)  # the documented commands run from the repository root
  extras = _extras()
  commands = [c for block in doc_commands.fenced_blocks(path.read_text(), ("bash", "sh"))
              for c in doc_commands.shell_commands(block)]
  for argv in commands:
    _check_command(argv, extras)


def _links(text: str) -> list[str]:
  """Markdown link and image targets, without titles."""
  return [m[1] for m in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)]


def _anchors(markdown: str) -> set[str]:
  """The ids mkdocs gives the headings of a page (Python-Markdown's toc slugs)."""
  markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)  # a `# comment` is no heading
  return {toc.slugify(m[1].strip(), "-") for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", markdown, re.M)}


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "BENCHMARKS.md"], ids=_rel)
def test_relative_links_point_to_existing_files(path):
  # docs/ pages are checked by the strict build; these files sit outside the site.
  broken = []
  for target in _links(path.read_text()):
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
      continue
    file, _, anchor = target.partition("#")
    resolved = (path.parent / file).resolve()
    if not resolved.exists():
      broken.append(target)
    elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text()):
      broken.append(target)
  assert not broken, f"{_rel(path)}: broken links {broken}"


@pytest.mark.parametrize("path", LINKED, ids=_rel)
def test_named_repository_paths_exist(path):
  text = path.read_text()
  words = re.findall(rf"(?<![\w/.-])((?:{'|'.join(REPO_DIRS)})/[\w./*{{}},-]*)", text)
  assert not _missing_paths(words), f"{_rel(path)} names missing paths {sorted(set(_missing_paths(words)))}"


def _resolve(dotted: str) -> None:
  """Imports the longest module prefix of ``dotted`` and reads the rest as attributes."""
  parts = dotted.split(".")
  for i in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:i]))
    except ModuleNotFoundError:
      continue
    for name in parts[i:]:
      obj = getattr(obj, name)  # AttributeError names what is missing
    return
  raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("path", TEXTS, ids=_rel)
def test_named_api_exists(path):
  # `tl_jax.a.b` in the prose: the docs follow the package when it moves.
  for dotted in sorted(set(re.findall(r"`(tl_jax(?:\.\w+)+)", path.read_text()))):
    _resolve(dotted)


@pytest.mark.parametrize("path", TEXTS, ids=_rel)
def test_python_examples_use_the_real_api(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  for block in doc_commands.fenced_blocks(path.read_text(), ("python",)):
    tree = ast.parse(block)  # a SyntaxError names the example
    modules = {}  # local name -> dotted module or object path
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in ("tl_jax", "configs"):
        for alias in node.names:
          modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
      elif isinstance(node, ast.Import):
        for alias in node.names:
          if alias.name.split(".")[0] in ("tl_jax", "configs"):
            modules[alias.asname or alias.name] = alias.name
    for dotted in modules.values():
      _resolve(dotted)
    for node in ast.walk(tree):
      # module.function(...) on an imported tl_jax name: the function must exist.
      if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        _resolve(f"{modules[node.value.id]}.{node.attr}")

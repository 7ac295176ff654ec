"""The documentation a newcomer reads: a short front page, links that resolve, every command findable."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = ["inference", "training", "evaluation", "motion_extraction", "web_demo", "demo_model", "benchmarks",
         "architecture", "memory", "retargeting"]


def _links(path: Path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if not target.startswith(("http://", "https://")):
            yield target


def test_readme_is_a_front_page_that_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in PAGES:
        assert (REPO / "docs" / f"{page}.md").is_file(), page
        assert f"docs/{page}.md" in readme, page


def test_relative_links_resolve():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in _links(doc):
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_every_script_and_console_command_is_documented():
    text = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    for script in sorted((REPO / "scripts").glob("*.py")):
        assert f"{script.name}" in text, f"scripts/{script.name} is not mentioned in README.md or docs/"
    # the console commands are named for the scripts (magicanimate-<script with dashes>)
    project = (REPO / "pyproject.toml").read_text()
    commands = re.findall(r"^(magicanimate-[a-z-]+) = ", project, flags=re.M)
    scripts = {s.stem.replace("_", "-") for s in (REPO / "scripts").glob("*.py")}
    assert {c.removeprefix("magicanimate-") for c in commands} == scripts

"""Sync: write the notebooks' header cells (Colab badge, release version, how to hand in), the shared
snippets and the getting-started text into the notebooks and both READMEs, and strip outputs.

    python -m coursepack.sync    (make sync; REPOSITORY=owner/name BRANCH=branch-or-tag name the student repository)
"""
import sys

from coursepack import notebooks

# This repository's README and the student repository's (which `make publish` copies): both carry the
# getting-started text between markers.
READMES = (notebooks.ROOT / "README.md", notebooks.ROOT / "coursepack" / "student" / "README.md")


def main() -> int:
    for path in notebooks.source_notebooks() + notebooks.demo_notebooks():
        if notebooks.sync_snippets(path):
            print(f"synced {path.relative_to(notebooks.ROOT)}")
    for readme in READMES:
        text = readme.read_text()
        if notebooks.synced_readme(text) != text:
            readme.write_text(notebooks.synced_readme(text))
            print(f"synced {readme.relative_to(notebooks.ROOT)} (getting started)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

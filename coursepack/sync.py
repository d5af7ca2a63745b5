"""Sync: write the shared snippets and Colab badges into the notebooks (and README) and strip outputs.

    python -m coursepack.sync    (make sync)
"""
import sys

from coursepack import notebooks


def main() -> int:
    for path in notebooks.source_notebooks() + notebooks.demo_notebooks():
        if notebooks.sync_snippets(path):
            print(f"synced {path.relative_to(notebooks.ROOT)}")
    readme = notebooks.ROOT / "README.md"
    text = readme.read_text()
    if notebooks.readme_with_badges(text) != text:
        readme.write_text(notebooks.readme_with_badges(text))
        print("synced README.md (Colab badges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

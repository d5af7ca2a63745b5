"""Nothing from a submission runs in an instructor's browser or a student's feedback page.

A submission's outputs and written answers end up in HTML twice: in Formgrader (which renders the
autograded notebook) and in the feedback files. Jupyter renders `text/html` outputs and the HTML in
markdown as they are, so a submission could carry a `<script>` or `<img onerror=...>` into both.
`SanitizeSubmission` runs before the autograded notebook is saved:

- code cells keep only outputs that cannot run code: text, PNG and JPEG images (HTML, JavaScript,
  SVG, markdown, LaTeX and widget outputs are dropped; their text/plain form stays), and of their
  metadata only an image's whole-number width and height;
- cells the student could edit (not locked) have their HTML escaped by bleach, except nbconvert's own
  list of safe tags; `<` and `>` inside their maths become `\\lt` and `\\gt` first, so a formula
  such as $a<b$ still renders (and text mistaken for maths is harmless either way); no
  `javascript:` link survives, nor in LaTeX (MathJax's \\href);
- the notebook's metadata is reduced to its kernel and language.
"""
from __future__ import annotations

import re
import secrets

from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

SAFE_MIMETYPES = {"text/plain", "image/png", "image/jpeg"}
SCRIPT_URL = re.compile(r"(?i)(java|vb)\s*script\s*:")
MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+?\$|\\\[.+?\\\]|\\\(.+?\\\)|\\begin\{([a-zA-Z*]+)\}.+?\\end\{\1\}", re.S)


def clean_markdown(source: str, html: SanitizeHTML) -> str:
    """A student's markdown with no HTML that could run, and its maths intact."""
    maths, token = [], f"maths{secrets.token_hex(8)}n"  # (a token the student cannot have written)

    def set_aside(match):  # maths skips bleach (which would escape its & and <); it keeps no < or > at all
        maths.append(match.group(0).replace("<", r"\lt ").replace(">", r"\gt "))
        return f"{token}{len(maths) - 1}x"

    cleaned = html.sanitize_html_tags(MATH.sub(set_aside, source))
    cleaned = re.sub(rf"{token}(\d+)x", lambda m: maths[int(m.group(1))], cleaned)
    return SCRIPT_URL.sub("blocked:", cleaned)


def _image_sizes(metadata) -> dict:
    """An output's metadata reduced to its images' whole-number width and height: templates write
    them into an <img> tag unquoted, so anything else would be an attribute of the student's choosing."""
    kept = {}
    for mimetype in ("image/png", "image/jpeg"):
        sizes = metadata.get(mimetype) if isinstance(metadata, dict) else None
        if isinstance(sizes, dict):
            whole = {k: v for k, v in sizes.items() if k in ("width", "height") and type(v) is int and 0 < v < 10**5}
            if whole:
                kept[mimetype] = whole
    return kept


class SanitizeSubmission(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
        self._html = SanitizeHTML(strip=False)  # escape, not strip: the text stays readable
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if "data" in output:
                    output.data = {k: v for k, v in output.data.items() if k in SAFE_MIMETYPES}
                    output.metadata = _image_sizes(output.get("metadata", {}))
        elif cell.cell_type in ("markdown", "raw") and not utils.is_locked(cell):
            cell.source = clean_markdown(cell.source, self._html)
            cell.pop("attachments", None)
        return cell, resources

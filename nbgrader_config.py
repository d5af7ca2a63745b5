"""nbgrader configuration for the course (read by every nbgrader command run from this folder)."""
import os
from pathlib import Path

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

COURSE_ROOT = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "comp3547"
c.CourseDirectory.root = str(COURSE_ROOT)
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The gradebook is local state, never committed; COURSEPACK_DB lets tests and parallel graders use their own.
c.CourseDirectory.db_url = os.environ.get("COURSEPACK_DB", f"sqlite:///{COURSE_ROOT / 'gradebook.db'}")

# The exchange behind JupyterHub's "Assignments" tab. Only set when NBGRADER_EXCHANGE is: otherwise the
# hub's own nbgrader config (or nbgrader's default, /srv/nbgrader/exchange) decides, and this file,
# read last from the course folder, must not override it.
if "NBGRADER_EXCHANGE" in os.environ:
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE"]

# Downloaded or stand-in data sets never travel with an assignment.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data"]

# What students see in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell that runs longer is interrupted and grading goes on with the next one.
c.ExecutePreprocessor.timeout = 120

# nbgrader 0.9.6 silently drops a test cell a student deleted (and a wrong answer then passes):
# put every missing graded or read-only cell back from the gradebook instead.
c.OverwriteCells.add_missing_cells = True

# Hand-ins downloaded in bulk from the learning platform (`make collect ARCHIVE=bulk.zip`): nbgrader's
# zip_collect run by coursepack/grading/collect.py, which unpacks into the grader's own folder. File names
# follow Blackboard Learn's "Assignment File Download" unless PlatformCollector.named_regexp says otherwise
# (Moodle: the pattern coursepack.grading.collect.MOODLE); Collector.roster maps user names to student ids.
c.ZipCollectApp.downloaded_directory = ".grading/downloaded"
# c.Collector.roster = "roster.csv"

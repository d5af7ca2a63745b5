"""Grading a class: nbgrader's own converters, run in parallel, each kernel sealed, every test outside it.

The pipeline (docs/grading.md has the map, what crosses each process boundary and the threat model):

- `apps`       the command line: python -m coursepack.grading collect|autograde|merge|feedback|grades
- `api`        grade_class / merge_shards / collect / export_grades: what the CLI, SLURM and the tests call
- `collect`    hand-ins into submitted/: nbgrader collect, or a platform's bulk download (zip_collect)
- `roster`     student ids and the learning platform's user names
- `staging`    stage: a submission copied without links, FIFOs or devices
- `grade`      grade: one student's notebooks through nbgrader's Autograde (`converter`), in a worker
- `pool`       the workers and the progress bar
- `gradebooks` merge: per-worker gradebooks into the course's (SQLite or PostgreSQL)
- `report`     the summary table and the JSON report
- `exports`    grades beyond grades.csv: one row per graded cell, Blackboard's Grade Centre file
- `problems`   what went wrong, as records; a notebook's status follows from them

Inside one notebook's grading:

- `converter`  nbgrader's Autograde with the steps below in its preprocessor lists
- `editors`    notebooks saved by Colab, VS Code, JupyterLab 3: nbgrader metadata put back
- `execute`    nbgrader's Execute for grading: sandboxed kernel, limits, test cells sent to the harness
- `harness`    the trusted side: runs each test cell from source/ against the student's names
- `bridge`     calls, values, tensors and autograd between the harness and the kernel (both ends)
- `verdicts`   the harness's verdicts as the test cells' outputs and scores (for SaveAutoGrades)
- `sanitize`   no HTML or script from a submission reaches Formgrader or feedback
- `sandbox`, `zygote`, `cgroups`  the sealed kernel: namespaces, uid, limits; warm kernels forked
- `feedback`   the `make feedback` command: GenerateFeedback without hidden test code
- `classroom`, `bench`  generated classes and `make bench-grading`
"""

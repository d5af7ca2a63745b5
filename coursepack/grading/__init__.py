"""Grading a class: parallel, sandboxed autograding on nbgrader's own converters, and leak-free feedback.

- `autograde`  the `make autograde` command: workers, staging, gradebook merge, report, exit code
- `converter`  nbgrader's Autograde with the steps below in its preprocessor lists
- `execute`    nbgrader's Execute, hardened: sandboxed kernel, time limits, output cap, tamper probe
- `sandbox`    bubblewrap / setpriv / prlimit around each kernel; `zygote` forks warm kernels
- `tamper`     holding for review code that patches how tests compare answers
- `gradebooks` per-worker gradebooks and their merge (SQLite or PostgreSQL)
- `feedback`   the `make feedback` command: GenerateFeedback without hidden test code
- `classroom`, `bench`  generated classes and `make bench-grading`
"""

"""`python -m coursepack.grading autograde|merge|feedback ...` (see apps.py)."""
import sys

from coursepack.grading.apps import main

sys.exit(main())

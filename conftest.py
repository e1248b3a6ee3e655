"""Test-wide settings: every notebook run by nbval inherits this environment.

``ICAR_QUICK=1`` makes each chapter shrink its sizes (the assertions stay); progress bars are off in tests.
"""
import os
import tempfile

os.environ.setdefault("ICAR_QUICK", "1")
os.environ.setdefault("ICAR_PROGRESS", "0")
# Claims checked by the tests are recorded away from book/_claims, which holds the records of the last book build.
os.environ.setdefault("ICAR_CLAIMS_DIR", os.path.join(tempfile.gettempdir(), "icar-test-claims"))

# The student notebooks (book/student, made by `python -m icar.classroom`) stop at `raise NotImplementedError()` by
# design: nbval does not run them; tests/test_classroom.py grades them with nbgrader instead.
collect_ignore_glob = ["book/student/*"]

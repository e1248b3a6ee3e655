"""nbgrader configuration of the course (nbgrader 0.9.6, ``pip install -e ".[classroom]"``).

Run the nbgrader commands from the repository root; the instructor page (``book/instructor.md``) lists them.
Layout: the instructor versions of the assignments (solutions and hidden tests) are ``book/assignments/chNN/``, the
student versions that ``nbgrader generate_assignment`` writes are ``book/student/assignments/chNN/`` (committed, so
that Colab can open them), and the grading folders (``submitted/``, ``autograded/``, ``feedback/``, the gradebook)
live under ``classroom/``, which git ignores.
"""
import os

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "icar"
c.CourseDirectory.source_directory = "book/assignments"
c.CourseDirectory.release_directory = "book/student/assignments"
c.CourseDirectory.submitted_directory = "classroom/submitted"
c.CourseDirectory.autograded_directory = "classroom/autograded"
c.CourseDirectory.feedback_directory = "classroom/feedback"
c.CourseDirectory.db_url = "sqlite:///classroom/gradebook.db"
# The assignments are small: every checker runs in well under a second, and a whole notebook in a few seconds.
# A cell that runs for 60 s is a student's runaway loop; it is stopped and the notebook is graded as it stands.
c.Execute.timeout = 60
c.Execute.startup_timeout = 120
# Grading never needs the chapters' full-size experiments: quick mode, no progress bars.
os.environ.setdefault("ICAR_QUICK", "1")
os.environ.setdefault("ICAR_PROGRESS", "0")

"""Test-wide settings: every notebook run by nbval inherits this environment.

``ICAR_QUICK=1`` makes each chapter shrink its sizes (the assertions stay); progress bars are off in tests.
"""
import os

os.environ.setdefault("ICAR_QUICK", "1")
os.environ.setdefault("ICAR_PROGRESS", "0")

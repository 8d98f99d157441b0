# Starts an ipykernel as `python3 -m ipykernel_launcher` does (the code-interpreter server runs
# this file), tied to the server's life, and without debugpy: ipykernel imports it at start for its debugger (~0.12 s of every
# kernel boot here), which E2B's protocol never uses; with it absent ipykernel runs without one.
import ctypes
import os
import signal
import sys

# The kernel dies with the server that started it (a killed server is started again by envd with
# kernels of its own; these would be left running). PR_SET_PDEATHSIG = 1.
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
except (OSError, AttributeError):
    pass
if os.getppid() == 1:  # the server died before the line above
    sys.exit(1)

# This file's folder is not the user's import path.
if sys.path and sys.path[0].endswith("code-interpreter"):
    del sys.path[0]
sys.modules["debugpy"] = None  # `import debugpy` now raises ImportError

from ipykernel import kernelapp  # noqa: E402

kernelapp.launch_new_instance()

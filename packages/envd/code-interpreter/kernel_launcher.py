# Starts an ipykernel as `python3 -m ipykernel_launcher` does (the code-interpreter server runs
# this file), but without debugpy: ipykernel imports it at start for its debugger (~0.12 s of every
# kernel boot here), which E2B's protocol never uses; with it absent ipykernel runs without one.
import sys

# This file's folder is not the user's import path.
if sys.path and sys.path[0].endswith("code-interpreter"):
    del sys.path[0]
sys.modules["debugpy"] = None  # `import debugpy` now raises ImportError

from ipykernel import kernelapp  # noqa: E402

kernelapp.launch_new_instance()

"""Run pcbseg's commands inside the test process (see ``run_cli``)."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path
from subprocess import CompletedProcess


def run_cli(module: str, *args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> CompletedProcess:
    """Run ``python -m <module> <args>`` inside this process, as the command line would, and capture its output.

    Each command costs ~20 s of imports in a fresh interpreter on a slow CPU (torch, Lightning, timm); run here they
    are paid once per test session. What a separate process would give is restored afterwards: argv, the working
    folder, the environment, the root logger's handlers and Hydra's global state. An exception that escapes is
    printed with its traceback to stderr and gives return code 1, as the interpreter would. Tests of what only a
    separate process shows (installed entry points, signals, DDP ranks) still use ``subprocess``.
    """
    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(module).main
    root = logging.getLogger()
    saved = (sys.argv, os.getcwd(), dict(os.environ), root.handlers[:], root.level)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    GlobalHydra.instance().clear()
    try:
        sys.argv = [module, *map(str, args)]
        os.chdir(cwd)
        os.environ.update(env or {})
        root.handlers = []  # so that a CLI's own logging setup takes effect, as in a fresh process
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            try:
                result = main()  # argparse commands return their exit code; Hydra apps return None
                code = result if isinstance(result, int) and not isinstance(result, bool) else 0
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        GlobalHydra.instance().clear()
        sys.argv, cwd_before, env_before, root.handlers, level = saved
        root.setLevel(level)
        os.chdir(cwd_before)
        os.environ.clear()
        os.environ.update(env_before)
    return CompletedProcess([sys.executable, "-m", module, *map(str, args)], code, out.getvalue(), err.getvalue())

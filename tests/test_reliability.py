"""Reliability (issue #12): nothing lost, nothing run that should not be.

One reproduction per item of the issue (tiny-llama, real subprocesses and a real ``SIGKILL`` where
the item is about a kill), then a table of bad inputs: each must exit non-zero with a message that
names the problem, load no model where that can be avoided, and leave nothing half-written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# ---------------------------------------------------------------------------------------------
# Item 3 (last part): killing the pipeline leaves no stage running
# ---------------------------------------------------------------------------------------------
# The "pipeline" runs a stage through thinkbudget.pipeline.run_logged (as scripts/pipeline.py and the
# sweep do); the stage starts its own child the way `accelerate launch` starts the training script,
# and that child calls die_with_parent() first, as every entry point does.
_GRANDCHILD = (
    "import os, sys, time; sys.path.insert(0, os.environ['TB_ROOT']); "
    "from thinkbudget.cli import die_with_parent; die_with_parent(); "
    "open(os.environ['TB_PIDS'], 'a').write(f'{os.getpid()}\\n'); time.sleep(300)"
)
_STAGE = (
    "import os, subprocess, sys; open(os.environ['TB_PIDS'], 'a').write(f'{os.getpid()}\\n'); "
    "subprocess.run([sys.executable, '-c', os.environ['TB_GRANDCHILD']])"
)
_PIPELINE = (
    "import os, sys; sys.path.insert(0, os.environ['TB_ROOT']); "
    "from thinkbudget.pipeline import run_logged; "
    "run_logged([sys.executable, '-c', os.environ['TB_STAGE']], os.environ['TB_LOG'], label='stage')"
)


def test_killed_pipeline_leaves_no_stage_running(tmp_path):
    pids = tmp_path / "pids"
    env = {
        **os.environ,
        "TB_ROOT": str(ROOT),
        "TB_PIDS": str(pids),
        "TB_LOG": str(tmp_path / "stage.log"),
        "TB_STAGE": _STAGE,
        "TB_GRANDCHILD": _GRANDCHILD,
    }
    env.pop("THINKBUDGET_DIE_WITH_PARENT", None)  # run_logged sets it for the stage
    pipeline = subprocess.Popen(
        [PY, "-c", _PIPELINE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started: list[int] = []
    try:
        assert _wait_for(lambda: pids.is_file() and len(pids.read_text().split()) == 2, 120), (
            "the stage and its child did not start"
        )
        started = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in started)
        pipeline.send_signal(signal.SIGKILL)  # the pipeline only: its stage must follow on its own
        pipeline.wait()
        assert _wait_for(lambda: not any(_alive(p) for p in started), 20), "a stage outlived its pipeline"
    finally:
        for p in started:  # never leave a sleeper behind, even when the test fails
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait()


def test_every_entry_point_asks_to_die_with_its_parent_before_slow_imports():
    # The real scripts: the call sits in their `__main__` prelude, before torch/transformers load.
    for script in ("data/prepare.py", "train/sft.py", "train/rl.py", "eval/evaluate.py"):
        text = (ROOT / script).read_text()
        prelude = text[: text.index("\nfrom thinkbudget")]
        assert "_die_with_parent()" in prelude, script

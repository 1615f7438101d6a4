"""Run every notebook in nbs/ as a test, through nbdev's own test machinery (execnb, in-process).

Cells flagged with a `tst_flags` flag from settings.ini (`#| slow`, `#| cuda`, `#| kaggle`) are skipped unless
the flag is listed in the environment variable LM_TEST_FLAGS (e.g. `LM_TEST_FLAGS="slow" make test`).
"""
import os, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))

def _flags():
    from nbdev.config import get_config
    skip = get_config().tst_flags.split()
    force = os.environ.get('LM_TEST_FLAGS', '').split()
    return [f for f in skip if f not in force], force

@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, capsys):
    from nbdev.test import test_nb
    skip, force = _flags()
    cwd = os.getcwd()
    t0 = time.time()
    try: ok, _ = test_nb(nb, skip_flags=skip, force_flags=force, showerr=True, basepath=ROOT)
    finally: os.chdir(cwd)
    print(f"{nb.name}: {time.time() - t0:.1f} s")
    assert ok, f"notebook {nb.name} failed (traceback above)"

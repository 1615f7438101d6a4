"""Run notebooks the way `make test` does (flagged cells skipped) and keep the outputs of their short example cells,
so that each notebook reads like documentation. `make outputs` runs it; `nbdev_clean` (clear_all = False in
settings.ini) then leaves those outputs alone.

    python tools/keep_outputs.py [nbs/01_data.ipynb ...]      # default: every notebook in nbs/
"""
import json, os, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]
MAX_CHARS = 3000                       # longer outputs are dropped: the notebook is a book, not a log
FLAGS = {'slow', 'cuda', 'kaggle'}

def _directives(src):
    return {m.group(1): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w:-]+)\s*(.*)$', src, re.M)}

def _skip(cell):
    if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
    d = _directives(cell.source)
    return d.get('eval:', '').lower() == 'false' or bool(FLAGS & d.keys())

def _keep(cell) -> bool:
    d = _directives(cell.source)
    if {'export', 'exporti', 'hide'} & d.keys(): return False
    text = json.dumps(cell.get('outputs', []))
    return len(text) <= MAX_CHARS and '"ename"' not in text and 'Warning' not in text

def keep_outputs(fn:Path):
    nb = read_nb(fn)
    os.environ['IN_TEST'] = '1'
    cwd = os.getcwd(); os.chdir(fn.parent)
    try: CaptureShell(fn).run_all(nb, exc_stop=True, preproc=_skip)
    finally: os.chdir(cwd)
    for c in nb.cells:
        if c.cell_type == 'code' and not _keep(c): c['outputs'] = []
    write_nb(nb, fn)

if __name__ == '__main__':
    sys.path.insert(0, str(ROOT))
    for f in (sys.argv[1:] or sorted(str(p) for p in (ROOT/'nbs').glob('*.ipynb'))):
        print(f, flush=True); keep_outputs(Path(f).resolve())

"""The modules follow the pipeline: each one imports only modules before it in this list (read the notebooks in
the same order). Checked twice: statically (every import statement, function-local ones included) and by
importing each module in a fresh interpreter."""
import ast, json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT/'landmark2020'
ORDER = ['core', 'stack', 'data', 'toy', 'metrics', 'submission', 'losses', 'model', 'loaders', 'config', 'training', 'rerank', 'inference',
         'package', 'kaggle', 'demo']

def _imported(path):
    "Names of the landmark2020 modules that `path` imports anywhere (top level or inside functions)."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: out.add(node.module.split('.')[0])
            elif node.level == 1: out.update(a.name for a in node.names)
            elif node.module and node.module.startswith('landmark2020.'): out.add(node.module.split('.')[1])
            elif node.module == 'landmark2020': out.update(a.name for a in node.names if a.name in ORDER)
        elif isinstance(node, ast.Import):
            out.update(a.name.split('.')[1] for a in node.names if a.name.startswith('landmark2020.'))
    return out

def test_every_module_is_listed():
    mods = {p.stem for p in LIB.glob('*.py')} - {'__init__', '_modidx'}
    assert mods == set(ORDER), f"modules not in the pipeline order list: {mods ^ set(ORDER)}"

@pytest.mark.parametrize('mod', ORDER)
def test_imports_point_down(mod):
    i = ORDER.index(mod)
    later = sorted(m for m in _imported(LIB/f'{mod}.py') if m in ORDER and ORDER.index(m) >= i)
    assert later == [], f"{mod} imports {later}, which come at or after it in the pipeline order"

def test_fresh_import_loads_nothing_above():
    # one interpreter per module: sys.modules must start clean for each
    for mod in ORDER:
        r = subprocess.run([sys.executable, '-c', f"import sys, json, landmark2020.{mod}; "
                            "print(json.dumps(sorted(m.split('.')[1] for m in sys.modules if m.startswith('landmark2020.'))))"],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
        loaded = json.loads(r.stdout.strip().splitlines()[-1])
        above = [m for m in loaded if m in ORDER and ORDER.index(m) > ORDER.index(mod)]
        assert above == [], f"import landmark2020.{mod} also loaded {above}"

def test_package_import_is_light():
    r = subprocess.run([sys.executable, '-c', "import sys, landmark2020; "
                        "print(sorted(m for m in sys.modules if m.startswith('landmark2020.')))"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == '[]', r.stdout + r.stderr

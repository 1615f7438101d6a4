"""Issue #5: no weights file is ever unpickled with code execution. Every `torch.load` in the library, the notebooks,
the benchmarks and the submission notebooks passes `weights_only=True`; no `np.load(..., allow_pickle=True)`, no
`pickle`/`dill`/`joblib` loads. Checked on the AST, so a new call site that forgets it fails here."""
import ast, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _sources():
    for p in sorted((ROOT/'landmark2020').glob('*.py')): yield str(p.relative_to(ROOT)), p.read_text()
    for p in sorted((ROOT/'bench').glob('*.py')): yield str(p.relative_to(ROOT)), p.read_text()
    for p in sorted([*(ROOT/'nbs').glob('*.ipynb'), *(ROOT/'submission').glob('*.ipynb')]):
        for i, c in enumerate(json.loads(p.read_text())['cells']):
            if c['cell_type'] != 'code': continue
            src = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('%', '!')))
            yield f"{p.relative_to(ROOT)} cell {i}", src

def _name(f) -> str:
    "Dotted name of a call's function: `torch.load`, `np.load`, `load`."
    parts = []
    while isinstance(f, ast.Attribute): parts.append(f.attr); f = f.value
    if isinstance(f, ast.Name): parts.append(f.id)
    return '.'.join(reversed(parts))

def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)

def unsafe_loads(src:str) -> list:
    "The unsafe deserialising calls in Python source `src`: (line, what)."
    bad = []
    tree = compile(src, '<src>', 'exec', flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)   # notebooks may await
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or '']
            bad += [(node.lineno, f"import {m}") for m in mods if m.split('.')[0] in ('pickle', 'dill', 'joblib', 'cloudpickle')]
        if not isinstance(node, ast.Call): continue
        n = _name(node.func)
        if n == 'torch.load' or n.endswith('.torch.load'):
            w = _kw(node, 'weights_only')
            if not (isinstance(w, ast.Constant) and w.value is True): bad.append((node.lineno, f"{n} without weights_only=True"))
        if n.split('.')[-1] == 'load' and n.split('.')[0] in ('np', 'numpy'):
            a = _kw(node, 'allow_pickle')
            if a is not None and not (isinstance(a, ast.Constant) and a.value is False): bad.append((node.lineno, f"{n} with allow_pickle"))
        if n in ('pickle.load', 'pickle.loads', 'torch.jit.load', 'torch.serialization.load'): bad.append((node.lineno, n))
    return bad

def test_checker_catches_unsafe_calls():
    "The check itself: it flags what it must and passes what is safe."
    assert unsafe_loads("import torch\nsd = torch.load('a.pth')") == [(2, 'torch.load without weights_only=True')]
    assert unsafe_loads("torch.load(f, weights_only=False)") and unsafe_loads("torch.load(f, map_location='cpu', weights_only=flag)")
    assert unsafe_loads("import pickle") and unsafe_loads("np.load(f, allow_pickle=True)") and unsafe_loads("torch.jit.load(f)")
    assert unsafe_loads("sd = torch.load(p, map_location='cpu', weights_only=True)\nz = np.load(f)\nm.load_state_dict(sd)") == []

def test_every_load_is_weights_only():
    srcs = list(_sources())
    assert any(w.startswith('landmark2020/model.py') for w, _ in srcs) and any('04_model' in w for w, _ in srcs)
    found = [f"{where}, line {line}: {what}" for where, src in srcs for line, what in unsafe_loads(src)]
    assert not found, '\n'.join(found)
    n = sum(src.count('torch.load(') for _, src in srcs)
    assert n >= 3, f"expected the library's torch.load calls to be scanned, found {n}"

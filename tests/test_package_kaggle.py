"""Integration test of the offline Kaggle path, end to end and offline:

toy competition folders -> a tiny model trained by `lm_train` -> `lm_package` (with the real runtime wheels:
faiss, timm, fastcore) -> a notebook environment built from REAL installs -> each submission notebook run
headless by nbclient in that environment, with the network blocked -> the submission checked by the metrics
module's validator and scorer.

Two environments ("images"), each a real venv:

* `pinned` (default suite): the pinned stack of `constraints.txt`, except an older fastcore (1.12.3, outside the
  tested range), as an image that lags behind: the notebook must install the package's fastcore wheel. A stale
  landmark2020 of the SAME version is installed beforehand: the package's wheel must replace it.
* `latest` (slow: `LM_TEST_LATEST=1` or `LM_TEST_FLAGS=slow`; needs the package registry once a day): the latest
  releases the registry serves (fastcore 2, pandas 3, ...), resolved by pip.

Only torch and torchvision with their CUDA libraries come, as on Kaggle, "from the image": the dev venv's copies,
seen through a folder of symlinks (installing 5 GB of CUDA wheels per run would not fit a test). Everything else
is installed by pip from wheels cached under `$LM_TEST_CACHE` (default ~/.cache/landmark2020/test): the first
run resolves a lock file per environment (`pip freeze`), later runs install that lock with `--no-index`.

Network: the notebook executor runs under `unshare -rn` (a new network namespace with only loopback up) where
the machine allows it; a socket guard loaded by a `.pth` file in each venv also refuses and logs every
non-loopback connect/DNS lookup, and the test fails when that log is not empty (a cell reached for the network).
"""
import os, sys, json, re, shutil, hashlib, datetime, subprocess, sysconfig, time, importlib.metadata as md
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()['purelib'])            # the dev venv's site-packages: torch "from the image"
BIN = Path(sys.executable).parent
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"
CACHE = Path(os.environ.get('LM_TEST_CACHE') or Path.home()/'.cache'/'landmark2020'/'test')
# what the notebooks need from the image besides torch (the Kaggle image has all of these), and the kernel
IMAGE_PKGS = ['numpy', 'pandas', 'pillow', 'pyyaml', 'safetensors', 'timm', 'fastcore', 'huggingface_hub', 'tqdm',
              'packaging', 'pyarrow', 'matplotlib', 'ipykernel']
TORCH = ('torch', 'torchvision')                          # from the image, never installed by the notebook
OLD_FASTCORE = '1.12.3'                                   # the pinned "image" lags behind: outside stack.RUNTIME_STACK
LATEST = bool(os.environ.get('LM_TEST_LATEST')) or 'slow' in os.environ.get('LM_TEST_FLAGS', '').split()

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
"""Test-only: with LM_TEST_NOFAISS set, make `import faiss` fail as on a Kaggle image without it (loaded by lm_nofaiss.pth)."""
import os, sys, importlib.abc
class _NoFaiss(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'faiss' or name.startswith('faiss.'): raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
if os.environ.get('LM_TEST_NOFAISS'): sys.meta_path.insert(0, _NoFaiss())
'''

REPORT_CELL = '''import sys, json, landmark2020.stack as _st
print("LM_STALE", hasattr(_st, "STALE"))
print("LM_MODULES " + json.dumps({n: getattr(m, '__file__', None) for n, m in list(sys.modules.items()) if getattr(m, '__file__', None)}))'''

EXECUTOR = r'''
"""Run one notebook with nbclient in a kernel of a given interpreter (started by the test, maybe inside unshare -rn)."""
import sys, json
from pathlib import Path
import nbformat
from nbformat.v4 import new_code_cell
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
nb_path, py, cwd, out, kernel_dir, report = sys.argv[1:7]
name = 'lm-' + Path(py).parent.parent.name
kd = Path(kernel_dir)/name; kd.mkdir(parents=True, exist_ok=True)
(kd/'kernel.json').write_text(json.dumps({'argv': [py, '-m', 'ipykernel_launcher', '-f', '{connection_file}'], 'display_name': name, 'language': 'python'}))
nb = nbformat.read(nb_path, as_version=4)
if report: nb.cells.append(new_code_cell(report))
km = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dir]))
client = NotebookClient(nb, km=km, timeout=600, resources={'metadata': {'path': cwd}})
rc = 0
try: client.execute()
except CellExecutionError as e: rc = 3; print(str(e)[-3000:], file=sys.stderr)
nbformat.write(nb, out)
sys.exit(rc)
'''

def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{[str(c) for c in cmd][:4]} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r

def _clean_env(**extra):
    "The environment of a Kaggle-like process: no pip config (no local indexes), no PYTHONPATH, no hub settings."
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PIP_', 'LM_', 'HF_', 'TRANSFORMERS_')) and k not in ('PYTHONPATH', 'IN_TEST', 'PYTHONHOME')}
    env.update(PIP_CONFIG_FILE=os.devnull, MPLBACKEND='Agg', OMP_NUM_THREADS='2', **{k: str(v) for k, v in extra.items()})
    return env

def _canon(n): return re.sub(r'[-_.]+', '-', n).lower()

def _pip_env():
    "For pip building the venvs: the machine's pip config (the index), but no PYTHONPATH (the checkout)."
    return {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME') and not k.startswith('LM_')}

def _torch_closure() -> set:
    "torch, torchvision and what they need, minus what the venv installs for real (numpy, pillow, ...)."
    from packaging.requirements import Requirement
    real, seen, todo = {_canon(p) for p in IMAGE_PKGS}, set(), list(TORCH)
    while todo:
        n = _canon(todo.pop())
        if n in seen or (n in real and n not in TORCH): continue
        try: d = md.distribution(n)
        except md.PackageNotFoundError: continue
        seen.add(n)
        for r in d.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({'extra': ''}): todo.append(req.name)
    return seen

def torch_view(dest:Path) -> Path:
    "A folder of symlinks to the dev venv's torch stack: torch 'from the image'."
    if dest.is_dir(): return dest
    tmp = dest.with_name(dest.name + f'.tmp{os.getpid()}'); shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir(parents=True)
    for n in _torch_closure():
        d = md.distribution(n)
        tops = {Path(str(f)).parts[0] for f in d.files or []} | {Path(d._path).name}
        for t in tops:
            if t != '..' and not t.endswith('.pth') and (SITE/t).exists() and not (tmp/t).exists(): (tmp/t).symlink_to(SITE/t)
    os.replace(tmp, dest)
    return dest

def _lock_key(flavour:str) -> str:
    if flavour == 'pinned': return 'pinned-' + hashlib.sha1(((ROOT/'constraints.txt').read_text() + ' '.join(IMAGE_PKGS) + OLD_FASTCORE).encode()).hexdigest()[:10]
    return f"latest-{datetime.date.today().isoformat()}"     # the latest releases, resolved once a day

def make_env(path:Path, flavour:str, view:Path) -> Path:
    "A real venv of the 'image' `flavour` (pinned | latest), torch from `view`, the socket guard and the faiss blocker installed."
    subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True)
    py = path/'bin'/'python'
    site = Path(_run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], env=_pip_env()).stdout.strip())
    (site/'lm_torch.pth').write_text(f'{view}\n')            # torch visible to pip (satisfied) and to the kernel
    key = _lock_key(flavour)
    lock, wheels = CACHE/'locks'/f'{key}.txt', CACHE/'wheels'
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [py, '-m', 'pip', '--disable-pip-version-check', 'install', '-q']
    if lock.is_file():                                        # a rerun: the locked wheels, offline
        _run(pip + ['--no-index', '--find-links', wheels, '--no-deps', '-r', lock], env=_pip_env())
    else:
        spec = IMAGE_PKGS if flavour == 'latest' else [p for p in IMAGE_PKGS if p != 'fastcore'] + [f'fastcore=={OLD_FASTCORE}']
        cons = [] if flavour == 'latest' else ['-c', ROOT/'constraints.txt']
        if flavour == 'pinned':
            c = CACHE/'locks'/'constraints-no-fastcore.txt'; c.parent.mkdir(parents=True, exist_ok=True)
            c.write_text(''.join(l + '\n' for l in (ROOT/'constraints.txt').read_text().splitlines() if not l.startswith('fastcore==')))
            cons = ['-c', c]
        _run(pip + ['--find-links', wheels, *cons, *spec], env=_pip_env())
        frozen = _run([py, '-m', 'pip', 'freeze', '--exclude-editable'], env=_pip_env()).stdout
        pins = [l for l in frozen.splitlines() if '==' in l and _canon(l.split('==')[0]) not in _torch_closure() | {'landmark2020'}]
        _run([py, '-m', 'pip', 'download', '-q', '--no-deps', '-d', wheels, *pins], env=_pip_env())
        lock.parent.mkdir(parents=True, exist_ok=True)
        tmp = lock.with_suffix(f'.tmp{os.getpid()}'); tmp.write_text('\n'.join(pins) + '\n'); os.replace(tmp, lock)
    (site/'lm_netguard.py').write_text(NETGUARD)
    (site/'lm_netguard.pth').write_text('import lm_netguard\n')
    (site/'lm_nofaiss.py').write_text(NOFAISS)
    (site/'lm_nofaiss.pth').write_text('import lm_nofaiss\n')
    return py

def _versions(py) -> dict:
    code = "import json, importlib.metadata as md; print(json.dumps({d: md.version(d) for d in ('fastcore', 'timm', 'pandas', 'numpy', 'torch')}))"
    return json.loads(_run([py, '-c', code], env=_clean_env()).stdout)

def _can_unshare() -> bool:
    try: return subprocess.run(['unshare', '-rn', 'sh', '-c', 'ip link set lo up'], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired): return False

UNSHARE = _can_unshare()

def run_notebook(nb_path:Path, py:Path, cwd:Path, env:dict, kernel_dir:Path, report:bool=True):
    "Execute a copy of notebook `nb_path` in a kernel of `py`, network blocked; returns (rc, executed nb, text, stderr)."
    import nbformat
    ex = kernel_dir/'lm_executor.py'; kernel_dir.mkdir(parents=True, exist_ok=True); ex.write_text(EXECUTOR)
    out = cwd/nb_path.name
    cmd = [str(sys.executable), str(ex), str(nb_path), str(py), str(cwd), str(out), str(kernel_dir), REPORT_CELL if report else '']
    if UNSHARE: cmd = ['unshare', '-rn', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', *cmd]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    print(f"{nb_path.name} in {py.parent.parent.name}{' (unshare -rn)' if UNSHARE else ''}: {time.time() - t0:.1f} s")
    assert out.is_file(), f"the executor failed ({r.returncode}):\n{r.stderr[-3000:]}"
    nb = nbformat.read(out, as_version=4)
    text = '\n'.join(o.get('text', '') or '\n'.join(o.get('traceback', []))
                     for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
    return r.returncode, nb, text, r.stderr

def _stale_wheel(dest:Path) -> Path:
    "A landmark2020 wheel of the SAME version whose stack module says STALE: the package's wheel must replace it."
    from landmark2020.package import build_wheel, _REPO_FILES
    src = dest/'stale-src'; src.mkdir(parents=True)
    for f in _REPO_FILES:
        if (ROOT/f).is_file(): shutil.copy2(ROOT/f, src/f)
    shutil.copytree(ROOT/'landmark2020', src/'landmark2020', ignore=shutil.ignore_patterns('__pycache__'))
    with open(src/'landmark2020'/'stack.py', 'a') as f: f.write('\nSTALE = True\n')
    return build_wheel(dest/'stale', src)

@pytest.fixture(scope='module')
def kaggle(tmp_path_factory):
    "Toy competitions, a tiny trained run and its package (real runtime wheels, cached)."
    from landmark2020.toy import make_toy_gldv2, make_toy_competition
    d = tmp_path_factory.mktemp('kaggle')
    t0 = time.time()
    g = make_toy_gldv2(d/'gldv2', seed=0)
    inp = d/'input'                                          # laid out like /kaggle/input
    rec = make_toy_competition(inp/'landmark-recognition-2020', 'landmark-recognition-2020', gldv2=g)
    ret = make_toy_competition(d/'data'/'landmark-retrieval-2021', 'landmark-retrieval-2021', gldv2=g)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'LM_WHEEL_CACHE': str(CACHE/'package-wheels')}
    r = _run([BIN/'lm_train', ROOT/'configs'/'smoke.yaml', f'data.root={g}', f'out={d/"runs"}', 'opt.epochs=1'], env=env)
    run = Path(r.stdout.strip().splitlines()[-1])
    assert (run/'model'/'config.json').is_file(), r.stdout
    import pandas as pd
    # the retrieval recipe re-ranks with labelled train embeddings: the package ships them (the retrieval data has no train split)
    (d/'predict.yaml').write_text('extract:\n  size: 64\nretrieval:\n  discriminative: true\n  landmark_country: true\n')
    lids = pd.read_csv(g/'train.csv').landmark_id.unique()
    (d/'countries.csv').write_text('landmark_id,country\n' + ''.join(f'{l},C{l % 5}\n' for l in lids))
    pkg = inp/'landmark2020-package'
    t1 = time.time()
    r = _run([BIN/'lm_package', run, '--out', pkg, '--user', 'tester', '--python', PYVER, '--predict_config', d/'predict.yaml',
              '--reference', g, '--country_csv', d/'countries.csv'], env=env)
    view = torch_view(CACHE/f'torch-view-{hashlib.sha1(str(SITE).encode()).hexdigest()[:8]}')
    print(f"setup: {time.time() - t0:.1f} s (lm_package {time.time() - t1:.1f} s)")
    return dict(d=d, g=g, rec=rec, ret=ret, run=run, pkg=pkg, view=view, lm_package_out=r.stdout, envs={})

def _env(kaggle, flavour):
    key = flavour
    if key not in kaggle['envs']:
        t0 = time.time()
        py = make_env(kaggle['d']/f'venv-{flavour}', flavour, kaggle['view'])
        if flavour == 'pinned':                               # a stale landmark2020 of the same version, already installed
            _run([py, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', _stale_wheel(kaggle['d']/f'stale-{len(kaggle["envs"])}')], env=_clean_env())
        print(f"venv {flavour}: {time.time() - t0:.1f} s")
        kaggle['envs'][key] = py
    return kaggle['envs'][key]

# %% the package folder

def test_package_folder(kaggle):
    from landmark2020.package import verify_package, wheel_fits, KAGGLE_PYTHON, RUNTIME_WHEELS, MANIFEST
    from landmark2020.stack import RUNTIME_STACK
    pkg = kaggle['pkg']
    m = verify_package(pkg)
    whls = sorted(p.name for p in pkg.glob('*.whl'))
    test_names = sorted(w['file'] for w in m['wheels'])
    assert whls == test_names and len(whls) == 1 + len(RUNTIME_WHEELS)
    faiss_whl = next(w for w in whls if w.startswith('faiss_cpu-'))
    assert wheel_fits(faiss_whl, python=KAGGLE_PYTHON) and wheel_fits(faiss_whl, python=PYVER)   # Kaggle's 3.12 and here
    pins = dict(l.split('==') for l in (ROOT/'requirements.txt').read_text().splitlines() if '==' in l and not l.startswith('#'))
    for dist, (v, _, _) in RUNTIME_WHEELS.items():
        assert pins[dist] == v, f'RUNTIME_WHEELS must ship the pinned {dist}'
        if dist in RUNTIME_STACK: assert RUNTIME_STACK[dist][1] == 'wheel' and any(w.startswith(f"{dist.replace('-', '_')}-{v}-") for w in whls)
    assert {d for d, (_, how) in RUNTIME_STACK.items() if how == 'wheel'} <= set(RUNTIME_WHEELS)
    assert m['stack'] == {d: {'range': r, 'from': h} for d, (r, h) in RUNTIME_STACK.items()}
    run = m['runs'][0]
    for f in ('model/config.json', 'model/model.safetensors', 'labels.json', 'config.yaml'):
        assert (pkg/run['path']/f).read_bytes() == (kaggle['run']/f).read_bytes(), f
    assert (pkg/'predict.yaml').is_file() and m['predict_config'] == 'predict.yaml'
    from landmark2020.data import LandmarkData
    from landmark2020.inference import load_reference
    ref = load_reference(pkg/'reference')                                     # the labelled train embeddings, float16, with countries
    n_train = len(LandmarkData(kaggle['g']).labels('train'))
    assert m['reference']['n'] == len(ref) == n_train and ref.feats.dtype == 'float16' and ref.countries is not None
    assert f"reference set: {n_train:,} images" in kaggle['lm_package_out'] and '## Reference set' in (pkg/'README.md').read_text()
    ds = json.loads((pkg/'dataset-metadata.json').read_text())
    assert ds['id'] == 'tester/landmark2020-package' and 6 <= len(ds['title']) <= 50 and ds['licenses']
    for comp, nb in (('landmark-recognition-2020', 'landmark-recognition.ipynb'), ('landmark-retrieval-2021', 'landmark-retrieval.ipynb')):
        km = json.loads((pkg/'kernels'/comp/'kernel-metadata.json').read_text())
        assert km['code_file'] == nb and (pkg/'kernels'/comp/nb).read_bytes() == (ROOT/'submission'/nb).read_bytes()
        assert km['enable_internet'] is False and km['competition_sources'] == [comp] and km['dataset_sources'] == [ds['id']]
    assert not any(p.name.startswith('.') for p in pkg.parent.iterdir()), 'a temporary build folder was left behind'
    assert (pkg/MANIFEST).is_file() and 'kaggle datasets create' in kaggle['lm_package_out']
    size = sum(p.stat().st_size for p in pkg.rglob('*') if p.is_file())
    print(f"package: {len(list(pkg.rglob('*')))} entries, {size/2**20:.1f} MiB")

def test_lm_package_bad_input(kaggle, tmp_path):
    r = subprocess.run([BIN/'lm_package', kaggle['run'], '--out', kaggle['pkg'], '--user', 'tester'], capture_output=True, text=True)
    assert r.returncode == 2 and 'already exists' in r.stderr                 # never overwritten without --force
    r = subprocess.run([BIN/'lm_package', tmp_path/'nope', '--out', tmp_path/'p'], capture_output=True, text=True)
    assert r.returncode == 2 and 'run folder not found' in r.stderr and not (tmp_path/'p').exists()

# %% the environments

def test_venv_is_real_and_guarded(kaggle):
    py = _env(kaggle, 'pinned')
    env = _clean_env(LM_NETGUARD_LOG=kaggle['d']/'guard_control.log')
    run = lambda code: subprocess.run([py, '-c', code], capture_output=True, text=True, env=env, cwd=kaggle['d'])   # not the checkout
    for mod in ('faiss', 'fastai', 'efficientnet_lite_pytorch', 'pytorch_metric_learning', 'nbdev'):
        r = run(f'import {mod}')
        assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr, f"{mod} is visible in the notebook venv"
    site = _run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip()
    r = _run([py, '-c', 'import fastcore, pandas, timm, torch; print(fastcore.__file__); print(pandas.__file__); print(timm.__file__); print(torch.__file__)'], env=env, cwd=kaggle['d'])
    fc, pd_, tm, tc = r.stdout.split()
    assert fc.startswith(site) and pd_.startswith(site) and tm.startswith(site), 'fastcore/pandas/timm must be real installs in the venv'
    assert tc.startswith(str(kaggle['view'])), 'torch comes from the image view'
    assert _versions(py)['fastcore'] == OLD_FASTCORE
    # negative control: the guard refuses and logs a real attempt; loopback stays allowed
    r = run("import urllib.request; urllib.request.urlopen('http://example.com', timeout=5)")
    assert r.returncode != 0 and "blocked by the test's socket guard" in r.stderr
    assert 'example.com' in (kaggle['d']/'guard_control.log').read_text()
    _run([py, '-c', "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname()); c.close()"], env=env, cwd=kaggle['d'])

@pytest.mark.skipif(not UNSHARE, reason='unshare -rn is not allowed here: the socket guard alone blocks the network')
def test_unshare_blocks_the_network(tmp_path):
    "The OS-level block: inside `unshare -rn` a lookup fails even without the guard; loopback works."
    code = ("import socket\ntry: socket.getaddrinfo('example.com', 80); print('REACHED')\nexcept OSError: print('BLOCKED')\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); socket.create_connection(s.getsockname()).close(); print('LOOPBACK')")
    r = subprocess.run(['unshare', '-rn', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', sys.executable, '-c', code], capture_output=True, text=True)
    assert r.stdout.split() == ['BLOCKED', 'LOOPBACK'], r.stdout + r.stderr

# %% the notebooks

def _check_kernel(rc, text, stderr, py, guard_log, faiss_expected):
    assert rc == 0, f"the notebook failed:\n{stderr[-3000:]}\n{text[-3000:]}"
    assert not guard_log.exists() or not guard_log.read_text().strip(), f"the notebook reached for the network:\n{guard_log.read_text()}"
    mods = json.loads(re.search(r'^LM_MODULES (.*)$', text, re.M).group(1))
    site = subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], capture_output=True, text=True).stdout.strip()
    assert mods['landmark2020'].startswith(site), f"landmark2020 imported from {mods['landmark2020']}, not the installed package"
    assert 'LM_STALE False' in text, 'the stale landmark2020 of the same version was not replaced'
    if faiss_expected: assert mods['faiss'].startswith(site), f"faiss imported from {mods['faiss']}, not the package's wheel"
    else: assert 'faiss' not in mods
    assert 'fastai' not in mods, 'the Kaggle path must not import fastai'
    leaked = {n: f for n, f in mods.items() if str(f).startswith(str(ROOT))}
    assert not leaked, f"modules imported from the repository checkout: {sorted(leaked)[:5]}"
    assert re.search(r'^torch\s+\d', text, re.M) and re.search(r'^fastcore\s+\d', text, re.M)            # the versions table
    assert 'plan: embed' in text and 'full private run' in text and 'images/s' in text                   # the plan and estimate
    assert re.search(r'\d+ predicted, 0 unreadable', text)
    return mods

def _score(sub, comp, task):
    from landmark2020.submission import read_submission, score_submission
    from landmark2020.data import LandmarkData
    from landmark2020.toy import toy_solution_path
    parsed = read_submission(sub, task, test_ids=LandmarkData(comp).ids('test'))   # every test id, valid cells
    return parsed, score_submission(sub, toy_solution_path(comp), task)

def _notebooks(kaggle, flavour):
    "Both notebooks in venv `flavour`: recognition found under LM_KAGGLE_INPUT (auto mode), retrieval given explicitly."
    d, py = kaggle['d'], _env(kaggle, flavour)
    work = d/f'work_rec_{flavour}'; work.mkdir()
    log = d/f'guard_rec_{flavour}.log'
    rc, nb, text, err = run_notebook(ROOT/'submission'/'landmark-recognition.ipynb', py, work, _clean_env(LM_KAGGLE_INPUT=d/'input', LM_NETGUARD_LOG=log), d/'kernels')
    _check_kernel(rc, text, err, py, log, faiss_expected=True)
    assert 'recognition: full run (KAGGLE_IS_COMPETITION_RERUN is not set; train has' in text
    if flavour == 'pinned': assert f"(image had {OLD_FASTCORE}: installed the package's wheel)" in text
    else: assert not re.search(r"^(timm|fastcore)\s.*installed the package's wheel", text, re.M)   # latest: in range, kept
    parsed, s = _score(work/'submission.csv', kaggle['rec'], 'recognition')
    assert parsed.landmark_id.notna().all() and 0 <= s['all'] <= 1
    assert not (work/'landmark2020-cache').exists()                                  # removed at the end, never /tmp
    work = d/f'work_ret_{flavour}'; work.mkdir(); out = d/f'out_ret_{flavour}'
    log = d/f'guard_ret_{flavour}.log'
    env = _clean_env(LM_PACKAGE_DIR=kaggle['pkg'], LM_DATA_ROOT=kaggle['ret'], LM_OUTPUT_DIR=out, LM_NETGUARD_LOG=log)
    rc, nb, text, err = run_notebook(ROOT/'submission'/'landmark-retrieval.ipynb', py, work, env, d/'kernels')
    _check_kernel(rc, text, err, py, log, faiss_expected=True)
    assert not (work/'submission.csv').exists()
    assert f"reference set {kaggle['pkg']/'reference'}: Reference(" in text                 # discriminative + landmark-country offline
    parsed, s = _score(out/'submission.csv', kaggle['ret'], 'retrieval')
    from landmark2020.data import LandmarkData
    n_index = len(LandmarkData(kaggle['ret']).ids('index'))
    assert (parsed.images.map(len) == min(100, n_index)).all() and 0 <= s['all'] <= 1
    return _versions(py)

def test_notebooks_pinned(kaggle):
    v = _notebooks(kaggle, 'pinned')
    assert v['fastcore'] == '1.14.5'                          # the package's wheel replaced the image's old fastcore

@pytest.mark.skipif(not LATEST, reason='slow: set LM_TEST_LATEST=1 (or LM_TEST_FLAGS=slow) to test the latest releases')
def test_notebooks_latest(kaggle):
    v = _notebooks(kaggle, 'latest')
    print('latest releases:', v)
    from packaging.version import Version
    assert Version(v['fastcore']) >= Version('2') and Version(v['pandas']) >= Version('3'), v   # what the latest resolve gives today

def test_recognition_notebook_commit_without_faiss(kaggle):
    "Commit mode (the save-version run) on a kernel where faiss cannot be imported: the torch kNN fallback."
    d = kaggle['d']; work = d/'work_rec_commit'; work.mkdir()
    py = _env(kaggle, 'pinned')
    log = d/'guard_rec_commit.log'
    env = _clean_env(LM_KAGGLE_INPUT=d/'input', LM_NETGUARD_LOG=log, LM_SUBMISSION_MODE='commit', LM_TEST_NOFAISS=1)
    rc, nb, text, err = run_notebook(ROOT/'submission'/'landmark-recognition.ipynb', py, work, env, d/'kernels')
    _check_kernel(rc, text, err, py, log, faiss_expected=False)
    assert "recognition: commit run (asked for 'commit'" in text
    parsed, s = _score(work/'submission.csv', kaggle['rec'], 'recognition')
    assert parsed.landmark_id.notna().all() and 0 <= s['all'] <= 1

def test_two_packages_attached(kaggle, tmp_path):
    "Two landmark2020 datasets under the input folder: the notebook stops naming both, unless PACKAGE_DIR names one."
    inp = tmp_path/'input'; inp.mkdir()
    for n in ('pkg-a', 'pkg-b'):
        (inp/n).mkdir(); shutil.copy2(kaggle['pkg']/'landmark2020-package.json', inp/n/'landmark2020-package.json')
    py = _env(kaggle, 'pinned')
    nb = json.loads((ROOT/'submission'/'landmark-recognition.ipynb').read_text())
    setup, find = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code'][:2]
    assert find.startswith('# find the package')
    code = setup + '\n' + find.split('subprocess.run(')[0]       # up to the install: the discovery only
    r = subprocess.run([py, '-c', code], capture_output=True, text=True, env=_clean_env(LM_KAGGLE_INPUT=inp), cwd=tmp_path)
    assert r.returncode != 0 and f"2 landmark2020 packages attached: {inp/'pkg-a'}, {inp/'pkg-b'}; set PACKAGE_DIR" in r.stderr, r.stderr
    r = subprocess.run([py, '-c', code], capture_output=True, text=True, env=_clean_env(LM_KAGGLE_INPUT=inp, LM_PACKAGE_DIR=inp/'pkg-b'), cwd=tmp_path)
    assert r.returncode == 0 and f"package {inp/'pkg-b'}" in r.stdout, r.stderr

def test_notebooks_are_wiring_only():
    "The notebooks hold no logic: the offline install, prepare_runtime and kaggle_submission."
    for nb in ('landmark-recognition.ipynb', 'landmark-retrieval.ipynb'):
        src = '\n'.join(''.join(c['source']) for c in json.loads((ROOT/'submission'/nb).read_text())['cells'] if c['cell_type'] == 'code')
        assert re.findall(r'from landmark2020\S* import (\w+)', src) == ['prepare_runtime', 'kaggle_submission'], nb
        assert "'--no-index', '--no-deps', '--force-reinstall'" in src and 'def ' not in src and 'class ' not in src

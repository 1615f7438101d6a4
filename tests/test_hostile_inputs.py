"""Hostile input through the console scripts (issue 18): bad input, faults and kills.

Every refusal must be: exit status 2, exactly one `error: ...` line on stderr naming the file, row or key, no
traceback, no output or temp file left behind, and nothing that was already on disk changed. A FIFO in the data tree
must not hang the indexer (it runs under a timeout).

The refusals are independent of each other, so the module fixture `refused` prepares all their inputs and runs the
commands a few at a time (each console script that imports torch pays a few seconds of start-up); each test then
checks one case. The data is one small toy dataset and one tiny run (timm `test_resnet`, 32 px, 4 steps).
"""
import os, sys, json, stat, shutil, hashlib, resource, subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent                     # the console scripts of this venv
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONHASHSEED='0')
ENV.pop('LM_DEBUG', None)
SMOKE = ROOT/'configs'/'smoke.yaml'
TINY = ['data.size=32', 'opt.epochs=2', 'progress=false', 'data.workers=0']

def cli(name, *args, timeout=180, env=None, **kw):
    return subprocess.run([str(BIN/name), *map(str, args)], env=env or ENV, capture_output=True, text=True, timeout=timeout, **kw)

def assert_refused(r, *names):
    "Exit status 2, one `error:` line that names each of `names`, no traceback."
    assert r.returncode == 2, f"exit status {r.returncode}:\n{r.stderr[-3000:]}"
    errs = [l for l in r.stderr.splitlines() if l.startswith('error:')]
    assert len(errs) == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    for n in names: assert str(n) in errs[0], f"{n!r} not in {errs[0]!r}"

def tree(*roots) -> dict:
    "path -> (content hash, link target or file type; mode) of everything under `roots` (symlinks not followed)."
    out = {}
    for root in roots:
        for dp, dns, fns in os.walk(root):
            for n in dns + fns:
                p = os.path.join(dp, n); st = os.lstat(p)
                if stat.S_ISREG(st.st_mode): h = hashlib.sha1(Path(p).read_bytes()).hexdigest()
                elif stat.S_ISLNK(st.st_mode): h = 'link:' + os.readlink(p)
                else: h = f'type:{stat.S_IFMT(st.st_mode)}'
                out[p] = (h, stat.S_IMODE(st.st_mode))
    return out

# ---------------------------------------------------------------------------------------------------------------
# shared data: one toy dataset (train_clean.csv with a repeated row), one run killed during a checkpoint write

KILL_DURING_SAVE = '''
import os, sys, contextlib
from pathlib import Path
from landmark2020 import training as T
n, orig = int(os.environ['KILL_AT_SAVE']), T.atomic_write
@contextlib.contextmanager
def atomic_write(path, *a, **k):
    with orig(path, *a, **k) as f:
        if Path(path).name == 'last.pth':
            atomic_write.count = getattr(atomic_write, 'count', 0) + 1
            if atomic_write.count == n: f.write(b'half a checkpoint'); f.flush(); os._exit(9)   # killed mid-write: no cleanup
        yield f
T.atomic_write = atomic_write
sys.argv[0] = 'lm_train'
T.lm_train()
'''

@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('hostile')

@pytest.fixture(scope='module')
def toy(work):
    r = cli('lm_toy', work/'toy', '--n_train', 3, '--n_index', 2, '--n_test', 1, '--size_min', 48, '--size_max', 64)
    assert r.returncode == 0, r.stderr
    tc = work/'toy'/'train_clean.csv'
    lines = tc.read_text().splitlines(keepends=True)
    tc.write_text(''.join(lines + [lines[1]]))                    # a repeated row: its images must count once
    return work/'toy'

@pytest.fixture(scope='module')
def killed_run(work, toy):
    "A run killed during its 2nd checkpoint write (mid-epoch 0), as the harness left it: (run folder, stderr)."
    run = work/'runs'/'tiny'
    r = subprocess.run([sys.executable, '-c', KILL_DURING_SAVE, SMOKE, f'data.root={toy}', f'out={run.parent}', 'name=tiny',
                        'ckpt_every=1', *TINY], env=dict(ENV, KILL_AT_SAVE='2'), capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr[-3000:]
    return run, r.stderr

@pytest.fixture(scope='module')
def run(killed_run):
    "The same run resumed to its end with `lm_train --resume`: (run folder, stale temps before, resume stderr)."
    run, _ = killed_run
    stale = sorted(p.name for p in (run/'checkpoints').glob('.last.pth.*.tmp'))
    r = cli('lm_train', '--resume', run)
    assert r.returncode == 0, r.stderr[-3000:]
    return run, stale, r.stderr

def test_repeated_row_counts_once(toy, killed_run):
    import pandas as pd
    _, err = killed_run
    assert "repeated image row(s) dropped" in err and "subset 'clean'" in err, err[-2000:]   # warned, not silent
    n_images = len(set(' '.join(pd.read_csv(toy/'train_clean.csv').images).split()))
    line = next(l for l in err.splitlines() if 'training /' in l)        # "8 classes, 16 training / 8 held-out images"
    n_train, n_valid = int(line.split(' training / ')[0].split()[-1]), int(line.split(' training / ')[1].split()[0])
    assert n_train + n_valid == n_images, line                          # not one image twice (held out and trained on)

def test_kill_during_checkpoint_write_then_resume(run):
    folder, stale, err = run
    assert len(stale) == 1, stale                                       # the killed write's temp file ...
    assert not list((folder/'checkpoints').glob('.*.tmp'))              # ... is deleted by the resume
    assert 'resuming at epoch 0 batch 1' in err, err[-2000:]
    import torch, pandas as pd
    ck = torch.load(folder/'checkpoints'/'last.pth', map_location='cpu', weights_only=True)
    ends = pd.read_csv(folder/'log.csv').step.tolist()                  # last step of each epoch
    starts = [1] + [s + 1 for s in ends[:-1]]
    want = sorted(set(starts) | set(range(10, ends[-1] + 1, 10)))       # what an uninterrupted run records
    assert [s for s, _ in ck['iter_losses']] == want, ck['iter_losses']

# ---------------------------------------------------------------------------------------------------------------
# the refusals: (case, console script, arguments, names the message must contain, paths that must not appear)

def _cases(w, toy, run):
    bad = w/'bad'; bad.mkdir()
    os.mkfifo(bad/'fifo.parquet'); (bad/'dir.parquet').mkdir(); (bad/'outdir').mkdir()
    (bad/'a_file').write_text('not a folder\n')
    (bad/'a.yaml').write_text('base: b.yaml\n'); (bad/'b.yaml').write_text(f'base: a.yaml\ndata:\n  root: {toy}\n')
    (bad/'binary.dat').write_bytes(bytes(range(256)) * 8)
    def csv_root(name, content: bytes):
        d = bad/name; (d/'train').mkdir(parents=True); (d/'train.csv').write_bytes(content); return d
    empty = csv_root('empty_csv', b'')
    latin = csv_root('latin1_csv', 'id,url,landmark_id\n0123456789abcdef,x,1\ncaf\xe9,x,2\n'.encode('latin-1'))
    extra = csv_root('extra_col', b'id,landmark_id\n0123456789abcdef,1,extra\n1123456789abcdef,2,extra\n')
    labels = bad/'badlabels'; shutil.copytree(run, labels)
    (labels/'labels.json').write_text('{"format": "landmark2020.LabelMap", "landmark_ids": "1 2 3"}')
    evil = bad/'evil'; shutil.copytree(run, evil, ignore=shutil.ignore_patterns('checkpoints'))
    cfg = json.loads((evil/'model'/'config.json').read_text())
    (evil/'model'/'config.json').write_text(json.dumps({**cfg, 'timm_kwargs': {'checkpoint_path': '/etc/passwd'}}))
    P = lambda *a: ['--data', toy, *a]
    return [
        # silent wrong results
        ('resume_forbidden_override', 'lm_train', ['--resume', run, 'opt.lr=1'], ["'opt.lr=1'", 'keeps its config'], []),
        ('resume_override_applied', 'lm_train', ['--resume', run, f'data.root={w}/nowhere'], [f'{w}/nowhere'], []),
        ('toy_negative_count', 'lm_toy', [w/'t1', '--n_train', -3], ['n_train', '-3'], [w/'t1']),
        ('grid_without_retrieval', 'lm_predict', [run, *P('--out', w/'g.csv', '--grid', w/'g.png')], ['--grid'], [w/'g.csv', w/'g.png']),
        # data lost or half-written: checked before the work
        ('out_is_fifo', 'lm_index', [toy, '--out', bad/'fifo.parquet'], [bad/'fifo.parquet', 'FIFO'], []),
        ('out_is_folder', 'lm_index', [toy, '--out', bad/'dir.parquet'], [bad/'dir.parquet', 'a folder'], []),
        ('predict_out_is_folder', 'lm_predict', [run, *P('--out', bad/'outdir')], [bad/'outdir', 'a folder'], []),
        ('demo_nested_override', 'lm_demo', ['--quick', f'out={w}/demo', f'data_dir={w}/demodata', 'train=[opt.lr=-1]'],
         ["'opt.lr'"], [w/'demo', w/'demodata']),
        ('predict_bad_solution', 'lm_predict', [run, *P('--out', w/'s.csv', '--solution', toy/'train.csv')], ['train.csv'], [w/'s.csv']),
        ('bad_arch', 'lm_train', [SMOKE, f'data.root={toy}', f'out={w}/runs', 'name=badarch', 'model.arch=no_such_net', *TINY],
         ['no_such_net'], [w/'runs']),
        # one line instead of a traceback
        ('base_cycle', 'lm_train', [bad/'a.yaml'], ['cycle', 'a.yaml'], []),
        ('empty_train_csv', 'lm_index', [empty, '--out', w/'e.parquet'], [empty/'train.csv', 'empty'], [w/'e.parquet']),
        ('latin1_train_csv', 'lm_index', [latin, '--out', w/'l.parquet'], [latin/'train.csv'], [w/'l.parquet']),
        ('extra_csv_column', 'lm_index', [extra, '--out', w/'x.parquet'], [extra/'train.csv', 'more fields than the header'], [w/'x.parquet']),
        ('train_out_on_file', 'lm_train', [SMOKE, f'data.root={toy}', f'out={bad}/a_file', *TINY], [f'{bad}/a_file', 'not a folder'], []),
        ('index_workers', 'lm_index', [toy, '--out', w/'wk.parquet', '--workers', -1], ['--workers', '-1'], [w/'wk.parquet']),
        ('labels_binary', 'lm_index', [toy, '--out', w/'lb.parquet', '--labels', bad/'binary.dat'], ['binary.dat'], [w/'lb.parquet']),
        ('toy_onto_file', 'lm_toy', [bad/'a_file'], [bad/'a_file', 'not a folder'], []),
        ('toy_nan_strength', 'lm_toy', [w/'t2', '--strength', 'nan'], ['strength', 'nan'], [w/'t2']),
        ('malformed_labels_json', 'lm_train', ['--resume', labels], [labels/'labels.json', 'landmark_ids'], []),
        ('override_empty_part', 'lm_train', [SMOKE, f'data.root={toy}', 'opt..lr=1'], ["'opt..lr'", 'empty part'], []),
        # trust: a downloaded run folder cannot make timm open a file
        ('timm_kwargs_allow_list', 'lm_predict', [evil, *P('--out', w/'ev.csv')], ['timm_kwargs', 'checkpoint_path'], [w/'ev.csv']),
    ]

@pytest.fixture(scope='module')
def refused(work, toy, run):
    w = work/'refusals'; w.mkdir()
    cases = _cases(w, toy, run[0])
    before = tree(w, toy, run[0])
    with ThreadPoolExecutor(min(4, os.cpu_count() or 2)) as ex:
        results = dict(zip([c[0] for c in cases], ex.map(lambda c: cli(c[1], *c[2]), cases)))
    return {c[0]: (results[c[0]], c) for c in cases}, before, tree(w, toy, run[0])

CASES = ['resume_forbidden_override', 'resume_override_applied', 'toy_negative_count', 'grid_without_retrieval', 'out_is_fifo',
         'out_is_folder', 'predict_out_is_folder', 'demo_nested_override', 'predict_bad_solution', 'bad_arch', 'base_cycle',
         'empty_train_csv', 'latin1_train_csv', 'extra_csv_column', 'train_out_on_file', 'index_workers', 'labels_binary',
         'toy_onto_file', 'toy_nan_strength', 'malformed_labels_json', 'override_empty_part', 'timm_kwargs_allow_list']

@pytest.mark.parametrize('case', CASES)
def test_refused(refused, case):
    results, before, after = refused
    r, (_, name, args, names, absent) = results[case]
    assert_refused(r, *names)
    for p in absent: assert not os.path.lexists(p), f"{case}: {p} was written"

def test_refusals_change_nothing(refused):
    results, before, after = refused
    assert set(results) == set(CASES)
    assert after == before, {p: (before.get(p), after.get(p)) for p in set(before) | set(after) if before.get(p) != after.get(p)}

# ---------------------------------------------------------------------------------------------------------------
# faults and odd files

def test_fifo_and_outside_symlink_in_the_data_tree(work, toy):
    import pandas as pd
    d = work/'odd'; shutil.copytree(toy, d)
    ids = sorted(pd.read_csv(d/'train.csv').id)
    p = lambda i: d/'train'/i[0]/i[1]/i[2]/f'{i}.jpg'
    p(ids[0]).unlink(); os.mkfifo(p(ids[0]))                            # reading it would block forever
    outside = work/'outside.jpg'; shutil.copy(p(ids[1]), outside)
    p(ids[1]).unlink(); p(ids[1]).symlink_to(outside)
    r = cli('lm_index', d, '--out', work/'odd.parquet', '--quiet', timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    err = pd.read_parquet(work/'odd.parquet').set_index('id').error
    assert err[ids[0]] == 'not a regular file (a FIFO)'
    assert err[ids[1]].startswith('symlink leading outside the data root')
    assert (err.drop([ids[0], ids[1]]) == '').all()

def test_outputs_follow_symlinks_and_get_the_umask_mode(work, toy):
    d = work/'modes'; d.mkdir()
    (d/'kept.parquet').write_bytes(b'old'); os.chmod(d/'kept.parquet', 0o640)
    (d/'link.parquet').symlink_to(d/'kept.parquet')
    umask = lambda: os.umask(0o027)
    r = cli('lm_index', toy, '--out', d/'link.parquet', '--quiet', preexec_fn=umask)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (d/'link.parquet').is_symlink() and (d/'kept.parquet').read_bytes()[:4] == b'PAR1'   # the target was written
    assert stat.S_IMODE(os.stat(d/'kept.parquet').st_mode) == 0o640                            # and kept its mode
    r = cli('lm_index', toy, '--out', d/'new.parquet', '--quiet', preexec_fn=umask)
    assert r.returncode == 0 and stat.S_IMODE(os.stat(d/'new.parquet').st_mode) == 0o640        # 0666 & ~027, not 0600
    assert sorted(p.name for p in d.iterdir()) == ['kept.parquet', 'link.parquet', 'new.parquet']

@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_out_in_read_only_folder(work, toy):
    d = work/'ro'; d.mkdir(); os.chmod(d, 0o555)
    try: assert_refused(cli('lm_index', toy, '--out', d/'x.parquet'), d/'x.parquet', 'not writable')
    finally: os.chmod(d, 0o755)

def test_disk_full_during_checkpoint_write(work, toy, run):
    "RLIMIT_FSIZE makes the checkpoint (the largest file) fail like a full disk: one line naming it, no temp file left."
    model_bytes, ck_bytes = (run[0]/'model'/'model.safetensors').stat().st_size, (run[0]/'checkpoints'/'last.pth').stat().st_size
    assert model_bytes < ck_bytes
    limit = (model_bytes + ck_bytes) // 2
    r = cli('lm_train', SMOKE, f'data.root={toy}', f'out={work}/full', 'name=r', *TINY,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert_refused(r, work/'full'/'r'/'checkpoints', 'File too large')    # the first checkpoint of the epoch: best.pth
    assert not [p for p in (work/'full').rglob('*') if p.name.endswith('.tmp')]
    assert not [p for p in (work/'full'/'r'/'checkpoints').glob('*.pth')]

def test_run_named_like_an_override_and_a_damaged_cache(work, toy, run):
    odd = work/'lr=0.01'; shutil.copytree(run[0], odd, ignore=shutil.ignore_patterns('checkpoints'))
    r = cli('lm_predict', odd, '--data', toy, '--out', work/'sub.csv', '--cache', work/'cache', '--quiet')
    assert r.returncode == 0 and (work/'sub.csv').is_file(), r.stderr[-2000:]      # the folder was taken as a run
    [npy] = (work/'cache').rglob('test/embeddings.npy')
    npy.write_bytes(npy.read_bytes()[:100])                                       # truncated
    r = cli('lm_predict', odd, '--data', toy, '--out', work/'sub2.csv', '--cache', work/'cache', '--quiet')
    assert_refused(r, npy, 'delete it')
    assert not (work/'sub2.csv').exists()
    r = cli('lm_predict', odd, '--data', toy, '--out', work/'sub2.csv', '--cache', work/'cache', '--quiet', env=dict(ENV, LM_DEBUG='1'))
    assert r.returncode == 2 and 'Traceback' in r.stderr                          # LM_DEBUG=1 shows where it came from


# ---------------------------------------------------------------------------------------------------------------
# scoring and writing: a cut-off that means nothing, a landmark id that is not a whole number

def test_score_k_must_be_positive(tmp_path):
    sol, sub = tmp_path/'solution.csv', tmp_path/'submission.csv'
    sol.write_text('id,images,Usage\n0123456789abcdef,00000000000000aa,Public\n')
    sub.write_text('id,images\n0123456789abcdef,00000000000000aa\n')
    ok = subprocess.run([str(BIN/'lm_score'), str(sub), str(sol), '--task', 'retrieval', '--k', '1'], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for k in ('0', '-3'):
        r = subprocess.run([str(BIN/'lm_score'), str(sub), str(sol), '--task', 'retrieval', '--k', k], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == '', (k, r.stdout, r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.startswith('error:')]
        assert len(lines) == 1 and 'k (the retrieval cut-off) must be a whole number >= 1' in lines[0], r.stderr

def test_writer_refuses_fractional_landmark_id(tmp_path):
    import pandas as pd
    from landmark2020.core import LandmarkError
    from landmark2020.submission import write_recognition_submission
    out = tmp_path/'sub.csv'
    with pytest.raises(LandmarkError, match=r"row 1: landmark_id 1.7 of id '0000000000000002' is not a whole number"):
        write_recognition_submission(pd.DataFrame({'id': ['0000000000000001', '0000000000000002'],
                                                   'landmark_id': [3.0, 1.7], 'score': [0.9, 0.5]}), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []

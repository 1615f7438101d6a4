"The connector's console scripts, run as real subprocesses: arguments, outputs, exit codes, resume after a kill."
import os, sys, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest

BIN = Path(sys.executable).parent

def run(*args, **kw):
    return subprocess.run([str(BIN/args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=120, **kw)

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('toy')/'gld'
    r = run('lm_toy', d, '--seed', 3)
    assert r.returncode == 0, r.stderr
    return d

def test_lm_toy_and_index(toy, tmp_path):
    out = tmp_path/'ix.parquet'
    r = run('lm_index', toy, '--split', 'train', '--out', out, '--workers', 2)
    assert r.returncode == 0, r.stderr
    assert 'rows' in r.stderr and 'ok' in r.stderr                  # the summary
    df = pd.read_parquet(out)
    tr = pd.read_csv(toy/'train.csv')
    assert sorted(df.id) == sorted(tr.id) and df.ok.all()
    assert not (tmp_path/'ix.parquet.parts').exists()

def test_lm_index_reports_bad_files(toy, tmp_path):
    "A zero-byte file, a listed id without a file and a file without a CSV row: the progress bar, then the counts."
    import shutil
    from landmark2020.core import id_relpath
    d = tmp_path/'gld'; shutil.copytree(toy, d)
    ids = sorted(pd.read_csv(d/'train.csv').id)
    (d/id_relpath(ids[0])).write_bytes(b'')
    (d/id_relpath(ids[1])).unlink()
    extra = 'ffffffffffffff01'; (d/id_relpath(extra)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(d/id_relpath(ids[2]), d/id_relpath(extra))
    out = tmp_path/'ix.parquet'
    r = run('lm_index', d, '--out', out, '--workers', 2)
    assert r.returncode == 0, r.stderr
    assert 'index train' in r.stderr and 'dir/s' in r.stderr                         # tqdm's bar, on stderr
    n = len(ids) + 1
    assert f'{n} rows, {n - 3} ok' in r.stderr, r.stderr
    counts = {l.split(None, 1)[1]: int(l.split(None, 1)[0]) for l in r.stderr.splitlines() if l.startswith('  ')}
    assert counts == {'ok': n - 3, 'empty file': 1, 'missing file': 1, 'not listed in train.csv': 1}, counts
    df = pd.read_parquet(out).set_index('id')
    assert df.loc[ids[1], 'error'] == 'missing file (listed in train.csv)' and df.loc[extra, 'error'] == 'not listed in train.csv'

def test_lm_toy_competition(tmp_path):
    d = tmp_path/'landmark-retrieval-2021'
    r = run('lm_toy', d, '--competition', 'landmark-retrieval-2021')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in d.iterdir()) == ['index', 'sample_submission.csv', 'test']
    assert (tmp_path/'landmark-retrieval-2021.solution.csv').exists()

def test_bad_input_exit_2(tmp_path):
    r = run('lm_index', tmp_path/'missing', '--out', tmp_path/'x.parquet')
    assert r.returncode == 2 and r.stderr.startswith('error:') and 'missing' in r.stderr
    r = run('lm_index', tmp_path, '--out', tmp_path/'x.csv')
    assert r.returncode == 2 and '.parquet or .feather' in r.stderr
    r = run('lm_toy', tmp_path/'t', '--sources', 'conda')
    assert r.returncode == 2 and "sources must be 'pip' or 'deb'" in r.stderr

def test_resume_after_kill(toy, tmp_path):
    "SIGKILL lm_index after some shards are written; the rerun reuses them and gives the same index."
    out, parts = tmp_path/'ix.parquet', tmp_path/'ix.parquet.parts'
    ref = run('lm_index', toy, '--out', tmp_path/'ref.parquet', '--executor', 'serial', '--quiet')
    assert ref.returncode == 0, ref.stderr
    # slow each unit down so the kill lands mid-run: a sitecustomize module wraps data._index_unit in that process
    hook = tmp_path/'hook'; hook.mkdir()
    (hook/'sitecustomize.py').write_text("import time, landmark2020.data as d\n_unit = d._index_unit\n"
                                         "def _slow(*a, **k): time.sleep(0.05); return _unit(*a, **k)\nd._index_unit = _slow\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get('PYTHONPATH', '')])))
    p = subprocess.Popen([str(BIN/'lm_index'), str(toy), '--out', str(out), '--executor', 'serial', '--quiet'], env=env)
    t0 = time.time()
    while len(list(parts.glob('train-*.parquet'))) < 3 and time.time() - t0 < 60: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    done = sorted(parts.glob('train-*.parquet'))
    assert 3 <= len(done) < 16 and not out.exists()
    mtimes = {q.name: q.stat().st_mtime_ns for q in done}
    r = run('lm_index', toy, '--out', out, '--executor', 'serial', '--quiet', '--keep_parts')
    assert r.returncode == 0, r.stderr
    assert all((parts/n).stat().st_mtime_ns == m for n, m in mtimes.items())   # kept, not redone
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path/'ref.parquet'))

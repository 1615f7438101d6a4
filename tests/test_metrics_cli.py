"""`lm_score` as a user runs it: a real subprocess through the console entry point, its output and exit codes."""
import json, os, subprocess, sys, tempfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
from test_metrics_bad_input import installed_script
LM_SCORE = installed_script()   # None: a venv installed from another checkout

def _ids(n, start=1): return [f'{i:016x}' for i in range(start, start + n)]

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('score')
    t = _ids(6)
    (d/'sol_rec.csv').write_text('id,landmarks,Usage\n' + '\n'.join([
        f'{t[0]},1,Public', f'{t[1]},2,Public', f'{t[2]},,Public', f'{t[3]},3 4,Private', f'{t[4]},,Private', f'{t[5]},9,Ignored']) + '\n')
    (d/'sub_rec.csv').write_text('id,landmarks\n' + '\n'.join([
        f'{t[0]},1 0.9', f'{t[1]},5 0.8', f'{t[2]},7 0.85', f'{t[3]},4 0.5', f'{t[4]},', f'{t[5]},9 1.0']) + '\n')
    idx = _ids(5, 100)
    (d/'sol_ret.csv').write_text('id,images,Usage\n' + '\n'.join([
        f'{t[0]},{idx[0]} {idx[1]},Public', f'{t[1]},{idx[2]},Private', f'{t[2]},None,Ignored']) + '\n')
    (d/'sub_ret.csv').write_text('id,images\n' + '\n'.join([
        f'{t[0]},{idx[3]} {idx[0]}', f'{t[1]},{idx[2]}', f'{t[2]},']) + '\n')
    return d

def run(*args):
    if LM_SCORE: exe = [str(LM_SCORE)]
    else:   # what a console script runs (a file run as __main__, so that fastcore parses sys.argv)
        script = Path(tempfile.mkdtemp())/'lm_score'
        script.write_text('import sys\nfrom landmark2020.submission import lm_score\nsys.exit(lm_score())\n')
        exe = [sys.executable, str(script)]
    return subprocess.run(exe + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'HF_HUB_OFFLINE': '1'})

def test_recognition_json(files):
    r = run('--task', 'recognition', files/'sub_rec.csv', files/'sol_rec.csv', '--json')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    # public ranking: t0 (0.9, correct), t2 (0.85, non-landmark), t1 (0.8, wrong); M = 2
    assert abs(s['public'] - 0.5) < 1e-12
    assert abs(s['private'] - 1.0) < 1e-12      # t3 correct (4 is one of 3 4); M = 1
    assert abs(s['all'] - (1 + 2/4) / 3) < 1e-12
    assert s['counts']['ignored'] == 1 and s['metric'] == 'GAP'

def test_retrieval_text_and_json(files):
    r = run('--task', 'retrieval', files/'sub_ret.csv', files/'sol_ret.csv')
    assert r.returncode == 0, r.stderr
    assert 'mAP@100' in r.stdout and 'public' in r.stdout
    s = json.loads(run('--task', 'retrieval', files/'sub_ret.csv', files/'sol_ret.csv', '--json').stdout)
    assert abs(s['public'] - 0.25) < 1e-12 and abs(s['private'] - 1.0) < 1e-12
    assert abs(s['precision@1']['all'] - 0.5) < 1e-12

@pytest.mark.parametrize('sub,sol,task,msg', [
    ('sub_rec.csv', 'sol_rec.csv', 'retrieval', "sol_rec.csv, line 1: bad header 'id,landmarks,Usage' (expected 'id,images,Usage')"),   # wrong task
    ('bad_score.csv', 'sol_rec.csv', 'recognition', "bad_score.csv, line 3: score 'nan' is not a finite number"),
    ('missing.csv', 'sol_rec.csv', 'recognition', 'test id(s) have no row'),
    ('sub_rec.csv', 'bad_usage.csv', 'recognition', "bad_usage.csv, line 2: bad Usage 'Secret'"),
    ('nope.csv', 'sol_rec.csv', 'recognition', 'no such file'),
])
def test_bad_input_exits_2(files, sub, sol, task, msg):
    t = _ids(6)
    (files/'bad_score.csv').write_text(f'id,landmarks\n{t[0]},1 0.5\n{t[1]},2 nan\n')
    (files/'missing.csv').write_text(f'id,landmarks\n{t[0]},1 0.5\n')
    (files/'bad_usage.csv').write_text(f'id,landmarks,Usage\n{t[0]},1,Secret\n')
    r = run('--task', task, files/sub, files/sol)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith('error: ') and msg in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr

def test_allow_missing_and_bad_task(files):
    t = _ids(6)
    (files/'missing.csv').write_text(f'id,landmarks\n{t[0]},1 0.5\n')
    r = run('--task', 'recognition', files/'missing.csv', files/'sol_rec.csv', '--allow_missing', '--json')
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)['public'] - 0.5) < 1e-12
    r = run('--task', 'classification', files/'sub_rec.csv', files/'sol_rec.csv')
    assert r.returncode == 2 and 'invalid choice' in r.stderr

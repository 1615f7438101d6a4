"bench/run_all.py: runs every bench_*.py, gathers their JSON into one Markdown table, survives missing/failing scripts."
import json, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GOOD = '''
import argparse, json, time
from pathlib import Path
ap = argparse.ArgumentParser(); ap.add_argument('--quick', action='store_true'); a = ap.parse_args()
print("| work | ours | baseline |\\n|---|---|---|\\n| sum | 1 s | 4 s |")
out = Path(__file__).parent/'results'/'good.json'; out.parent.mkdir(exist_ok=True)
out.write_text(json.dumps({"module": "good", "quick": a.quick, "device": "cpu", "rows": [
    {"work": "sum of 1e6 floats", "baseline": "python loop", "value": 0.5, "baseline_value": 2.0, "unit": "s",
     "target": ">= 3x", "ok": True, "notes": "same result"},
    {"work": "throughput", "baseline": "plain", "value": 30.0, "baseline_value": 20.0, "unit": "img/s",
     "higher_is_better": True},
    {"work": "given ratio", "baseline": "b", "ratio": 7.0, "absolute": "1 vs 7"}]}))
'''
BAD = 'import sys; print("boom", file=sys.stderr); sys.exit(3)\n'
ODD = '''
import json; from pathlib import Path
p = Path(__file__).parent/'results'/'odd.json'; p.parent.mkdir(exist_ok=True); p.write_text(json.dumps({"speed": 3}))
'''

def test_run_all(tmp_path):
    b = tmp_path/'bench'; b.mkdir()
    shutil.copy(ROOT/'bench'/'run_all.py', b/'run_all.py')
    (b/'bench_good.py').write_text(GOOD); (b/'bench_bad.py').write_text(BAD); (b/'bench_odd.py').write_text(ODD)
    r = subprocess.run([sys.executable, str(b/'run_all.py'), '--quick', '--timeout', '120'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (b/'RESULTS.md').read_text()
    table = [l for l in md.splitlines() if l.startswith('| ')]
    assert table[0].startswith('| work | baseline | ratio | absolute figures |')
    good = [l for l in table if '`good`' in l]
    assert len(good) == 3
    assert '4.00×' in good[0] and '0.50 s vs 2.00 s' in good[0] and '✅' in good[0]   # baseline / ours for seconds
    assert '1.50×' in good[1] and '30.0 img/s vs 20.0 img/s' in good[1]               # ours / baseline for img/s
    assert '7.00×' in good[2] and '1 vs 7' in good[2]
    assert all('`good` (cpu)' in l for l in good)                                 # the device the script ran on
    assert 'Machine: ' in md and 'cores' in md and ' UTC' in md                   # machine and date of the run
    # the scripts the issues expect but that do not exist, the failing one and the odd JSON each get a row and a note
    assert any('bad: **no result**' in l and 'exit code 3' in l for l in table)
    assert any('connector: **no result**' in l and 'missing' in l for l in table)
    assert 'odd.json: unreadable' in md
    assert '| sum | 1 s | 4 s |' in md            # the script's own table is kept verbatim

def test_stale_json_is_not_used(tmp_path):
    "A result file left over from an earlier run must not be reported as this run's numbers."
    b = tmp_path/'bench'; (b/'results').mkdir(parents=True)
    shutil.copy(ROOT/'bench'/'run_all.py', b/'run_all.py')
    (b/'results'/'stale.json').write_text(json.dumps({"rows": [{"work": "old", "ratio": 99.0}]}))
    import os; os.utime(b/'results'/'stale.json', (1, 1))
    (b/'bench_stale.py').write_text('pass\n')
    r = subprocess.run([sys.executable, str(b/'run_all.py'), '--only', 'stale'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (b/'RESULTS.md').read_text()
    assert '99.00×' not in md and 'older than this run' in md

def _make_tree(tmp_path):
    "A copy of the Makefile and its venv prerequisites, with a stand-in .venv (nothing is installed)."
    for f in ('Makefile', 'requirements.txt', 'constraints.txt', 'settings.ini', 'setup.py'):
        shutil.copy(ROOT/f, tmp_path/f)
    (tmp_path/'.venv'/'bin').mkdir(parents=True)
    for exe in ('python', 'lm_demo'):
        p = tmp_path/'.venv'/'bin'/exe; p.write_text('#!/bin/sh\n'); p.chmod(0o755)
    return tmp_path

def _dry_run(tree, target='demo'):
    r = subprocess.run(['make', '-n', target], cwd=tree, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout

def test_make_demo_reuses_the_venv(tmp_path):
    "`make demo` installs into .venv only when the install stamp is missing or older than the pinned files."
    if shutil.which('make') is None:
        import pytest; pytest.skip('no make')
    import os, time
    tree = _make_tree(tmp_path)
    fresh = _dry_run(tree)
    assert 'pip install' in fresh and '.venv/bin/lm_demo' in fresh         # first run: install, then the demo
    stamp = tree/'.venv'/'.installed'; stamp.touch()
    t = time.time(); os.utime(stamp, (t + 5, t + 5))
    again = _dry_run(tree)
    assert 'pip install' not in again and '.venv/bin/lm_demo' in again     # rerun: straight to the demo
    os.utime(tree/'requirements.txt', (t + 10, t + 10))                     # a changed pin reinstalls
    assert 'pip install' in _dry_run(tree)

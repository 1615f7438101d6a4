"""The synthetic GLDv2 of issue 16 at ~10k training rows, read back by the library, and bench/scale.py's driver on a tiny size.

The full-size rehearsal itself (1%, 10%, 100%) is `make bench-scale`; here: the tree has GLDv2's layout and the
requested cardinalities, every listed image is a readable file, the solution files agree with the labels (a perfect
submission scores 1.0 in both tasks), and the bench runs its stages in subprocesses and keeps RESULTS.md's other sections.
"""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest

ROOT = Path(__file__).resolve().parents[1]
SCALE = 0.0064                                                     # 10,115 clean train rows in 520 classes

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    from landmark2020.toy import make_synthetic_gldv2
    return make_synthetic_gldv2(tmp_path_factory.mktemp('syn')/'gldv2', scale=SCALE, seed=3)

def test_cardinalities_and_layout(syn):
    from landmark2020.data import LandmarkData, build_subset, build_index
    m = json.loads((syn/'synthetic_meta.json').read_text())['counts']
    assert (m['clean'], m['classes'], m['index'], m['test']) == (10_115, 520, 488, 640)
    data = LandmarkData(syn)
    assert data.layout == 'gldv2' and data.splits == ['train', 'index', 'test']
    clean, full = build_subset(data, 'clean'), build_subset(data, 'full')
    assert len(clean) == 10_115 and clean.landmark_id.nunique() == 520
    assert len(full) == m['train'] and full.noisy.sum() == m['train'] - 10_115 > 0
    sizes = clean.landmark_id.value_counts()
    assert sizes.min() == 2 and sizes.max() > 20*sizes.median()       # long-tailed
    for split, n in (('train', m['train']), ('index', 488), ('test', 640)):
        idx = build_index(data, split)
        assert len(idx) == n and idx.ok.all(), split                 # every listed id has its JPEG, nothing unlisted
        assert idx.width.between(32, 64).all()
    shared = data.labels('index', to_train=True)
    assert 0 < len(shared) < 488 and shared.landmark_id.isin(clean.landmark_id).all()

def test_solutions_are_consistent(syn, tmp_path):
    from landmark2020.submission import write_recognition_submission, write_retrieval_submission, score_submission
    rec = pd.read_csv(syn/'recognition_solution_v2.1.csv', dtype=str, keep_default_na=False)
    ret = pd.read_csv(syn/'retrieval_solution_v2.1.csv', dtype=str, keep_default_na=False)
    q = rec.landmarks != ''
    assert q.sum() == 64 and (ret.Usage[~q] == 'Ignored').all() and (ret.Usage[q] != 'Ignored').all()
    p = write_recognition_submission(pd.DataFrame({'id': rec.id[q], 'landmark_id': rec.landmarks[q].astype(int), 'score': 1.0}),
                                     tmp_path/'rec.csv', test_ids=rec.id)
    assert score_submission(p, syn/'recognition_solution_v2.1.csv', 'recognition')['all'] == pytest.approx(1.0)
    p = write_retrieval_submission(pd.DataFrame({'id': ret.id, 'images': [s.split() if m else [] for s, m in zip(ret.images, q)]}),
                                   tmp_path/'ret.csv', test_ids=ret.id)
    assert score_submission(p, syn/'retrieval_solution_v2.1.csv', 'retrieval')['all'] == pytest.approx(1.0)
    # the recognition label of a query is the train landmark its retrieval images belong to (joined by category)
    from landmark2020.data import LandmarkData
    i2l = LandmarkData(syn).labels('index', to_train=True).set_index('id').landmark_id
    first = ret.images[q].str.split().str[0].map(i2l)
    assert (first.astype(int).astype(str) == rec.landmarks[q]).all()

def test_deterministic_and_cli(syn, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([str(Path(sys.executable).parent/'lm_toy'), str(tmp_path/'s'), '--synthetic', str(SCALE),
                        '--seed', '3'], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    for f in ('train.csv', 'train_clean.csv', 'index_image_to_landmark.csv', 'retrieval_solution_v2.1.csv'):
        assert (tmp_path/'s'/f).read_bytes() == (syn/f).read_bytes(), f    # same seed, same bytes
    r = subprocess.run([str(Path(sys.executable).parent/'lm_toy'), str(tmp_path/'s'), '--synthetic', '0'],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and 'scale must be in (0, 4]' in r.stderr

def test_bench_scale_smoke(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'scale.py'), '--scales', '0.0005,0.001', '--stages', 'build,lm_index',
                        '--no-write', '--work', str(tmp_path/'w')], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [l for l in r.stdout.splitlines() if l.startswith('| `')]
    assert any('build_index train' in l for l in rows) and any('make_synthetic_gldv2' in l for l in rows)
    assert all(l.count('GiB') == 2 for l in rows if 'build_index train' in l)     # peak RSS at both sizes
    assert not (tmp_path/'w').exists()                                           # the work folder is cleaned up

def test_results_md_section_replaced(tmp_path):
    sys.path.insert(0, str(ROOT/'bench'))
    import scale
    p = tmp_path/'RESULTS.md'
    p.write_text('# Benchmarks\n\nintro\n\n## Notes\n\nkeep me\n')
    scale.write_results_md(scale.SECTION + '\n\nfirst\n', p)
    scale.write_results_md(scale.SECTION + '\n\nsecond\n', p)
    t = p.read_text()
    assert t.count(scale.SECTION) == 1 and 'second' in t and 'first' not in t and 'keep me' in t and 'intro' in t
    assert scale._exp(1.0, 10.0, 0.01, 0.1) == pytest.approx(1.0) and scale._exp(1.0, 100.0, 0.1, 1) == pytest.approx(2.0)

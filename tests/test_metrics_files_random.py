"""Random solution and submission FILES scored by `score_submission`, against the official scorer's reader and
metrics re-written per item in tests/official_gldv2.py (DELF `dataset_file_io.py` + `metrics.py`): the csv module
line by line, Ignored ids skipped, an empty cell = no prediction, one trailing space allowed, Public and Private
scored separately, GAP with ties by id, mAP@100 with duplicates keeping their slots. Equal to 1e-12, per split."""
import gzip
import numpy as np, pandas as pd
import pytest
from landmark2020.submission import score_submission, read_submission, write_recognition_submission, write_retrieval_submission
from landmark2020.core import LandmarkError

from official_gldv2 import read_solution as official_read_solution, read_predictions as official_read_predictions
from official_gldv2 import gap_loop as official_gap, top1_loop as official_top1, map_loop as official_map

def close(a, b): return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-12

def hexids(rng, n): return [f'{x:016x}' for x in rng.choice(2**62, n, replace=False)]

def random_recognition(rng):
    n = int(rng.integers(1, 40))
    ids = hexids(rng, n)
    usage = rng.choice(['Public', 'Private', 'Ignored'], n, p=[.45, .45, .1])
    gts = [' '.join(map(str, rng.choice(6, rng.integers(0, 3), replace=False))) for _ in range(n)]
    sol = 'id,landmarks,Usage\n' + ''.join(f'{i},{g},{u}\n' for i, g, u in zip(ids, gts, usage))
    tied = rng.random() < .5
    rows = []
    for i in rng.permutation(ids):
        if rng.random() < .25: rows.append(f'{i},'); continue
        s = rng.integers(0, 4) / 4 if tied else rng.normal()
        s = repr(float(s)) if rng.random() < .7 else f'{s:.3e}'
        rows.append(f'{i},{int(rng.integers(0, 6))} {s}' + (' ' if rng.random() < .2 else ''))
        if rng.random() < .1: rows.append('')                                   # blank lines are skipped
    return sol, 'id,landmarks\n' + '\n'.join(rows) + '\n'

def random_retrieval(rng):
    n, pool = int(rng.integers(1, 25)), hexids(rng, int(rng.integers(5, 200)))
    ids = hexids(rng, n)
    usage = rng.choice(['Public', 'Private', 'Ignored'], n, p=[.45, .45, .1])
    def n_gt():   # mostly a few relevant images; sometimes more than 100 (the denominator is min(m, 100))
        return int(rng.integers(95, len(pool) + 1)) if len(pool) > 120 and rng.random() < .3 else int(rng.integers(1, min(len(pool), 12) + 1))
    gts = [' '.join(rng.choice(pool, n_gt(), replace=False)) if u != 'Ignored' else 'None' for u in usage]
    sol = 'id,images,Usage\n' + ''.join(f'{i},{g},{u}\n' for i, g, u in zip(ids, gts, usage))
    rows = []
    for i in rng.permutation(ids):
        m = int(rng.integers(0, 101)) if rng.random() < .8 else 0
        cell = rng.choice(pool, m) if rng.random() < .5 else rng.permutation(pool)[:m]   # with repeats, or without
        rows.append(f'{i},' + ' '.join(cell) + (' ' if m and rng.random() < .2 else ''))
    return sol, 'id,images\n' + '\n'.join(rows) + '\n'

@pytest.mark.parametrize('task', ['recognition', 'retrieval'])
def test_files_score_like_the_official_scorer(tmp_path, task):
    rng = np.random.default_rng(7 if task == 'recognition' else 8)
    n_cases, n = 0, 400
    for case in range(n):
        sol_text, sub_text = (random_recognition if task == 'recognition' else random_retrieval)(rng)
        pub, priv, ign = official_read_solution(sol_text, task)
        ppub, ppriv = official_read_predictions(sub_text, pub, priv, ign, task)
        sol, sub = tmp_path/'sol.csv', tmp_path/('sub.csv.gz' if case % 5 == 0 else 'sub.csv')
        sol.write_text(sol_text)
        if case % 5 == 0: sub.write_bytes(gzip.compress(sub_text.encode()))
        else: sub.write_text(sub_text)
        got = score_submission(sub, sol, task)
        if case % 10 == 0:   # another id pattern (the same ids) gives the same numbers
            other = score_submission(sub, sol, task, id_pattern=r'^[0-9a-f]{16,16}$')
            assert all(close(other[nm], got[nm]) for nm in ('public', 'private', 'all')), (case, other, got)
        for name, s, p in (('public', pub, ppub), ('private', priv, ppriv), ('all', pub | priv, ppub | ppriv)):
            if task == 'recognition':
                ref = official_gap(p, s)
                assert close(got[name], ref), (case, name, got[name], ref, sol_text, sub_text)
                assert close(got['top1'][name], official_top1(p, s)), (case, name)
            else:
                ref = official_map(p, {q: set(v) for q, v in s.items()})
                assert close(got[name], ref), (case, name, got[name], ref, sol_text, sub_text)
        n_cases += 1
    assert n_cases == n

def test_official_reader_examples(tmp_path):
    "The official reader's own test lines (DELF dataset_file_io_test.py): trailing space, empty cell, a prediction on an ignored id."
    a, b, c = '0123456789abcdef', '0223456789abcdef', '0523456789abcdef'
    (tmp_path/'sol.csv').write_text(f'id,landmarks,Usage\n{a},12,Public\n{b},,Private\n{c},14,Ignored\n')
    (tmp_path/'sub.csv').write_text(f'id,landmarks\n{a},12 0.1 \n{b},\n{c},14 0.01\n')
    sub = read_submission(tmp_path/'sub.csv', 'recognition')
    assert sub.set_index('id').loc[a, 'landmark_id'] == 12 and sub.set_index('id').loc[a, 'score'] == 0.1
    assert pd.isna(sub.set_index('id').loc[b, 'landmark_id'])
    s = score_submission(tmp_path/'sub.csv', tmp_path/'sol.csv', 'recognition')
    assert s['public'] == 1.0 and np.isnan(s['private']) and s['counts']['ignored'] == 1

def test_writers_round_trip_retrieval(tmp_path):
    "Random retrieval predictions written by the writer (plain and gzip) score exactly like the official loop on them."
    rng = np.random.default_rng(3)
    for case in range(60):
        sol_text, sub_text = random_retrieval(rng)
        pub, priv, ign = official_read_solution(sol_text, 'retrieval')
        test_ids = list(pub) + list(priv) + sorted(ign)
        ppub, ppriv = official_read_predictions(sub_text, pub, priv, ign, 'retrieval')
        preds = {q: list(dict.fromkeys(p)) for q, p in (ppub | ppriv).items()}   # the writer refuses repeats in a row
        path = tmp_path/('w.csv.gz' if case % 2 else 'w.csv')
        write_retrieval_submission(preds, path, test_ids=test_ids, gzip=bool(case % 2))
        (tmp_path/'sol.csv').write_text(sol_text)
        got = score_submission(path, tmp_path/'sol.csv', 'retrieval')
        for name, sol in (('public', pub), ('private', priv)):
            assert close(got[name], official_map(preds, {q: set(v) for q, v in sol.items()})), (case, name)

def canonical_retrieval(rng):
    "A retrieval solution and a submission in Kaggle's own layout (every row listing 1-100 ids, no trailing space)."
    n, pool = int(rng.integers(1, 30)), hexids(rng, int(rng.integers(5, 300)))
    ids = hexids(rng, n)
    usage = rng.choice(['Public', 'Private', 'Ignored'], n, p=[.45, .45, .1])
    gts = [' '.join(rng.choice(pool, int(rng.integers(1, min(len(pool), 12) + 1)), replace=False)) if u != 'Ignored' else '' for u in usage]
    sol = 'id,images,Usage\n' + ''.join(f'{i},{g},{u}\n' for i, g, u in zip(ids, gts, usage))
    rows = [f'{i},' + ' '.join(rng.choice(pool, int(rng.integers(1, 101)))) for i in rng.permutation(ids)]
    return sol, 'id,images\n' + '\n'.join(rows) + '\n'

def test_kaggle_layout_scores_like_the_official_scorer(tmp_path):
    """Submissions in Kaggle's own layout (every row listing ids, single spaces, LF line ends) and the same with one
    change (a trailing space, CRLF, an empty cell, an upper-case id): the same scores as the official scorer, and
    an upper-case id is an error naming its line."""
    rng = np.random.default_rng(11)
    taken = 0
    for case in range(150):
        sol_text, sub_text = canonical_retrieval(rng)
        kind = case % 5
        if kind == 1: sub_text = 'id,images\n' + sub_text[10:].replace('\n', ' \n', 1 + int(rng.integers(0, 3)))
        elif kind == 2: sub_text = sub_text.replace('\n', '\r\n')
        elif kind == 3:
            lines = sub_text.split('\n'); j = int(rng.integers(1, len(lines) - 1)); lines[j] = lines[j].split(',')[0] + ','
            sub_text = '\n'.join(lines)
        elif kind == 4: sub_text = sub_text[:-3] + sub_text[-3:].upper()
        (tmp_path/'sol.csv').write_text(sol_text); (tmp_path/'sub.csv').write_bytes(sub_text.encode())
        upper = kind == 4 and any(c in 'ABCDEF' for c in sub_text[-3:])
        canonical = kind == 0 or (kind == 4 and not upper)
        taken += canonical
        pub, priv, ign = official_read_solution(sol_text, 'retrieval')
        if upper:
            with pytest.raises(LandmarkError, match=r'line \d+: invalid index id'): score_submission(tmp_path/'sub.csv', tmp_path/'sol.csv', 'retrieval')
            continue
        ppub, ppriv = official_read_predictions(sub_text, pub, priv, ign, 'retrieval')
        got = score_submission(tmp_path/'sub.csv', tmp_path/'sol.csv', 'retrieval')
        for name, s, p in (('public', pub, ppub), ('private', priv, ppriv)):
            assert close(got[name], official_map(p, {q: set(v) for q, v in s.items()})), (case, kind, name)
        if canonical:   # the file's rows, read, equal the same rows checked as a DataFrame
            fast = read_submission(tmp_path/'sub.csv', 'retrieval')
            slow = read_submission(pd.DataFrame({'id': fast['id'], 'images': [' '.join(c) for c in fast['images']]}), 'retrieval')
            assert fast['id'].tolist() == slow['id'].tolist() and fast['images'].tolist() == slow['images'].tolist()
            assert fast['images'].tolist() == [l.split(',')[1].split(' ') for l in sub_text.splitlines()[1:]]
    assert taken >= 30

def test_kaggle_layout_errors_name_the_line(tmp_path):
    "Errors in files of Kaggle's own layout name the file's line."
    A, B, C, X = '0123456789abcdef', '0223456789abcdef', '0523456789abcdef', 'ffffffffffffffff'
    def sub(text, contains, **kw):
        assert text.startswith('id,images\n') and len(text[10:]) % 17 == 0
        (tmp_path/'s.csv').write_text(text)
        with pytest.raises(LandmarkError, match=contains): read_submission(tmp_path/'s.csv', 'retrieval', **kw)
    sub(f'id,images\n{A},{B}\n{A},{C}\n', r's\.csv, line 3: id .* is repeated \(first at line 2\)')
    sub(f'id,images\n{A},{B}\n{X},{C}\n', r'line 3: id .*ffff.* is not a test id', test_ids=[A, B])
    sub(f'id,images\n{A},{B}\n', r'test id\(s\) have no row', test_ids=[A, C])
    sub(f'id,images\n{A},{B}\n{C},' + ' '.join([B] * 3) + '\n', r'line 3: 3 index ids in the images cell \(at most 2', max_images=2)
    sub(f'id,images\n{A},{B}\n{C},{B} {X}\n', rf"line 3: '{X}' is not an index image id", index_ids=[B, C])
    sub(f'id,images\n{A},{B} {C} {B}\n', rf"line 2: index id '{B}' appears twice in the same row", allow_duplicates=False)

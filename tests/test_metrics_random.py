"""Random cases for `landmark2020.metrics` against per-item loops written from the rules of the official scorer
(not from the vectorised code): GAP with tied scores, several landmarks per image, images without landmarks and
missing predictions; mAP@k with repeats in a ranking, lists longer than k, missing queries and queries without
ground truth; the array paths against the id paths; and files written, read back and scored. Equal to 1e-12."""
import numpy as np, pandas as pd
import pytest
from landmark2020.metrics import gap, gap_arrays, top1_accuracy, map_at_k, map_at_k_arrays, precision_at_k
from landmark2020.submission import score_submission, write_recognition_submission
from landmark2020.core import LandmarkError

def close(a, b): return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-12

def P(d): return pd.DataFrame([(k, c, s) for k, (c, s) in d.items()], columns=['id', 'landmark_id', 'score'])

def gap_loop(preds, sol, ignore_non=False):
    "Reference: rank by (-score, id), walk the ranking, add the precision at each correct prediction."
    m = sum(1 for v in sol.values() if v)
    if m == 0: return float('nan')
    total = correct = 0; s = 0.0
    for i, (c, sc) in sorted(preds.items(), key=lambda kv: (-kv[1][1], kv[0])):
        if ignore_non and not sol[i]: continue
        total += 1
        if c in sol[i]: correct += 1; s += correct / total
    return s / m

def map_loop(preds, sol, k=100):
    "Reference: per query, walk the first k entries, skip repeats, add the precision at each new relevant image."
    qs = [q for q, v in sol.items() if v]
    if not qs: return float('nan')
    total = 0.0
    for q in qs:
        if q not in preds: continue
        rel, seen, hits, ap = set(sol[q]), set(), 0, 0.0
        for i, x in enumerate(preds[q][:k]):
            if x in seen: continue
            seen.add(x)
            if x in rel: hits += 1; ap += hits / (i + 1)
        total += ap / min(len(rel), k)
    return total / len(qs)

def prec_loop(preds, sol, j):
    qs = [q for q, v in sol.items() if v]
    return sum(len(set(preds.get(q, [])[:j]) & set(sol[q])) / j for q in qs) / len(qs)

def rand_rec(rng, n):
    ids = [f'{x:016x}' for x in rng.choice(2**40, n, replace=False)] if rng.random() < .7 else [f'id{x}' for x in rng.choice(10**6, n, replace=False)]
    sol = {i: [int(x) for x in rng.choice(8, rng.integers(0, 3), replace=False)] for i in ids}
    scores = rng.integers(0, 4, n) / 4 if rng.random() < .5 else rng.normal(size=n)     # many ties or none
    preds = {i: (int(rng.integers(0, 8)), float(s)) for i, s in zip(ids, scores) if rng.random() < .8}
    return preds, sol

def rand_ret(rng, nq, nidx):
    kind = rng.integers(4)   # hex ids, other strings, small ints (index positions), large ints
    pool = ([f'{x:016x}' for x in rng.choice(2**40, nidx, replace=False)] if kind == 0 else [f'i{x}' for x in range(nidx)] if kind == 1
            else list(range(nidx)) if kind == 2 else [10**12 + 7 * x for x in range(nidx)])
    qids = [f'q{x}' for x in range(nq)]
    sol = {q: list(rng.choice(pool, rng.integers(0, min(nidx, 12) + 1), replace=False)) for q in qids}
    preds = {q: list(rng.choice(pool, rng.integers(0, 25))) for q in qids if rng.random() < .8}   # with repeats
    return preds, sol

def test_gap_random():
    rng = np.random.default_rng(42)
    for _ in range(2000):
        preds, sol = rand_rec(rng, int(rng.integers(1, 30)))
        df = P(preds)
        for ign in (False, True):
            ref, got = gap_loop(preds, sol, ign), gap(df, sol, ignore_non_landmarks=ign)
            assert close(ref, got), (preds, sol, ref, got)
        m = sum(1 for v in sol.values() if v)
        if m: assert close(top1_accuracy(df, sol), sum(1 for i, v in sol.items() if v and i in preds and preds[i][0] in v) / m)

def test_gap_random_in_solution_order():
    "Every id predicted, in the solution's own order (no lookup needed; the id order is read only when scores tie)."
    rng = np.random.default_rng(43)
    for _ in range(600):
        preds, sol = rand_rec(rng, int(rng.integers(1, 30)))
        full = {i: preds.get(i, (int(rng.integers(0, 8)), float(rng.integers(0, 3) / 2))) for i in sol}
        for ign in (False, True):
            ref, got = gap_loop(full, sol, ign), gap(P(full), sol, ignore_non_landmarks=ign)
            assert close(ref, got), (full, sol, ref, got)

def test_gap_arrays_like_gap():
    "The array path agrees with the id path when the items are in id order (ties: full ranking; none: sort + search)."
    rng = np.random.default_rng(44)
    for _ in range(300):
        n = int(rng.integers(1, 40)); ids = sorted(f'{x:016x}' for x in rng.choice(2**40, n, replace=False))
        target = np.where(rng.random(n) < .4, rng.integers(0, 5, n), -1)
        pred = np.where(rng.random(n) < .8, rng.integers(0, 5, n), -1)
        conf = rng.integers(0, 3, n) / 2 if rng.random() < .5 else rng.normal(size=n)
        sol = {i: ([int(t)] if t >= 0 else []) for i, t in zip(ids, target)}
        df = pd.DataFrame({'id': ids, 'landmark_id': pd.array(np.where(pred >= 0, pred, 0), dtype='Int64'), 'score': conf})
        df.loc[pred < 0, 'landmark_id'] = pd.NA
        assert close(gap_arrays(pred, conf, target), gap(df, sol))

def test_map_random():
    rng = np.random.default_rng(45)
    for _ in range(1500):
        preds, sol = rand_ret(rng, int(rng.integers(1, 12)), int(rng.integers(1, 30)))
        k = int(rng.choice([1, 3, 10, 100]))
        ref, got = map_loop(preds, sol, k), map_at_k(preds, sol, k)
        assert close(ref, got), (preds, sol, k, ref, got)
        if not np.isnan(ref):
            pr = precision_at_k(preds, sol, ks=(1, 5))
            assert close(pr[1], prec_loop(preds, sol, 1)) and close(pr[5], prec_loop(preds, sol, 5))

def _loop_on_arrays(ranked, gt, k):
    "map_loop on index positions: an empty slot (< 0) becomes a token that is never relevant, so every rank keeps its place."
    return map_loop({q: [int(x) if x >= 0 else 'empty' for x in r] for q, r in enumerate(np.asarray(ranked).tolist())},
                    {q: np.asarray(g).tolist() for q, g in enumerate(gt)}, k)

def test_map_arrays_random():
    "Dense, sparse and huge positions (the last are renumbered before the sort)."
    rng = np.random.default_rng(46)
    for _ in range(500):
        nq, ni = int(rng.integers(1, 10)), int(rng.integers(1, 40))
        scale = int(rng.choice([1, 1, 10**9, 2**56]))
        ranked = rng.integers(-1, ni, (nq, int(rng.integers(1, 12))))
        ranked = np.where(ranked >= 0, ranked * scale, -1)
        gt = [rng.choice(ni, rng.integers(0, min(ni, 8) + 1), replace=False) * scale for _ in range(nq)]
        k = int(rng.choice([1, 3, 100]))
        ref, got = _loop_on_arrays(ranked, gt, k), map_at_k_arrays(ranked, gt, k)
        assert close(ref, got), (ranked, gt, k, ref, got)

def test_map_arrays_many_rows_and_dtypes():
    rng = np.random.default_rng(47)
    for nq, ncol in ((3000, 100), (2700, 97)):
        ranked = rng.integers(-1, 400, (nq, ncol))
        gt = [rng.choice(400, rng.integers(0, 20), replace=False) for _ in range(nq)]
        for q in range(0, nq, 7): ranked[q, rng.integers(ncol)] = gt[q][0] if len(gt[q]) else -1
        for k in (100, 10): assert close(_loop_on_arrays(ranked, gt, k), map_at_k_arrays(ranked, gt, k)), (nq, ncol, k)
    # every integer dtype of a kNN output gives the same result
    ranked = rng.integers(0, 300, (700, 50)); gt = [rng.choice(300, rng.integers(0, 40), replace=False) for _ in range(700)]
    ref = _loop_on_arrays(ranked, gt, 100)
    for dt in (np.int16, np.int32, np.uint16, np.uint32, np.uint64): assert close(map_at_k_arrays(ranked.astype(dt), gt), ref), dt

def rand_landmarks(rng, ni, nq, mode):
    "Ground truth of `nq` queries over `ni` index positions: disjoint landmark sets, shared, copied, or overlapping."
    nl = int(rng.integers(1, 6)); perm = rng.permutation(ni)
    sets = np.array_split(perm[: int(rng.integers(0, ni + 1))], nl)
    sets = [s[: int(rng.integers(0, 9))] for s in sets]
    gt = []
    for q in range(nq):
        s = sets[int(rng.integers(len(sets)))]
        gt.append(s if mode == 0 else rng.permutation(s) if mode == 1 else
                  (s if rng.random() < .8 else rng.choice(ni, rng.integers(0, min(ni, 6) + 1), replace=False)) if mode == 2 else
                  s[: int(rng.integers(0, len(s) + 1))])     # 2, 3: overlapping sets
    return gt

def test_map_arrays_landmark_sets():
    """GLDv2-like ground truth (each index image relevant to the queries of one landmark; queries of a landmark
    share one array or carry equal copies) and overlapping sets; repeats, empty slots, entries past the largest
    relevant position, every k; the padded 2-D form too."""
    rng = np.random.default_rng(48)
    for _ in range(1500):
        ni, nq, ncol = int(rng.integers(1, 60)), int(rng.integers(1, 15)), int(rng.integers(1, 14))
        gt = rand_landmarks(rng, ni, nq, int(rng.integers(4)))
        ranked = rng.integers(-1, ni + 3, (nq, ncol))
        for q in range(nq):
            if len(gt[q]): ranked[q, rng.integers(ncol)] = gt[q][rng.integers(len(gt[q]))]
        if rng.random() < .3 and ncol > 1: ranked[:, 1] = ranked[:, 0]               # repeats
        k = int(rng.choice([1, 3, 100]))
        ref = _loop_on_arrays(ranked, gt, k)
        g2 = np.full((nq, max([len(g) for g in gt] + [1])), -1)
        for q, g in enumerate(gt): g2[q, :len(g)] = g
        for got in (map_at_k_arrays(ranked, gt, k), map_at_k_arrays(ranked, g2, k)):
            assert close(ref, got), (ranked, gt, k, ref, got)

def test_map_arrays_large_landmark_sets():
    rng = np.random.default_rng(49)
    for nq, ncol, shared in ((3000, 100, True), (2700, 97, True), (12000, 30, False)):
        sets = np.array_split(rng.permutation(20000)[:15000], 1000)
        gt = [sets[i] if shared else sets[i].copy() for i in rng.integers(0, 1000, nq)]
        ranked = rng.integers(-1, 20000, (nq, ncol))
        for q in range(0, nq, 3): ranked[q, rng.integers(ncol, size=3)] = gt[q][:3]
        ranked[5, :2] = ranked[5, 2]                                                 # a repeated hit
        over = [np.r_[g, 20000 + q % 7] for q, g in enumerate(gt)]                  # an image shared across landmarks
        for g in (gt, over): assert close(map_at_k_arrays(ranked, g), _loop_on_arrays(ranked, g, 100))
    # many sets, negative entries other than -1, and every integer dtype of a kNN output
    nq = 66000
    sets = np.array_split(rng.permutation(150000)[:100000], nq)
    ranked = rng.integers(-7, 150005, (nq, 12))
    for q in range(0, nq, 2): ranked[q, rng.integers(12)] = sets[q][0]
    ranked[rng.integers(nq, size=500), rng.integers(12, size=500)] = -10**12        # far below zero: an empty slot
    assert close(map_at_k_arrays(ranked, sets, 10), _loop_on_arrays(ranked, sets, 10))
    ranked = np.maximum(ranked, 0)
    ref = _loop_on_arrays(ranked, sets, 10)
    for dt in (np.int32, np.uint32, np.uint64): assert close(map_at_k_arrays(ranked.astype(dt), sets, 10), ref)
    # an image listed twice in a landmark's set is an error, shared or not
    for gt in ([np.array([1, 1])] * 3, [np.array([1, 1]) for _ in range(3)]):
        with pytest.raises(LandmarkError, match='lists the same relevant index position twice'): map_at_k_arrays(np.array([[1, 2]] * 3), gt)

def test_recognition_files_round_trip(tmp_path):
    "Random predictions written, read back and scored: the file scores exactly like the predictions in memory."
    rng = np.random.default_rng(50)
    n = 0
    while n < 20:
        preds, sol = rand_rec(rng, int(rng.integers(2, 40)))
        ids = list(sol)
        if not all(len(i) == 16 for i in ids): continue
        df = P(preds)
        sol_df = pd.DataFrame({'id': ids, 'landmarks': [' '.join(map(str, sol[i])) for i in ids], 'Usage': 'Public'})
        write_recognition_submission(df, tmp_path/'r.csv', test_ids=ids)
        got, ref = score_submission(tmp_path/'r.csv', sol_df, 'recognition')['public'], gap(df, sol)
        assert (np.isnan(got) and np.isnan(ref)) or got == ref
        n += 1

#!/usr/bin/env python
"""Benchmark `landmark2020.metrics` (GAP / mAP@100) and `landmark2020.submission.score_submission` against straightforward
per-item Python loops and the official reader.

    .venv/bin/python bench/bench_metrics.py            # 1,000,000 recognition predictions, 100,000 retrieval queries
    .venv/bin/python bench/bench_metrics.py --quick    # 100,000 and 10,000

Both sides get the same inputs in the same form and run in the same process (for the array paths the loop
gets the numpy arrays and turns them into lists with `.tolist()` inside its timing, the fastest way into a Python
loop); each result is checked equal to 1e-12 before it is reported. The loops are written from the definitions
(DELF's scorer in one sort + one pass), and are the fastest straightforward per-item loops, not strawmen. Prints a Markdown table and writes `bench/results/metrics.json`.
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time, datetime as dt, platform, os, itertools
from pathlib import Path
import numpy as np, pandas as pd
from landmark2020.metrics import gap, gap_arrays, map_at_k, map_at_k_arrays
from landmark2020.submission import score_submission, write_recognition_submission
from landmark2020.core import atomic_write

def hex_ids(rng, n):
    "n distinct GLDv2-style ids (16 lowercase hex digits)."
    v = np.unique(rng.integers(0, 2**63, int(n * 1.01) + 10, dtype=np.int64))[:n]
    return np.array([f'{x:016x}' for x in rng.permutation(v).tolist()], dtype=object)

# the reference loops and the official file reader, written from the definitions (DELF's GLDv2 scorer): one copy,
# shared with the tests that check landmark2020.metrics and landmark2020.submission against them
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tests'))
from official_gldv2 import gap_loop, gap_rows_loop, map_loop, official_score as _official_score

def official_score(sub, sol, task):
    "The official reader + loops on two files (their reading is part of the timing)."
    return _official_score(Path(sub).read_text(), Path(sol).read_text(), task)

def timeit(f, repeat=1):
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter(); r = f(); best = min(best, time.perf_counter() - t)
    return r, best

def row(work, ours, base, target, notes, v, b):
    "A result row; `target` like '>= 20x' (the speed-up the issue asks for) or '' (none: reported only)."
    assert abs(v - b) <= 1e-12, (work, v, b)
    ratio = base / ours
    ok = ratio >= float(target.split()[1].rstrip('x')) if target else None
    return dict(work=work, baseline='per-item Python loop (same run, same inputs)', ratio=round(ratio, 1),
                value=round(ours, 4), baseline_value=round(base, 3), unit='s', target=target,
                ok=ok, notes=f"{notes}; results equal to 1e-12 ({v:.6f})")

def file_row(work, sub, sol, task):
    "score_submission on two files against the official reader + loop on the same files (Public and Private equal to 1e-12)."
    vs, t_vs = timeit(lambda: score_submission(sub, sol, task), 2)
    bs, t_bs = timeit(lambda: official_score(sub, sol, task))
    assert abs(vs['public'] - bs[0]) <= 1e-12 and abs(vs['private'] - bs[1]) <= 1e-12
    loop = 'GAP' if task == 'recognition' else 'mAP'
    return row(work, t_vs, t_bs, '>= 1x', f'score_submission(files) vs the official reader (csv module, per row) + {loop} loop for Public and Private',
               vs['private'], bs[1]) | dict(baseline='official reader (DELF dataset_file_io, per row) + per-item loop, same files, same run')

def main(quick=False):
    rng = np.random.default_rng(0)
    n_rec, n_q, n_idx = (100_000, 10_000, 76_000) if quick else (1_000_000, 100_000, 760_000)
    rows = []

    # ---- recognition: every test image predicted, 5% landmark images, continuous scores ----
    ids = hex_ids(rng, n_rec)
    n_cls = 81_313
    target = np.where(rng.random(n_rec) < .05, rng.integers(0, n_cls, n_rec), -1)
    pred = np.where(rng.random(n_rec) < .6, target, rng.integers(0, n_cls, n_rec)); pred[pred < 0] = rng.integers(0, n_cls, (pred < 0).sum())
    conf = rng.random(n_rec)
    sol = {i: ([int(t)] if t >= 0 else []) for i, t in zip(ids.tolist(), target.tolist())}
    preds_d = {i: (int(p), float(c)) for i, p, c in zip(ids.tolist(), pred.tolist(), conf.tolist())}
    df = pd.DataFrame({'id': ids, 'landmark_id': pred, 'score': conf})
    v, t_v = timeit(lambda: gap(df, sol), 3)
    # the loop gets the same DataFrame: its columns as lists, the rows sorted by (-score, id), one pass
    b, t_b = timeit(lambda: gap_rows_loop(zip(df['id'].tolist(), df['landmark_id'].tolist(), df['score'].tolist()), sol), 2)
    b_d, t_bd = timeit(lambda: gap_loop(preds_d, sol))    # the same loop given a dict id -> (landmark, score) built beforehand
    # the floor for this input: reading the dict solution's Python objects once (ids, list lengths, list contents)
    _, t_read = timeit(lambda: (np.fromiter(sol, object, len(sol)), np.fromiter(map(len, sol.values()), np.int64, len(sol)),
                                list(itertools.chain.from_iterable(sol.values()))), 3)
    rows.append(row(f"GAP, {n_rec:,} recognition predictions (DataFrame + dict solution, string ids)", t_v, t_b, '>= 10x',
                    f'gap(DataFrame id,landmark_id,score; dict solution) vs the loop on the same DataFrame (columns .tolist(), '
                    f'rows sorted by (-score, id), one pass; {t_bd:.2f} s when handed a prebuilt dict instead); predictions in the '
                    f'solution\'s order (no join). Bound by Python objects: only reading the dict solution once (ids, list '
                    f'lengths, list contents) takes {t_read:.3f} s = {t_read / t_v:.0%} of ours; the arithmetic is gap_arrays (row below)', v, b))
    # the same predictions in another order than the solution: the ids are encoded, sorted and joined
    df_shuffled = df.sample(frac=1, random_state=0).reset_index(drop=True)
    v_s, t_s = timeit(lambda: gap(df_shuffled, sol), 3)
    rows.append(row(f"GAP, {n_rec:,} recognition predictions (DataFrame + dict solution, string ids), rows shuffled", t_s, t_b, '',
                    'gap() on the same DataFrame in random row order (the loop sorts anyway: the baseline above); each id '
                    'is looked up in the solution (a pandas hash table of the solution ids)', v_s, b))
    # files, as Kaggle scores them: score_submission vs the official reader + loop (Public and Private)
    tmp = Path(tempfile.mkdtemp(prefix='lm_bench_metrics_'))
    usage = np.where(rng.random(n_rec) < .5, 'Public', 'Private')
    with open(tmp/'sol_rec.csv', 'w') as f:
        f.write('id,landmarks,Usage\n' + ''.join(f'{i},{t if t >= 0 else ""},{u}\n' for i, t, u in zip(ids.tolist(), target.tolist(), usage.tolist())))
    write_recognition_submission(df, tmp/'sub_rec.csv')
    rows.append(file_row(f"GAP of a {n_rec:,}-row submission file (score_submission: Public, Private, all, top-1)",
                         tmp/'sub_rec.csv', tmp/'sol_rec.csv', 'recognition'))
    # the array path (items in id order: position = the official tie order)
    o = np.argsort(ids.astype('S16'))
    pa, ca, ta = pred[o], conf[o], target[o]
    def loop_arrays():
        pl, cl, tl = pa.tolist(), ca.tolist(), ta.tolist()    # the same numpy inputs; .tolist() is the fastest way in
        m = sum(1 for t in tl if t >= 0)
        total = correct = 0; s = 0.0
        for j in sorted(range(len(pl)), key=lambda j: -cl[j]):
            total += 1
            if pl[j] == tl[j] and tl[j] >= 0: correct += 1; s += correct / total
        return s / m
    v2, t_v2 = timeit(lambda: gap_arrays(pa, ca, ta), 3)
    b2, t_b2 = timeit(loop_arrays)
    assert abs(v2 - v) <= 1e-12
    rows.append(row(f"GAP, {n_rec:,} predictions, array path (gap_arrays)", t_v2, t_b2, '>= 20x',
                    'gap_arrays(pred, conf, target) vs .tolist() + sorted() + loop over the lists', v2, b2))
    del sol, preds_d, df

    # ---- retrieval: 100 ranked index ids per query, 1-30 relevant images per query ----
    pool = hex_ids(rng, n_idx)
    m = rng.integers(1, 31, n_q)
    gt_pos = [rng.choice(n_idx, k, replace=False) for k in m.tolist()]
    ranked = rng.integers(0, n_idx, (n_q, 100))
    # put some relevant images in the rankings (about a third of them, at random ranks)
    for q in range(0, n_q):
        g = gt_pos[q][: max(1, len(gt_pos[q]) // 3)]
        ranked[q, rng.choice(100, len(g), replace=False)] = g
    qids = hex_ids(rng, n_q).tolist()
    sol_r = {q: pool[g].tolist() for q, g in zip(qids, gt_pos)}
    preds_r = {q: pool[r].tolist() for q, r in zip(qids, ranked)}
    v3, t_v3 = timeit(lambda: map_at_k(preds_r, sol_r), 3)
    b3, t_b3 = timeit(lambda: map_loop(preds_r, sol_r))
    # the floor for this input: any vectorised path must first touch each of the 10M Python string references
    _, t_flat = timeit(lambda: list(itertools.chain.from_iterable(preds_r.values())), 3)
    _, t_obj = timeit(lambda: np.fromiter(itertools.chain.from_iterable(preds_r.values()), object, n_q * 100), 1)
    rows.append(row(f"mAP@100, {n_q:,} retrieval queries x 100 (dicts of string ids)", t_v3, t_b3, '',
                    f'map_at_k(dict query -> list of index ids: per query a set of its relevant ids and one C-level pass over its list, map(set.__contains__) + itertools.compress) vs '
                    f'per-entry loop over the same dicts. Bound by Python objects: '
                    f'only flattening the {n_q * 100:,} string references into a list takes {t_flat:.2f} s, into a numpy object '
                    f'array {t_obj:.2f} s ({t_obj / t_b3:.0%} of the loop) before any id is read; the loop does one cached-hash '
                    f'lookup in a small set per entry, which no conversion beats. Fast inputs: map_at_k_arrays (index positions) or files', v3, b3))
    usage_r = np.where(rng.random(n_q) < .5, 'Public', 'Private')
    with open(tmp/'sol_ret.csv', 'w') as f:
        f.write('id,images,Usage\n' + ''.join(f'{q},{" ".join(sol_r[q])},{u}\n' for q, u in zip(qids, usage_r.tolist())))
    with open(tmp/'sub_ret.csv', 'w') as f:
        f.write('id,images\n' + ''.join(f'{q},{" ".join(preds_r[q])}\n' for q in qids))
    del sol_r, preds_r
    rows.append(file_row(f"mAP@100 of a {n_q:,}-query submission file (score_submission: Public, Private, all, precision@k)",
                         tmp/'sub_ret.csv', tmp/'sol_ret.csv', 'retrieval'))
    import shutil; shutil.rmtree(tmp, ignore_errors=True)
    def loop_arrays_ret():
        rl = ranked.tolist(); gl = [g.tolist() for g in gt_pos]    # the same numpy inputs, into Python lists
        return map_loop(dict(enumerate(rl)), dict(enumerate(gl)))
    listed = np.bincount(np.concatenate(gt_pos)); shared = (listed > 1).sum() / (listed > 0).sum()
    v4, t_v4 = timeit(lambda: map_at_k_arrays(ranked, gt_pos), 3)
    b4, t_b4 = timeit(loop_arrays_ret)
    assert abs(v4 - v3) <= 1e-12
    rows.append(row(f"mAP@100, {n_q:,} queries, array path (map_at_k_arrays), random overlapping relevant sets", t_v4, t_b4, '',
                    'map_at_k_arrays(int matrix, gt positions) vs .tolist() + per-entry loop over the lists; each query its own '
                    f'random relevant set ({shared:.0%} of the listed images are relevant to several queries); one sort of '
                    'the (query, item, rank) keys finds the hits', v4, b4))
    # GLDv2-like ground truth: a query's relevant images are its landmark's index images, disjoint across landmarks
    # and shared (one array) by the queries of a landmark; rankings built the same way as above
    n_lm = n_q // 5
    sizes = rng.integers(1, 31, n_lm)
    lm_sets = np.split(rng.permutation(n_idx)[:sizes.sum()], np.cumsum(sizes)[:-1])
    gt_lm = [lm_sets[l] for l in rng.integers(0, n_lm, n_q).tolist()]
    ranked_lm = rng.integers(0, n_idx, (n_q, 100))
    for q in range(n_q):
        g = gt_lm[q][rng.permutation(len(gt_lm[q]))[: max(1, len(gt_lm[q]) // 3)]]
        ranked_lm[q, rng.choice(100, len(g), replace=False)] = g
    def loop_arrays_lm():
        rl = ranked_lm.tolist(); gl = [g.tolist() for g in gt_lm]
        return map_loop(dict(enumerate(rl)), dict(enumerate(gl)))
    v5, t_v5 = timeit(lambda: map_at_k_arrays(ranked_lm, gt_lm), 3)
    b5, t_b5 = timeit(loop_arrays_lm)
    rows.append(row(f"mAP@100, {n_q:,} queries, array path (map_at_k_arrays), GLDv2-like ground truth ({n_lm:,} landmarks, disjoint index sets)",
                    t_v5, t_b5, '', 'map_at_k_arrays(int matrix, per-query arrays of the landmark\'s index positions) vs .tolist() + '
                    'per-entry loop over the lists; the same one-sort path', v5, b5))

    lines = ['| work | ours (s) | loop (s) | speed-up | target |', '|---|---:|---:|---:|---|']
    for r in rows: lines.append(f"| {r['work']} | {r['value']:.3f} | {r['baseline_value']:.2f} | {r['ratio']:.1f}x | "
                                f"{r['target']}{'' if r['ok'] is None else ' ok' if r['ok'] else ' MISSED'} |")
    print('\n'.join(lines))
    rows = [{k: v for k, v in r.items() if not (k == 'ok' and v is None)} for r in rows]   # no target, no verdict
    out = dict(module='metrics', quick=quick, date=dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
               machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)", rows=rows)
    res = Path(__file__).resolve().parent/'results'/'metrics.json'
    with atomic_write(res, 'w') as f: json.dump(out, f, indent=1)
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='small, fast version')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help='accepted for the bench contract; metrics run on the CPU')
    main(ap.parse_args().quick)

"""The official GLDv2 scorer (Kaggle's: DELF `dataset_file_io.py` + `metrics.py`), re-written per item:
the reference that tests/test_metrics_files_random.py checks `landmark2020.submission` against, and the baseline that
bench/bench_metrics.py times it against. Straightforward loops on purpose: the csv module line by line, Ignored ids
skipped, an empty cell = no prediction, one trailing space allowed; GAP with ties by id, mAP@k with a duplicate
keeping its rank slot and each query divided by min(#relevant, k)."""
import csv, io

def read_solution(text:str, task:str):
    "`(public, private, ignored)`: id -> list of landmark ids (recognition, ints) or index ids (retrieval)."
    public, private, ignored = {}, {}, set()
    rd = csv.reader(io.StringIO(text)); next(rd)
    for id_, cell, usage in rd:
        if usage == 'Ignored': ignored.add(id_); continue
        gt = ([int(x) for x in cell.split(' ')] if cell else []) if task == 'recognition' else cell.split(' ')
        if usage == 'Public': public[id_] = gt
        elif usage == 'Private': private[id_] = gt
        else: raise ValueError(usage)
    return public, private, ignored

def read_predictions(text:str, public_ids, private_ids, ignored, task:str):
    "`(public, private)`: id -> (landmark_id, score) (recognition) or list of index ids (retrieval)."
    public, private = {}, {}
    rd = csv.reader(io.StringIO(text)); next(rd)
    for row in rd:
        if not row: continue
        id_, cell = row
        if id_ in public or id_ in private: raise ValueError(f'repeated {id_}')
        if id_ in ignored or not cell: continue
        tok = cell.split(' ')
        if tok[-1] == '': tok = tok[:-1]
        if task == 'recognition':
            if len(tok) != 2: raise ValueError(cell)
            pred = (int(tok[0]), float(tok[1]))
        else: pred = tok
        if id_ in public_ids: public[id_] = pred
        elif id_ in private_ids: private[id_] = pred
        else: raise ValueError(f'unknown {id_}')
    return public, private

def gap_loop(preds:dict, sol:dict) -> float:
    "preds: id -> (landmark_id, score); sol: id -> list of landmark ids. Rank by score desc, then id asc."
    return gap_rows_loop(((i, c, sc) for i, (c, sc) in preds.items()), sol)

def gap_rows_loop(rows, sol:dict) -> float:
    "rows: (id, landmark_id, score) triples (e.g. a DataFrame's columns zipped); sol as in `gap_loop`."
    m = sum(1 for v in sol.values() if v)
    if m == 0: return float('nan')
    total = correct = 0; s = 0.0
    for i, c, _ in sorted(rows, key=lambda r: (-r[2], r[0])):
        total += 1
        if c in sol[i]: correct += 1; s += correct / total
    return s / m

def top1_loop(preds:dict, sol:dict) -> float:
    "Share of the landmark images whose prediction is right."
    qs = [k for k, v in sol.items() if v]
    return sum(1 for k in qs if k in preds and preds[k][0] in sol[k]) / len(qs) if qs else float('nan')

def map_loop(preds:dict, sol:dict, k:int=100) -> float:
    "preds: query -> ranked list; sol: query -> relevant list (non-empty)."
    if not sol: return float('nan')
    total = 0.0
    for q, rel in sol.items():
        rel = set(rel); seen = set(); hits = 0; ap = 0.0
        for i, x in enumerate(preds.get(q, ())[:k]):
            if x in rel and x not in seen:   # one set lookup for a miss (seen holds relevant ids only)
                seen.add(x); hits += 1; ap += hits / (i + 1)
        total += ap / min(len(rel), k)
    return total / len(sol)

def official_score(sub_text:str, sol_text:str, task:str):
    "`(public, private)` scores of a submission's text against a solution's text."
    pub, priv, ign = read_solution(sol_text, task)
    ppub, ppriv = read_predictions(sub_text, pub, priv, ign, task)
    f = gap_loop if task == 'recognition' else map_loop
    return f(ppub, pub), f(ppriv, priv)

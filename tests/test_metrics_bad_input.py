"""Every kind of malformed submission or solution, through the `lm_score` command line: exit status 2,
one line `error: <file>, line <N>: <what is wrong>` on stderr, no traceback, nothing on stdout."""
import contextlib, gzip, io, re, runpy, sys, types
from pathlib import Path
import pytest

A, B, C, D = (f'{i:016x}' for i in (1, 2, 3, 4))
IDX = [f'{i:016x}' for i in range(100, 260)]
SOL_REC = f'id,landmarks,Usage\n{A},1,Public\n{B},,Private\n{C},5,Ignored\n'
SOL_RET = f'id,images,Usage\n{A},{IDX[0]} {IDX[1]},Public\n{B},{IDX[2]},Private\n{C},None,Ignored\n'
SUB_REC = f'id,landmarks\n{A},1 0.5\n{B},\n{C},\n'
SUB_RET = f'id,images\n{A},{IDX[0]}\n{B},\n{C},\n'

# (case id, task, which file is bad, its text (str or bytes), the message the error must contain; LINE = that file's name)
CASES = [
    # recognition submissions
    ('rec-header', 'recognition', 'sub', f'id,landmark\n{A},1 0.5\n', "LINE, line 1: bad header 'id,landmark' (expected 'id,landmarks')"),
    ('rec-empty-file', 'recognition', 'sub', '', 'LINE: empty file'),
    ('rec-repeated-id', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n{B},\n{A},2 0.5\n{C},\n', f"LINE, line 4: id '{A}' is repeated (first at line 2)"),
    ('rec-invalid-id', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n../etc/passwd,1 0.5\n', "LINE, line 3: invalid id '../etc/passwd'"),
    ('rec-unknown-id', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n{B},\n{C},\n{D},1 0.5\n', f"LINE, line 5: id '{D}' is not a test id"),
    ('rec-missing-test-id', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n{C},\n', f"LINE: 1 test id(s) have no row, e.g. '{B}'"),
    ('rec-too-many-fields', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5,x\n', 'LINE, line 2: expected 2 comma-separated fields, found 3'),
    ('rec-too-few-fields', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n{B}\n', 'LINE, line 3: expected 2 comma-separated fields, found 1'),
    ('rec-three-tokens', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5 7\n', "LINE, line 2: malformed landmarks cell '1 0.5 7'"),
    ('rec-one-token', 'recognition', 'sub', f'id,landmarks\n{A},1\n', "LINE, line 2: malformed landmarks cell '1'"),
    ('rec-landmark-not-int', 'recognition', 'sub', f'id,landmarks\n{A},x 0.5\n', "LINE, line 2: malformed landmarks cell 'x 0.5'"),
    ('rec-score-not-number', 'recognition', 'sub', f'id,landmarks\n{A},1 high\n', "LINE, line 2: malformed landmarks cell '1 high'"),
    ('rec-double-space', 'recognition', 'sub', f'id,landmarks\n{A},1  0.5\n', "LINE, line 2: malformed landmarks cell '1  0.5'"),
    ('rec-nan-score', 'recognition', 'sub', f'id,landmarks\n{A},1 0.5\n{B},2 nan\n', "LINE, line 3: score 'nan' is not a finite number"),
    ('rec-inf-score', 'recognition', 'sub', f'id,landmarks\n{A},1 -inf\n', "LINE, line 2: score '-inf' is not a finite number"),
    ('rec-overflow-score', 'recognition', 'sub', f'id,landmarks\n{A},1 1e999\n', "LINE, line 2: score '1e999' is not a finite number"),
    ('rec-not-utf8', 'recognition', 'sub', b'id,landmarks\n' + A.encode() + b',1 0.5\n' + B.encode() + b',\xff\xfe\n', 'LINE, line 3: not UTF-8 text'),
    ('rec-corrupt-gzip', 'recognition', 'sub', b'\x1f\x8b\x08garbage', 'LINE: corrupt gzip file'),
    ('rec-quoted-bad-cell', 'recognition', 'sub', f'id,landmarks\n"{A}","1,0.5"\n', "LINE, line 2: malformed landmarks cell '1,0.5'"),
    # retrieval submissions
    ('ret-header', 'retrieval', 'sub', f'id,landmarks\n{A},1 0.5\n', "LINE, line 1: bad header 'id,landmarks' (expected 'id,images')"),
    ('ret-101-ids', 'retrieval', 'sub', f'id,images\n{A},{" ".join(IDX[:101])}\n', 'LINE, line 2: 101 index ids in the images cell (at most 100 allowed)'),
    ('ret-empty-token', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]}  {IDX[1]}\n', "LINE, line 2: invalid index id '' at position 2"),
    ('ret-invalid-index-id', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]} zz\n', "LINE, line 2: invalid index id 'zz' at position 2"),
    ('ret-uppercase-index-id', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]} ABCDEF0123456789\n', "LINE, line 2: invalid index id 'ABCDEF0123456789' at position 2"),
    ('ret-repeated-id', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]}\n{A},{IDX[1]}\n', f"LINE, line 3: id '{A}' is repeated (first at line 2)"),
    ('ret-unknown-id', 'retrieval', 'sub', f'id,images\n{A},\n{B},\n{C},\n{D},{IDX[0]}\n', f"LINE, line 5: id '{D}' is not a test id"),
    ('ret-missing-test-id', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]}\n', 'LINE: 2 test id(s) have no row'),
    ('ret-carriage-return', 'retrieval', 'sub', f'id,images\n{A},{IDX[0]}\r{IDX[1]}\n{B},\n{C},\n', 'LINE, line 2: a carriage return inside the line'),
    # recognition solutions
    ('sol-rec-header', 'recognition', 'sol', f'id,landmarks\n{A},1\n', "LINE, line 1: bad header 'id,landmarks' (expected 'id,landmarks,Usage')"),
    ('sol-rec-usage', 'recognition', 'sol', f'id,landmarks,Usage\n{A},1,Public\n{B},,public\n', "LINE, line 3: bad Usage 'public'"),
    ('sol-rec-repeated-id', 'recognition', 'sol', f'id,landmarks,Usage\n{A},1,Public\n{A},2,Private\n', f"LINE, line 3: id '{A}' is repeated (first at line 2)"),
    ('sol-rec-bad-cell', 'recognition', 'sol', f'id,landmarks,Usage\n{A},1 x,Public\n', "LINE, line 2: malformed landmarks cell '1 x'"),
    ('sol-rec-fields', 'recognition', 'sol', f'id,landmarks,Usage\n{A},1,Public,\n', 'LINE, line 2: expected 3 comma-separated fields, found 4'),
    ('sol-rec-invalid-id', 'recognition', 'sol', f'id,landmarks,Usage\nnot-an-id,1,Public\n', "LINE, line 2: invalid id 'not-an-id'"),
    ('sol-rec-empty', 'recognition', 'sol', '', 'LINE: empty file'),
    # retrieval solutions
    ('sol-ret-empty-query', 'retrieval', 'sol', f'id,images,Usage\n{A},,Public\n', 'LINE, line 2: a Public query needs at least one index id'),
    ('sol-ret-repeated-image', 'retrieval', 'sol', f'id,images,Usage\n{A},{IDX[0]} {IDX[0]},Private\n', f"LINE, line 2: index id '{IDX[0]}' appears twice in the same row"),
    ('sol-ret-invalid-image', 'retrieval', 'sol', f'id,images,Usage\n{A},{IDX[0]} x,Private\n', "LINE, line 2: invalid index id 'x' at position 2"),
    ('sol-ret-usage', 'retrieval', 'sol', f'id,images,Usage\n{A},{IDX[0]},Hidden\n', "LINE, line 2: bad Usage 'Hidden'"),
]

def installed_script():
    """The venv's `lm_score` console script when it runs the entry point that settings.ini declares, else None (a
    venv installed from another checkout: the tests then run that entry point themselves)."""
    script, ini = Path(sys.executable).parent/'lm_score', Path(__file__).resolve().parents[1]/'settings.ini'
    module = re.search(r'lm_score=([\w.]+):lm_score', ini.read_text()).group(1)
    return script if script.exists() and f'from {module} import lm_score' in script.read_text() else None

SCRIPT = installed_script()

def run(*args):
    """`lm_score ARGS`: the installed console script, executed in this process with `runpy` (as `__main__`, so
    fastcore parses `sys.argv` exactly as in a shell) to keep 40 cases fast; tests/test_metrics_cli.py also runs it
    as a subprocess."""
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = [str(SCRIPT or 'lm_score')] + [str(a) for a in args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if SCRIPT: runpy.run_path(str(SCRIPT), run_name='__main__')
            else:
                from fastcore.script import _run_cli
                from landmark2020.submission import lm_score
                _run_cli(lm_score.__wrapped__, False)
    except SystemExit as e: code = 0 if e.code is None else e.code   # sys.exit(None): success
    finally: sys.argv = argv
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())

@pytest.mark.parametrize('case,task,which,text,msg', CASES, ids=[c[0] for c in CASES])
def test_bad_file_exits_2_naming_file_and_line(tmp_path, case, task, which, text, msg):
    good_sol, good_sub = (SOL_REC, SUB_REC) if task == 'recognition' else (SOL_RET, SUB_RET)
    sol, sub = tmp_path/'solution.csv', tmp_path/'submission.csv'
    sol.write_text(good_sol); sub.write_text(good_sub)
    bad = sub if which == 'sub' else sol
    (bad.write_bytes if isinstance(text, bytes) else bad.write_text)(text)
    r = run('--task', task, sub, sol)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == '' and 'Traceback' not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert line.count('\n') == 0 and line.startswith('error: '), line
    assert msg.replace('LINE', str(bad)) in line, line

def test_good_files_score(tmp_path):
    "The base files the cases above corrupt are themselves fine (so each failure is the corruption's)."
    for task, sol, sub in (('recognition', SOL_REC, SUB_REC), ('retrieval', SOL_RET, SUB_RET)):
        (tmp_path/'sol.csv').write_text(sol); (tmp_path/'sub.csv').write_text(sub)
        r = run('--task', task, tmp_path/'sub.csv', tmp_path/'sol.csv', '--json')
        assert r.returncode == 0, r.stderr

def test_gzip_submission_scores_like_plain(tmp_path):
    (tmp_path/'sol.csv').write_text(SOL_REC)
    (tmp_path/'sub.csv').write_text(SUB_REC)
    (tmp_path/'sub.csv.gz').write_bytes(gzip.compress(SUB_REC.encode()))
    a, b = run('--task', 'recognition', tmp_path/'sub.csv', tmp_path/'sol.csv', '--json'), \
           run('--task', 'recognition', tmp_path/'sub.csv.gz', tmp_path/'sol.csv', '--json')
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout

"""The README is a front door that must stay true: its Python quickstart runs as written (on the toy data), its
commands exist, its links resolve, and it stays short."""
import configparser, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT/'README.md').read_text()

def test_short_and_linked():
    assert len(README.encode()) <= 12 * 1024, f"README is {len(README.encode())} bytes: keep it <= 12 KB"
    for link in re.findall(r'\]\(([^)#:]+)\)', README):
        assert (ROOT/link).exists(), f"README links to {link}, which does not exist"
    assert not re.search(r'\b(seeds|peers|stack|conventions|offline_data)\.md\b', README)

def test_commands_exist():
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    scripts = {s.split('=')[0] for s in cfg['DEFAULT']['console_scripts'].split()}
    table = set(re.findall(r'^\| `(lm_\w+)', README, re.M))
    assert table == scripts, f"README command table {sorted(table)} != console_scripts {sorted(scripts)}"

def test_python_quickstart_runs(tmp_path):
    code = README.split('The same from Python:')[1].split('```python')[1].split('```')[0]
    from landmark2020.toy import make_toy_gldv2
    toy = make_toy_gldv2(tmp_path/'toy', seed=0, n_train=3, n_index=1, n_test=1)
    code = code.replace('/data/gldv2', str(toy)).replace("'configs/smoke.yaml'", repr(str(ROOT/'configs'/'smoke.yaml')))
    code += "\nr = score_submission('rec.csv', data.csv('recognition_solution_v2.1.csv'), 'recognition')\nprint('GAP', r)\n"
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    p = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path/'runs'/'smoke'/'model'/'model.safetensors').exists() and (tmp_path/'rec.csv').exists()
    assert 'GAP' in p.stdout

def test_index_notebook_matches_readme():
    "nbs/index.ipynb (the docs' front page) says what the README says: the two commands and the reading order."
    import json
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    text = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    for title in ('Two commands', 'Read it like a book'):
        body = README.split(f'## {title}\n', 1)[1].split('\n## ', 1)[0].strip().replace('](nbs/', '](')
        assert body in text, f"nbs/index.ipynb is out of date with the README section '{title}'"

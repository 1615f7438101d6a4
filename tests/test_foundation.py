"""The project itself: the wheel builds from settings.ini, and `make test` refuses notebooks that were edited
without exporting."""
import subprocess, sys, zipfile, configparser, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _cfg():
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini'); return c['DEFAULT']

def test_settings_split_runtime_and_dev():
    cfg = _cfg()
    runtime, dev = cfg['requirements'].split(), cfg['dev_requirements'].split()
    assert cfg['lib_name'] == cfg['lib_path'] == 'landmark2020'
    for pkg in ('torch', 'timm', 'fastai', 'pandas', 'numpy', 'pillow'):
        assert any(r.startswith(pkg) for r in runtime), pkg
    assert not any(r.startswith(('nbdev', 'pytest', 'faiss')) for r in runtime), 'dev/optional deps leaked into runtime'
    assert any(r.startswith('nbdev') for r in dev)

def test_wheel_builds(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                        '-w', str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    whl, = tmp_path.glob('landmark2020-*.whl')
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        assert 'landmark2020/core.py' in names
        ep = z.read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    for script in _cfg()['console_scripts'].split(): assert script.split('=')[0] in ep
    assert not any(n.startswith(('nbs/', 'tests/', 'submission/')) for n in names)

@pytest.mark.skipif(shutil.which('git') is None or shutil.which('make') is None, reason='needs git and make')
def test_unexported_notebook_edit_fails_make(tmp_path):
    if subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True).returncode: pytest.skip('no commits')
    clone = tmp_path/'clone'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    (clone/'.venv').symlink_to(ROOT/'.venv')
    make = ['make', '-s', '-C', str(clone), '-o', '.venv/.installed', 'check-sync']
    ok = subprocess.run(make, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    nb = clone/'nbs'/'00_core.ipynb'
    nb.write_text(nb.read_text().replace('ID_PATTERN = r', 'ID_PATTERN2 = 1\\nID_PATTERN = r', 1))
    subprocess.run(['git', '-C', str(clone), 'commit', '-qam', 'edit without export'], check=True,
                   env={'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@t', 'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@t', 'PATH': '/usr/bin:/bin'})
    bad = subprocess.run(make, capture_output=True, text=True)
    assert bad.returncode != 0
    assert 'nbdev_export' in bad.stdout + bad.stderr

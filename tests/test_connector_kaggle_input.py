"""A Kaggle input folder (`/kaggle/input/<competition>`: read-only, found through `LandmarkData.from_kaggle`) and a
local copy of the same data give the same layout, ids, labels, index, subsets and training frame, and nothing is
ever written into the input folder (not even by `lm_index`, whose parts and output go elsewhere)."""
import os, shutil, stat, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
from landmark2020.data import LandmarkData, build_index, build_subset, train_frame, load_index
from landmark2020.toy import make_toy_competition

BIN = Path(sys.executable).parent

def snapshot(root:Path) -> dict:
    "Every path under `root` with its size and mtime (a write anywhere changes it)."
    out = {}
    for dp, dn, fn in os.walk(root):
        for n in dn + fn:
            p = Path(dp)/n; st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return out

def read_only(root:Path):
    for dp, dn, fn in os.walk(root):
        for n in fn: os.chmod(Path(dp)/n, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        for n in dn: os.chmod(Path(dp)/n, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.chmod(root, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)

@pytest.fixture(scope='module', params=['landmark-recognition-2020', 'landmark-retrieval-2021'])
def pair(request, tmp_path_factory):
    comp = request.param
    base = tmp_path_factory.mktemp('kaggle')
    local = make_toy_competition(base/'local'/comp, comp, seed=1)
    kin = base/'kaggle'/'input'
    shutil.copytree(local, kin/comp)
    read_only(kin/comp)
    yield comp, local, kin
    for dp, dn, fn in os.walk(kin):                         # let pytest clean up
        for n in dn: os.chmod(Path(dp)/n, 0o755)
    os.chmod(kin, 0o755)

def test_same_data_through_both_doors(pair, tmp_path):
    comp, local, kin = pair
    before = snapshot(kin)
    k, l = LandmarkData.from_kaggle(comp, input_dir=kin), LandmarkData(local)
    assert k.root == kin/comp and k.layout == l.layout and k.splits == l.splits
    assert k.layout == {'landmark-recognition-2020': 'kaggle-recognition-2020', 'landmark-retrieval-2021': 'kaggle-retrieval-2021'}[comp]
    for split in k.splits:
        pd.testing.assert_series_equal(k.ids(split), l.ids(split))
        ik, il = build_index(k, split, workers=2, executor='thread'), build_index(l, split, workers=2, executor='thread')
        pd.testing.assert_frame_equal(ik, il)                  # paths are relative to the root: the frames are equal
        assert ik.ok.all() and len(ik) == len(l.ids(split))
        assert (ik.path.map(lambda p: (kin/comp/p).is_file())).all()
    if comp == 'landmark-recognition-2020':
        pd.testing.assert_frame_equal(k.labels('train'), l.labels('train'))
        pd.testing.assert_frame_equal(build_subset(k, 'clean'), build_subset(l, 'clean'))
        fk, mk = train_frame(k, 'clean', index=build_index(k, 'train', executor='serial'), n_valid=1, seed=0)
        fl, ml = train_frame(l, 'clean', index=build_index(l, 'train', executor='serial'), n_valid=1, seed=0)
        assert mk == ml
        assert fk.path.str.startswith(str(kin/comp) + '/').all()
        fk = fk.assign(path=fk.path.str.slice(len(str(kin/comp)) + 1)); fl = fl.assign(path=fl.path.str.slice(len(str(local)) + 1))
        pd.testing.assert_frame_equal(fk, fl)
    assert snapshot(kin) == before                             # nothing written into the input folder

def test_lm_index_on_a_read_only_input(pair, tmp_path):
    comp, local, kin = pair
    before = snapshot(kin)
    split = 'train' if comp == 'landmark-recognition-2020' else 'index'
    out = tmp_path/'working'/f'{split}.parquet'
    out.parent.mkdir()
    r = subprocess.run([str(BIN/'lm_index'), str(kin/comp), '--split', split, '--out', str(out), '--workers', '2'],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(load_index(out), build_index(local, split, executor='serial'))
    assert snapshot(kin) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]     # the resumable parts were cleaned up

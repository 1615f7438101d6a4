"""The toy builder's Debian tier (opencv-doc's real multi-view pairs, KDE/MATE wallpapers) from an already unpacked
cache (tests never download: skipped when no cache is there; `lm_toy --sources deb` or the demo fills it)."""
import os
from pathlib import Path
import pandas as pd
import pytest
from landmark2020.toy import make_toy_gldv2, fetch_debian_photos
from landmark2020.data import build_index, LandmarkData

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [Path(os.environ['LM_CACHE'])/'debian' if os.environ.get('LM_CACHE') else None,
              ROOT/'data'/'cache'/'debian', Path.home()/'.cache'/'landmark2020'/'debian']
CACHE = next((c for c in CANDIDATES if c is not None and (c/'.opencv-doc.unpacked').exists()), None)
pytestmark = pytest.mark.skipif(CACHE is None, reason='no unpacked Debian photo cache (run `lm_toy DEST --sources deb` once)')

def test_deb_tier(tmp_path):
    root = fetch_debian_photos(CACHE)                      # idempotent: the markers are there, nothing is downloaded
    assert root == CACHE/'root'
    kw = dict(seed=0, sources='deb', deb_root=root, n_train=2, n_index=1, n_test=1, n_noisy=0, n_distractor_index=1,
              n_distractor_test=1, size=(64, 96))
    deb, pip = make_toy_gldv2(tmp_path/'deb', **kw), make_toy_gldv2(tmp_path/'pip', **(kw | dict(sources='pip', deb_root=None)))
    lms = pd.read_csv(deb/'toy_landmarks.csv')
    assert len(lms) > 2 * len(pd.read_csv(pip/'toy_landmarks.csv'))                      # many more landmarks
    multi = lms[lms.kind == 'multiview']
    assert multi.sources.str.contains('opencv/').sum() >= 5                                # real viewpoint pairs
    assert multi.sources.str.split().map(len).min() >= 2                                   # queries from another view
    ix = build_index(deb, 'train', executor='serial')
    assert ix.ok.all() and len(ix) == len(pd.read_csv(deb/'train.csv'))
    assert LandmarkData(deb).layout == 'gldv2'
    again = make_toy_gldv2(tmp_path/'deb2', **kw)                                          # deterministic
    assert (again/'train.csv').read_bytes() == (deb/'train.csv').read_bytes()
    i = pd.read_csv(deb/'train.csv').id[0]
    p = f'train/{i[0]}/{i[1]}/{i[2]}/{i}.jpg'
    assert (again/p).read_bytes() == (deb/p).read_bytes()

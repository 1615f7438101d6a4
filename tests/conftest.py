"Test environment: offline, tiny, CPU. Every test runs with HF_HUB_OFFLINE=1 and IN_TEST=1."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('IN_TEST', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

import pytest

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    "The default toy GLDv2 tree (seed 0), built once per test module (a module may define its own `toy`)."
    from landmark2020.toy import make_toy_gldv2
    return make_toy_gldv2(tmp_path_factory.mktemp('toy')/'toy', seed=0)

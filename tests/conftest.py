"Test environment: offline, tiny, CPU. Every test runs with HF_HUB_OFFLINE=1 and IN_TEST=1."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('IN_TEST', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

#!/usr/bin/env python
"""Run every `bench/bench_*.py` script and write `bench/RESULTS.md`: the one benchmarks table the README quotes.

    .venv/bin/python bench/run_all.py            # full size (what `make bench` runs)
    .venv/bin/python bench/run_all.py --quick    # each script's small version
    .venv/bin/python bench/run_all.py --only metrics,inference --timeout 1800

Every number in RESULTS.md comes from the JSON files the scripts write in this run; nothing is typed by hand.
A script that is missing, fails, times out or writes no JSON gets a row saying so (the run goes on).

## The contract for `bench/bench_<module>.py`

* accepts `--quick` (a small, fast version; the full one runs without it);
* prints its own Markdown table on stdout (kept verbatim in RESULTS.md under "Details");
* writes `bench/results/<module>.json` (atomically is best) with this shape:

```json
{
  "module": "metrics",
  "quick": false,
  "rows": [
    {"work": "GAP, 1,000,000 recognition predictions",     # what was measured
     "baseline": "per-item Python loop (same run)",        # what it is compared against
     "ratio": 41.3,                                        # baseline / ours: > 1 means ours is better
     "value": 0.21, "baseline_value": 8.67, "unit": "s",   # the absolute figures (lower is better for s)
     "absolute": "0.21 s vs 8.67 s",                       # optional: free text; made from the three above when absent
     "target": ">= 20x",                                   # optional: the issue's target
     "ok": true,                                           # optional: target met?
     "notes": "identical to 1e-12"}                        # optional
  ]
}
```

`device` (cpu / cuda), when given, is shown beside the module. `module`, `quick` and `machine`/`date` are filled in by this script when absent (from the file name, the flag
and this machine). A top-level list of rows is accepted too. Throughput rows use a `unit` like `img/s`
with `higher_is_better: true` (the ratio is still computed by the script: ours / baseline for throughput).
"""
from __future__ import annotations
import argparse, datetime as dt, json, os, platform, subprocess, sys, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH/'results'

# the scripts the issues ask for (a missing one gets a row that says so)
EXPECTED = ['connector', 'metrics', 'model', 'train', 'inference']

def machine() -> str:
    "One line describing this machine: CPU model, cores, RAM, GPU, torch."
    cpu = platform.processor() or platform.machine()
    try:
        for l in Path('/proc/cpuinfo').read_text().splitlines():
            if l.startswith('model name'): cpu = l.split(':', 1)[1].strip(); break
    except OSError: pass
    try: mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError): mem = '? RAM'
    gpu = 'no GPU'
    try:
        import torch
        tv = f"torch {torch.__version__}"
        if torch.cuda.is_available(): gpu = torch.cuda.get_device_name(0)
    except Exception: tv = 'no torch'
    return f"{cpu}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores, {mem}, {gpu}, {tv}, Python {platform.python_version()}"

def load_avg() -> str:
    try: return ' / '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError: return '?'

def fmt_num(x) -> str:
    if x is None: return ''
    if isinstance(x, bool): return str(x)
    if isinstance(x, int): return f'{x:,}'
    if isinstance(x, float):
        if x != x: return 'nan'
        a = abs(x)
        if a >= 1000: return f'{x:,.0f}'
        if a >= 10: return f'{x:.1f}'
        if a >= 0.1: return f'{x:.2f}'
        return f'{x:.3g}'
    return str(x)

def absolute(r: dict) -> str:
    "The absolute figures of a row: its `absolute` text, else `value unit vs baseline_value unit`."
    if r.get('absolute'): return str(r['absolute'])
    u = f" {r['unit']}" if r.get('unit') else ''
    if r.get('value') is not None and r.get('baseline_value') is not None:
        return f"{fmt_num(r['value'])}{u} vs {fmt_num(r['baseline_value'])}{u}"
    if r.get('value') is not None: return f"{fmt_num(r['value'])}{u}"
    return ''

def ratio(r: dict):
    "The row's ratio (better / worse, > 1 means ours wins); computed from the values when the script gave none."
    if isinstance(r.get('ratio'), (int, float)): return float(r['ratio'])
    v, b = r.get('value'), r.get('baseline_value')
    if isinstance(v, (int, float)) and isinstance(b, (int, float)) and v and b:
        return v/b if r.get('higher_is_better') else b/v
    return None

def rows_of(data) -> list[dict]:
    "The rows of a result file (a dict with `rows`/`results`, or a list); raises ValueError for other shapes."
    rows = data.get('rows', data.get('results')) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"expected {{'rows': [{{...}}, ...]}}, got keys {sorted(data) if isinstance(data, dict) else type(data).__name__}")
    return rows

def md_cell(x) -> str: return str(x).replace('|', '\\|').replace('\n', ' ')

def run_script(path: Path, quick: bool, timeout: float, env: dict) -> dict:
    "Run one bench script; return its status, wall time, stdout and stderr tail."
    cmd = [sys.executable, str(path)] + (['--quick'] if quick else [])
    t0 = time.time()
    print(f"\n=== {path.name} {'--quick' if quick else ''}", flush=True)
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        status, out, err = ('ok' if p.returncode == 0 else f'exit code {p.returncode}'), p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        status = f'timed out after {timeout:.0f} s'
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or '')
    wall = time.time() - t0
    sys.stdout.write(out); sys.stdout.flush()
    if status != 'ok': sys.stderr.write(err[-4000:])
    print(f"--- {path.name}: {status}, {wall:.0f} s", flush=True)
    return dict(status=status, wall=wall, stdout=out, stderr=err)

def render(results: dict, mach: str, date: str, quick: bool, load0: str, load1: str) -> str:
    "RESULTS.md: the summary table, then each script's own output and any problems."
    L = [f"# Benchmarks", "",
         f"Written by `bench/run_all.py{' --quick' if quick else ''}` (`make bench`) on {date}.",
         f"Machine: {mach}. Load average before / after the run: {load0} ; {load1} "
         "(the machine may have been shared with other jobs).", "",
         "Ratio: how many times better than the baseline measured in the same run (> 1 means faster / higher).", "",
         "| work | baseline | ratio | absolute figures | target | module | machine | date |",
         "|---|---|---|---|---|---|---|---|"]
    notes, details = [], []
    short_mach = mach.split(', torch')[0]
    for mod, res in results.items():
        if res.get('rows'):
            for r in res['rows']:
                rt = ratio(r)
                tgt = md_cell(r.get('target', '')) + ('' if 'ok' not in r else (' ✅' if r['ok'] else ' ❌'))
                L.append('| ' + ' | '.join([md_cell(r.get('work', '?')), md_cell(r.get('baseline', '')),
                          f'{rt:.2f}×' if rt is not None else '', md_cell(absolute(r)), tgt, f'`{mod}`' + (f" ({md_cell(r['device'])})" if r.get('device') else ''),
                          md_cell(r.get('machine', short_mach)), md_cell(r.get('date', date))]) + ' |')
                if r.get('notes'): notes.append(f"* `{mod}` / {md_cell(r['work'])}: {md_cell(r['notes'])}")
        else:
            L.append(f"| {mod}: **no result** | | | {md_cell(res['status'])} | | `{mod}` | {short_mach} | {date} |")
        if res.get('stdout', '').strip():
            details += [f"### `bench_{mod}.py` ({res['status']}, {res['wall']:.0f} s)", "", res['stdout'].strip(), ""]
        elif res.get('wall') is not None:
            details += [f"### `bench_{mod}.py` ({res['status']}, {res['wall']:.0f} s)", "", "(no output)", ""]
        if res.get('problem'): notes.append(f"* `{mod}`: {res['problem']}")
    L.append("")
    if notes: L += ["## Notes", ""] + notes + [""]
    if details: L += ["## Details (each script's own output)", ""] + details
    return '\n'.join(L) + '\n'

def collect(mod: str, res: dict, since: float, quick: bool, mach: str, date: str) -> dict:
    "Read `bench/results/<mod>.json` written by this run into `res['rows']`, or set `res['problem']`."
    f = RESULTS/f'{mod}.json'
    if not f.exists(): res['problem'] = f"{f.relative_to(ROOT)} was not written ({res['status']})"; return res
    if f.stat().st_mtime < since:
        res['problem'] = f"{f.relative_to(ROOT)} is older than this run ({res['status']}): not used"; return res
    try:
        data = json.loads(f.read_text())
        rows = rows_of(data)
    except (ValueError, json.JSONDecodeError) as e:
        res['problem'] = f"{f.relative_to(ROOT)}: unreadable: {e}"; return res
    top = data if isinstance(data, dict) else {}
    if bool(top.get('quick', quick)) != quick:
        res['problem'] = f"{f.relative_to(ROOT)} says quick={top.get('quick')} but this run asked quick={quick}"
    for r in rows:
        for k in ('machine', 'date', 'device'):
            if top.get(k) and k not in r: r[k] = top[k]
    if res['status'] != 'ok': res['problem'] = f"the script ended with {res['status']}; rows are what it wrote before"
    res['rows'] = rows
    return res

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true', help="pass --quick to every script")
    ap.add_argument('--only', default='', help="comma-separated module names (default: every bench_*.py)")
    ap.add_argument('--timeout', type=float, default=3600, help="seconds per script")
    ap.add_argument('--out', default=str(BENCH/'RESULTS.md'))
    a = ap.parse_args(argv)
    found = {p.stem[len('bench_'):]: p for p in sorted(BENCH.glob('bench_*.py'))}
    mods = [m for m in a.only.split(',') if m] if a.only else list(dict.fromkeys(EXPECTED + sorted(found)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONUNBUFFERED='1', MPLBACKEND='Agg')
    mach, date = machine(), dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    load0, results = load_avg(), {}
    for m in mods:
        if m not in found:
            results[m] = dict(status=f'bench/bench_{m}.py is missing', wall=None, stdout='',
                              problem=f"bench/bench_{m}.py does not exist yet: no numbers for `{m}`")
            print(f"\n=== bench_{m}.py: missing (skipped)", flush=True); continue
        since = time.time() - 1
        results[m] = collect(m, run_script(found[m], a.quick, a.timeout, env), since, a.quick, mach, date)
    text = render(results, mach, date, a.quick, load0, load_avg())
    out = Path(a.out)
    keep = '## Full-size rehearsal'                 # written by bench/scale.py (make bench-scale): kept as it is
    if out.exists() and keep in (old := out.read_text()):
        sec = old[old.index(keep):]
        sec = sec[:sec.find('\n## ', 1) + 1] if '\n## ' in sec[1:] else sec
        text = text.rstrip() + '\n\n' + sec.rstrip() + '\n'
    tmp = out.with_name(f'.{out.name}.tmp')
    tmp.write_text(text); os.replace(tmp, out)
    print(f"\nwrote {out}")
    bad = [m for m, r in results.items() if r.get('problem')]
    if bad: print(f"problems with: {', '.join(bad)} (see the Notes in {out.name})")
    return 0

if __name__ == '__main__': sys.exit(main())

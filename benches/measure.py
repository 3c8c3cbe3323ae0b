#!/usr/bin/env python3
"""Helpers for benches/compare.sh (standard library only).

  measure.py time N CMD...       run CMD N times, print JSON: wall seconds of each run, exit codes
  measure.py mem CMD...          run CMD once, sampling /proc/PID/status every ~1 ms; print JSON:
                                 wall, peak RssAnon (anonymous memory: heap, stacks; NOT the
                                 mapped segment pages), peak VmHWM (all resident pages, mapped file
                                 pages included), exit code
  measure.py replay PROM DATA    start Prometheus PROM on data dir DATA with no scrape targets, wait
                                 for "WAL replay completed", stop it; print JSON with its durations
"""
import json, os, re, signal, socket, subprocess, sys, tempfile, time


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cmd_time(n, argv):
    """Wall time and CPU time (user + sys, from wait4's rusage) of each run."""
    walls, cpus, rcs = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t0)
        cpus.append(ru.ru_utime + ru.ru_stime)
        rcs.append(os.waitstatus_to_exitcode(status))
        p.returncode = rcs[-1]
    print(json.dumps({"wall": walls, "cpu": cpus, "rc": rcs}))


def cmd_mem(argv):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_anon = peak_hwm = 0
    samples = 0
    while p.poll() is None:
        a = status_kib(p.pid, "RssAnon")
        h = status_kib(p.pid, "VmHWM")
        if a is not None:
            peak_anon = max(peak_anon, a)
            samples += 1
        if h is not None:
            peak_hwm = max(peak_hwm, h)
        time.sleep(0.001)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, "rc": p.returncode, "peak_rss_anon_kib": peak_anon,
                      "peak_vmhwm_kib": peak_hwm, "samples": samples}))


def go_duration(s):
    """Go's time.Duration.String(): 1m2.5s, 35.1s, 512.3ms, 12µs, 0s."""
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(h|ms|m|s|µs|us|ns)", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6,
                               "us": 1e-6, "ns": 1e-9}[unit]
    return total


def cmd_replay(prom, data):
    work = tempfile.mkdtemp(prefix="walfix-replay.")
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    logpath = os.path.join(os.path.dirname(os.path.abspath(data)), "replay-prometheus.log")
    log = open(logpath, "w")
    t0 = time.perf_counter()
    p = subprocess.Popen([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                          "--web.listen-address=127.0.0.1:%d" % port,
                          "--storage.tsdb.retention.time=3650d",
                          "--storage.tsdb.min-block-duration=24h",
                          "--storage.tsdb.max-block-duration=24h"],
                         stdout=log, stderr=subprocess.STDOUT)
    line = None
    peak_anon = 0
    try:
        deadline = time.time() + 1800
        while time.time() < deadline and p.poll() is None:
            a = status_kib(p.pid, "RssAnon")
            if a:
                peak_anon = max(peak_anon, a)
            with open(logpath) as f:
                for l in f:
                    if "WAL replay completed" in l:
                        line = l.strip()
            if line:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()
        log.close()
    if not line:
        sys.stderr.write(open(logpath).read()[-3000:])
        sys.exit("measure.py: no 'WAL replay completed' line from Prometheus (log: %s)" % logpath)
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    out = {k: go_duration(v) for k, v in fields.items() if k.endswith("_duration")}
    out["wall_until_line"] = wall
    out["peak_rss_anon_kib"] = peak_anon
    out["log_line"] = line
    print(json.dumps(out))


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "time":
        cmd_time(int(a[1]), a[2:])
    elif len(a) >= 2 and a[0] == "mem":
        cmd_mem(a[1:])
    elif len(a) == 3 and a[0] == "replay":
        cmd_replay(a[1], a[2])
    else:
        sys.exit(__doc__)


main()

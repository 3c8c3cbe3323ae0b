#!/usr/bin/env python3
"""Extract the facts our tests assert about each test corpus from the corpus NOTES.

usage: scripts/extract-facts.py [--testdata DIR] [--check]

Reads only the notes that came with the corpora (testdata/EXPECTED.md and each corpus's README.txt,
SOURCE-README.txt, DAMAGE.txt, EXPECTED.txt, EXPECTED-walonly.txt, INVENTORY.txt; memory/*/...),
never output of walfix, and writes:
  testdata/facts.json          one entry per directory of testdata/corpora/
  testdata/memory/facts.json   one entry per directory of testdata/memory/
Values the notes do not give are null. Keys of each entry are documented in testdata/README.md.

--check additionally compares the segment sizes the notes give with the files on disk and exits 1 on a
mismatch. Cross-checks between the notes themselves (EXPECTED.md vs EXPECTED*.txt, DAMAGE.txt vs the
EXPECTED 'files before' list, per-cycle sums) are always run and printed as WARN lines on stderr.
Only the Python 3 standard library is used.
"""
import argparse
import json
import os
import re
import sys

WARNINGS = []


def warn(msg):
    WARNINGS.append(msg)
    print("WARN: " + msg, file=sys.stderr)


def read(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def num(s):
    """'244575.0' / '5.820815e+06' / '410' -> int; 'None' / '-' / '' -> None."""
    if s is None:
        return None
    s = s.strip()
    if s in ("", "-", "None", "null"):
        return None
    v = float(s)
    if v != int(v):
        raise ValueError("not an integer: %r" % s)
    return int(v)


def short_version(full):
    m = re.match(r"(\d+)\.(\d+)", full or "")
    return "%s.%s" % (m.group(1), m.group(2)) if m else None


def strip_paths(s):
    """Make Prometheus's absolute-ish paths relative to the data dir: '.../data/wal/00000001' -> 'wal/00000001'."""
    return re.sub(r"\S*?/data/((?:wal|wbl)\b)", r"\1", s) if s else s


def dedup(seq):
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


# ---------------------------------------------------------------- EXPECTED.md (top level table)

def parse_expected_md(text):
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| corpus") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7:
            warn("EXPECTED.md: row with %d cells: %s" % (len(cells), line))
            continue
        name, replayed_by, state, started, corruption, samples, series = cells
        rows[name] = {
            "replayed_by": replayed_by,
            "clean": state == "clean",
            "started": started.lower().startswith("yes"),
            "started_cell": started,
            "corruption": None if corruption == "-" else corruption,
            "samples_after": num(samples),
            "series_after": num(series),
        }
    return rows


# ---------------------------------------------------------------- writer notes (README.txt)

CYCLE42 = re.compile(r"^\s*cycle (\d+): samples_appended_total=(\d+) head_series=(\d+)", re.M)
CYCLE3 = re.compile(r"^  cycle (\d+) \((\d+)s, stopped with signal (\d+), exit code (-?\d+)\):\n((?:    \S.*\n?)*)", re.M)
METRIC = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)\s*$", re.M)
SIGNALS = {"9": "SIGKILL", "15": "SIGTERM", "2": "SIGINT"}


def metrics_of(block):
    out = {}
    for m in METRIC.finditer(block):
        try:
            out[m.group(1)] = float(m.group(2))
        except ValueError:
            pass
    return out


def parse_writer_readme(text):
    """Both README formats: tools/gen-wal.sh (2.42 and memory churn-*) and tools/gen-wal-v3.py (2.53/3.5)."""
    w = {"version": None, "flags": None, "final_stop": None, "cycles": [], "samples_appended": None,
         "samples_appended_float": None, "samples_appended_histogram": None, "head_series": None,
         "head_series_created": None, "exemplars_appended": None, "segments": [], "mode": "server"}
    m = re.search(r"^(?:Prometheus|Written by): prometheus, version (\S+)", text, re.M)
    if m:
        w["version"] = m.group(1)
    if CYCLE42.search(text):
        # ---- 2.42 format
        m = re.search(r"^\s*prometheus args: (.*)$", text, re.M)
        w["flags"] = m.group(1).strip() if m else None
        m = re.search(r"final stop=(\S+) \(prometheus exit status per cycle: ([\d ]+)\)", text)
        exits = m.group(2).split() if m else []
        w["final_stop"] = m.group(1) if m else None
        for c in CYCLE42.finditer(text):
            i = int(c.group(1)) - 1
            w["cycles"].append({"samples_appended": int(c.group(2)), "head_series": int(c.group(3)),
                                "exit_status": int(exits[i]) if i < len(exits) else None})
        m = re.search(r"sum of prometheus_tsdb_head_samples_appended_total over all cycles: (\d+)", text)
        w["samples_appended"] = int(m.group(1)) if m else None
        s = sum(c["samples_appended"] for c in w["cycles"])
        if w["samples_appended"] is not None and s != w["samples_appended"]:
            warn("per-cycle samples_appended sum %d != stated sum %d" % (s, w["samples_appended"]))
        fin = text.split("just before the final stop", 1)
        if len(fin) == 2:
            fm = metrics_of(fin[1].split("\n\n", 1)[0])
            w["head_series"] = num(str(fm.get("prometheus_tsdb_head_series")))
            w["head_series_created"] = num(str(fm.get("prometheus_tsdb_head_series_created_total")))
            w["final_cycle_samples_appended_float"] = num(str(fm.get('prometheus_tsdb_head_samples_appended_total{type="float"}')))
            w["final_cycle_samples_appended_histogram"] = num(str(fm.get('prometheus_tsdb_head_samples_appended_total{type="histogram"}')))
            w["exemplars_appended_final_cycle"] = num(str(fm.get("prometheus_tsdb_exemplar_exemplars_appended_total")))
            last = w["cycles"][-1] if w["cycles"] else None
            if last and w["head_series"] != last["head_series"]:
                warn("final head_series %s != last cycle's %s" % (w["head_series"], last["head_series"]))
        sec = re.search(r"WAL after stop \(sizes in bytes; page = 32768\):\n((?:  .*\n)*)", text)
        if sec:
            for line in sec.group(1).splitlines():
                mm = re.match(r"\s*\./(\S+) (\d+)", line)
                if mm:
                    w["segments"].append({"path": "wal/" + mm.group(1), "size": int(mm.group(2))})
        return w
    # ---- gen-wal-v3.py format
    m = re.search(r"^\s*prometheus flags: (.*)$", text, re.M)
    w["flags"] = m.group(1).strip() if m else None
    if re.search(r"^\s*agent mode \(--agent", text, re.M):
        w["mode"] = "agent"
    m = re.search(r"final stop: (\S+)", text)
    w["final_stop"] = m.group(1) if m else None
    tot_f = tot_h = tot_ex = 0
    for c in CYCLE3.finditer(text):
        mt = metrics_of(c.group(5))
        pre = "prometheus_agent_samples_appended_total" if w["mode"] == "agent" else "prometheus_tsdb_head_samples_appended_total"
        f = num(str(mt.get(pre + '{type="float"}', 0)))
        h = num(str(mt.get(pre + '{type="histogram"}', 0)))
        ex = mt.get("prometheus_agent_exemplars_appended_total", mt.get("prometheus_tsdb_exemplar_exemplars_appended_total"))
        hs = mt.get("prometheus_agent_active_series", mt.get("prometheus_tsdb_head_series"))
        cyc = {"samples_appended": f + h, "samples_appended_float": f, "samples_appended_histogram": h,
               "head_series": num(str(hs)), "exemplars_appended": num(str(ex)),
               "seconds": int(c.group(2)), "stop_signal": SIGNALS.get(c.group(3), c.group(3)),
               "exit_status": int(c.group(4))}
        ooo_f = mt.get('prometheus_tsdb_head_out_of_order_samples_appended_total{type="float"}')
        ooo_h = mt.get('prometheus_tsdb_head_out_of_order_samples_appended_total{type="histogram"}')
        if ooo_f or ooo_h:
            cyc["ooo_samples_appended_float"] = num(str(ooo_f or 0))
            cyc["ooo_samples_appended_histogram"] = num(str(ooo_h or 0))
        created = mt.get("prometheus_tsdb_head_series_created_total")
        cyc["head_series_created"] = num(str(created)) if created is not None else None
        w["cycles"].append(cyc)
        tot_f += f
        tot_h += h
        tot_ex += cyc["exemplars_appended"] or 0
    if w["cycles"]:
        w["samples_appended"] = tot_f + tot_h
        w["samples_appended_float"] = tot_f
        w["samples_appended_histogram"] = tot_h
        w["exemplars_appended"] = tot_ex
        w["head_series"] = w["cycles"][-1]["head_series"]
        w["head_series_created"] = w["cycles"][-1]["head_series_created"]
    sec = re.search(r"== layout \(bytes  path\).*\n((?:\s+\d+\s+\S+\n)*)", text)
    if sec:
        for line in sec.group(1).splitlines():
            mm = re.match(r"\s*(\d+)\s+((?:wal|wbl)/\S+)", line)
            if mm:
                w["segments"].append({"path": mm.group(2), "size": int(mm.group(1))})
    return w


def parse_mixed_readme(text):
    """v3-mixed-compression-after-repair/README.txt: prose 'What:' note with a small hand inventory."""
    inv = {"segments": [], "compression": {}, "entries": {}}
    for m in re.finditer(r"^\s+(\d{8})\s+(\d+) bytes\s+(\d+) records, all (\w+)-flagged", text, re.M):
        inv["segments"].append({"name": m.group(1), "size": int(m.group(2)), "records": int(m.group(3))})
        inv["compression"][m.group(4)] = inv["compression"].get(m.group(4), 0) + int(m.group(3))
    for m in re.finditer(r"(\d{8})\s+0 bytes", text):
        inv["segments"].append({"name": m.group(1), "size": 0, "records": 0})
    m = re.search(r"(\d+) series, (\d+) float samples in total", text)
    if m:
        inv["entries"] = {"series": int(m.group(1)), "samples": int(m.group(2))}
    inv["records"] = sum(s["records"] for s in inv["segments"])
    v = re.search(r"Prometheus (\d+\.\d+\.\d+) LEFT", text)
    return inv, (v.group(1) if v else None)


# ---------------------------------------------------------------- DAMAGE.txt

def parse_damage(text):
    d = {"kind": None, "base": None, "file": None, "offset": None, "old_byte": None, "new_byte": None,
         "truncated_from": None, "truncated_to": None, "deleted": None, "fragment": None, "text": None,
         "segments_after": []}
    m = re.search(r"^(?:Damage|variant): (\S+)", text, re.M)
    d["kind"] = m.group(1) if m else None
    m = re.search(r"^(?:Source corpus|base corpus): (\S+)", text, re.M)
    d["base"] = m.group(1) if m else None
    m = re.search(r"(?:file )?(\S+): byte at offset (\d+)(?: \(0x[0-9a-f]+\))? changed (0x[0-9a-f]{2}) -> (0x[0-9a-f]{2})", text)
    if m:
        d.update(file=m.group(1), offset=int(m.group(2)), old_byte=m.group(3), new_byte=m.group(4))
    m = re.search(r"(\S+?):? truncated from (\d+) to (\d+) bytes", text)
    if m:
        d.update(file=m.group(1), truncated_from=int(m.group(2)), truncated_to=int(m.group(3)))
    m = re.search(r"deleted (\S+) \(|^(\S+) deleted", text, re.M)
    if m:
        d["file"] = d["deleted"] = m.group(1) or m.group(2)
    # the fragment the damage is in
    m = re.search(r"fragments \[\((\d+), '(\w+)', (\d+)\)", text)
    if m:
        d["fragment"] = {"offset": int(m.group(1)), "type": m.group(2), "len": int(m.group(3))}
    m = m or re.search(r"(FULL|full|FIRST) fragment at (?:offset )?(\d+) \((?:page \d+, )?(?:payload )?len (\d+)", text)
    if m and d["fragment"] is None:
        d["fragment"] = {"offset": int(m.group(2)), "type": m.group(1).lower(), "len": int(m.group(3))}
    lines = [l.strip() for l in text.splitlines()
             if l.strip() and not re.match(r"(Damage|variant|Source corpus|base corpus|Segments after damage)\b", l.strip())
             and not re.match(r"^\S+ \d+$", l.strip())]
    d["text"] = " ".join(lines)
    sec = re.search(r"Segments after damage \(name size\):\n((?:  .*\n?)*)", text)
    if sec:
        for line in sec.group(1).splitlines():
            mm = re.match(r"\s*(\S+) (\d+)", line)
            if mm:
                d["segments_after"].append({"path": "wal/" + mm.group(1), "size": int(mm.group(2))})
    return d


# ---------------------------------------------------------------- EXPECTED.txt / EXPECTED-walonly.txt

CORR = re.compile(r'err="((?:[a-z ]+: )*?)(?:read records: )?corruption in segment (\S+) at (\d+): ([^"]*)"')


def corruption_from(text):
    for line in text.splitlines():
        m = re.search(r'err="(.*?)corruption in segment (\S+) at (\d+): ([^"]*)"', line)
        if not m:
            continue
        ctx = m.group(1).rstrip(": ").strip()
        path = strip_paths(m.group(2))
        parts = path.split("/")
        log = parts[0]
        seg = int(parts[-1])
        cdir = "/".join(parts[:-1])
        return {"log": log, "dir": cdir, "checkpoint": parts[1] if len(parts) == 3 else None,
                "segment": seg, "offset": int(m.group(3)), "message": m.group(4),
                "logged": "%s at %s: %s" % (path, m.group(3), m.group(4)), "context": ctx}
    return None


def fatal_from(text):
    for line in text.splitlines():
        if re.search(r"level=(error|ERROR)\b", line) and "main.go" in line:
            m = re.search(r'err="([^"]*)"', line)
            if m:
                return strip_paths(m.group(1))
    return None


def file_list(block, prefix=""):
    out = []
    for line in block.splitlines():
        m = re.match(r"\s+(\d+)\s+((?:wal|wbl)/\S+)\s*$", line)  # v3: '  SIZE  wal/NAME'
        if m:
            out.append({"path": m.group(2), "size": int(m.group(1))})
            continue
        m = re.match(r"\s+(\S+)\s+(\d+)\s*$", line)  # 2.42: '  NAME   SIZE'
        if m and prefix:
            out.append({"path": prefix + m.group(1), "size": int(m.group(2))})
    return dedup(out)


def section(text, start, stops):
    i = text.find(start)
    if i < 0:
        return None
    rest = text[i + len(start):]
    end = len(rest)
    for s in stops:
        j = rest.find(s)
        if 0 <= j < end:
            end = j
    return rest[:end]


def parse_expected_txt(text):
    e = {"started": None, "exit_code": None, "fatal_error": fatal_from(text), "corruption": corruption_from(text),
         "repair": {"attempted": None, "wal_repaired": None, "wbl_repaired": None},
         "head_series": None, "samples_queryable": None, "agent_active_series": None,
         "files_before": [], "files_after": [], "python_reader": None, "second_start": None}
    m = re.search(r"started \(/-/ready answered\): (YES|NO)\s+exit code: (\S+)", text)
    if m:  # ---- 2.42 format
        e["started"] = m.group(1) == "YES"
        e["exit_code"] = num(m.group(2))
        m = re.search(r"^\s+prometheus_tsdb_head_series (\S+)$", text, re.M)
        e["head_series"] = num(m.group(1)) if m else None
        m = re.search(r"samples \(sum of count_over_time per metric name; stale markers not counted\): (\d+)", text)
        e["samples_queryable"] = num(m.group(1)) if m else None
        e["repair"]["attempted"] = "Starting corruption repair" in text
        e["files_before"] = file_list(section(text, "wal/ before:\n", ["wal/ after"]) or "", "wal/")
        e["files_after"] = file_list(section(text, "wal/ after startup:\n", ["wal/ after SIGTERM"]) or "", "wal/")
        return e
    # ---- 3.5 format
    m = re.search(r"started \(became ready\): (YES|NO)(?:\s+\(exited before ready, rc=(-?\d+)\))?", text)
    if m:
        e["started"] = m.group(1) == "YES"
        e["exit_code"] = int(m.group(2)) if m.group(2) else None
    m = re.search(r"^\s+repair attempted: (\w+); WAL repaired: (\w+); WBL repaired: (\w+)", text, re.M)
    if m:
        b = {"True": True, "False": False}
        e["repair"] = {"attempted": b.get(m.group(1)), "wal_repaired": b.get(m.group(2)), "wbl_repaired": b.get(m.group(3))}
    out = section(text, "== outcome", ["\n== "]) or ""
    m = re.search(r"prometheus_tsdb_head_series = (\S+)", out)
    e["head_series"] = num(m.group(1)) if m else None
    m = re.search(r"prometheus_agent_active_series = (\S+)", out)
    e["agent_active_series"] = num(m.group(1)) if m else None
    m = re.search(r"PromQL sum\(count_over_time\(\{__name__=~\"\.\+\"\}\[3d\]\)\) after replay = (\S+)", out)
    e["samples_queryable"] = num(m.group(1)) if m else None
    e["files_before"] = file_list(section(text, "== files before\n", ["== files after"]) or "")
    e["files_after"] = file_list(section(text, "== files after\n", ["\n== ", "\n\n"]) or "")
    m = re.search(r"^\s+stops at: (.*)$", text, re.M)
    if m:
        pr = {"stops_at": json.loads(m.group(1))}
        m = re.search(r"^\s+checkpoint: (\S+); segments read: (\[.*?\]); records read: (\d+); series entries: (\d+); "
                      r"float sample entries: (\d+)", text, re.M)
        if m:
            pr.update(checkpoint=None if m.group(1) == "None" else m.group(1),
                      segments_read=json.loads(m.group(2).replace("'", '"')),
                      records_read=int(m.group(3)), series_entries=int(m.group(4)),
                      float_sample_entries=int(m.group(5)))
        e["python_reader"] = pr
    m = re.search(r"^\s+started: (YES|NO)[^;]*; repair attempted: (\w+); WAL repaired: (\w+); WBL repaired: (\w+); "
                  r"head_series: (\S+); samples queryable: (\S+)", text, re.M)
    if m and m.group(2) != "None":
        b = {"True": True, "False": False}
        e["second_start"] = {"started": m.group(1) == "YES", "repair_attempted": b.get(m.group(2)),
                             "wal_repaired": b.get(m.group(3)), "wbl_repaired": b.get(m.group(4)),
                             "head_series": num(m.group(5)), "samples_queryable": num(m.group(6))}
    return e


def replay_version(text):
    m = re.search(r"^(?:Prometheus: prometheus, version |EXPECTED behaviour of Prometheus )(\d+\.\d+)", text or "", re.M)
    return m.group(1) if m else None


# ---------------------------------------------------------------- INVENTORY.txt

def parse_inventory(text):
    inv = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^((?:wal|wbl)\S*):\s*$", line)
        if m:
            cur = {"segments": [], "record_types": None, "entries": None, "distinct_series_refs": None,
                   "compression": None, "fragments": None, "records_spanning_fragments": None,
                   "max_fragments_per_record": None}
            inv[m.group(1)] = cur
            continue
        if cur is None:
            continue
        m = re.match(r"^\s+segment (\S+)\s+(\d+) bytes\s+page_aligned=(\w+)\s+records=(\d+)\s+last_record_end=(\d+)\s+\((.*)\)\s*$", line)
        if m:
            cur["segments"].append({"name": m.group(1), "size": int(m.group(2)), "page_aligned": m.group(3) == "True",
                                    "records": int(m.group(4)), "last_record_end": int(m.group(5)), "eof": m.group(6)})
            continue
        m = re.match(r"^\s+record types \(count of records\): (\{.*\})", line)
        if m:
            cur["record_types"] = json.loads(m.group(1))
            continue
        m = re.match(r"^\s+entries decoded \([^)]*\): (\{.*\})", line)
        if m:
            cur["entries"] = json.loads(m.group(1))
            continue
        m = re.match(r"^\s+distinct series refs in series records: (\d+)", line)
        if m:
            cur["distinct_series_refs"] = int(m.group(1))
            continue
        m = re.match(r"^\s+per-record compression flag: (\{.*\})", line)
        if m:
            cur["compression"] = json.loads(m.group(1))
            continue
        m = re.match(r"^\s+fragments: (\{.*?\}); records spanning >1 fragment: (\d+); max fragments in one record: (\d+)", line)
        if m:
            cur["fragments"] = json.loads(m.group(1))
            cur["records_spanning_fragments"] = int(m.group(2))
            cur["max_fragments_per_record"] = int(m.group(3))
    for name, d in inv.items():
        d["records"] = sum(s["records"] for s in d["segments"])
        if d["record_types"] is not None and sum(d["record_types"].values()) != d["records"]:
            warn("INVENTORY %s: record types sum %d != records %d" % (name, sum(d["record_types"].values()), d["records"]))
        if d["compression"] is not None and sum(d["compression"].values()) != d["records"]:
            warn("INVENTORY %s: compression flags sum %d != records %d" % (name, sum(d["compression"].values()), d["records"]))
    return inv


# ---------------------------------------------------------------- one corpus

def corpus_facts(root, group, name, md_rows):
    cdir = os.path.join(root, group, name)
    rel = lambda f: "%s/%s/%s" % (group, name, f)
    damage_txt = read(os.path.join(cdir, "DAMAGE.txt"))
    damage = parse_damage(damage_txt) if damage_txt else None
    base = damage["base"] if damage else None

    # writer notes: own README, else SOURCE-README (2.42 copies), else the base corpus's README (3.5 copies)
    writer_path = None
    for cand in ("README.txt", "SOURCE-README.txt"):
        if os.path.exists(os.path.join(cdir, cand)):
            writer_path = rel(cand)
            break
    if writer_path is None and base:
        writer_path = "%s/%s/README.txt" % (group, base)
    writer_text = read(os.path.join(root, writer_path)) if writer_path else ""
    mixed = None
    if writer_text and writer_text.startswith("Corpus: ") and "\nWhat: " in writer_text:
        mixed, mixed_ver = parse_mixed_readme(writer_text)
        w = parse_writer_readme("")
        w["version"] = mixed_ver
        w["segments"] = [{"path": "wal/" + s["name"], "size": s["size"]} for s in sorted(mixed["segments"], key=lambda s: s["name"])]
    else:
        w = parse_writer_readme(writer_text or "")

    exp_path = rel("EXPECTED-walonly.txt") if os.path.exists(os.path.join(cdir, "EXPECTED-walonly.txt")) else rel("EXPECTED.txt")
    exp_text = read(os.path.join(root, exp_path))
    e = parse_expected_txt(exp_text) if exp_text else parse_expected_txt("")
    if "MEMORY-REPLAY.txt" in os.listdir(cdir):
        exp_path = rel("MEMORY-REPLAY.txt")
        exp_text = read(os.path.join(root, exp_path))
        e = parse_expected_txt(exp_text)

    inv_text = read(os.path.join(cdir, "INVENTORY.txt"))
    inv = parse_inventory(inv_text) if inv_text else None
    if inv is None and mixed is not None:
        inv = {"wal": {"segments": sorted(mixed["segments"], key=lambda s: s["name"]), "record_types": None,
                       "entries": mixed["entries"], "distinct_series_refs": None, "compression": mixed["compression"],
                       "fragments": None, "records_spanning_fragments": None, "max_fragments_per_record": None,
                       "records": mixed["records"]}}

    md = md_rows.get(name)
    f = {}
    f["path"] = "%s/%s" % (group, name)
    f["prometheus"] = short_version(w["version"])
    f["prometheus_version"] = w["version"]
    f["replayed_by"] = md["replayed_by"] if md else replay_version(exp_text)
    f["mode"] = w["mode"]
    f["clean"] = md["clean"] if md else (damage is None)
    f["base"] = base
    if damage:
        damage = dict(damage)
        damage.pop("base")
        damage.pop("segments_after")
    f["damage"] = damage
    f["segments"] = e["files_before"]
    f["started"] = md["started"] if md else e["started"]
    f["exit_code"] = e["exit_code"]
    f["fatal_error"] = e["fatal_error"] if not f["started"] else None
    f["corruption"] = e["corruption"]
    f["repair"] = e["repair"]
    f["segments_after_start"] = e["files_after"] if (exp_text or "").strip() else None
    f["after_replay"] = {"head_series": md["series_after"] if md else e["head_series"],
                         "samples_queryable": md["samples_after"] if md else e["samples_queryable"],
                         "agent_active_series": e["agent_active_series"]}
    f["second_start"] = e["second_start"]
    f["writer_notes"] = writer_path
    f["writer_flags"] = w["flags"]
    f["final_stop"] = w["final_stop"]
    f["cycles"] = w["cycles"]
    f["samples_appended"] = w["samples_appended"]
    f["samples_appended_float"] = w["samples_appended_float"]
    f["samples_appended_histogram"] = w["samples_appended_histogram"]
    f["exemplars_appended"] = w["exemplars_appended"]
    f["head_series"] = w["head_series"]
    f["head_series_created"] = w["head_series_created"]
    if inv:
        f["series_records"] = sum((d["record_types"] or {}).get("series", 0) for d in inv.values()) if all(d["record_types"] is not None for d in inv.values()) else None
        f["series_entries"] = sum((d["entries"] or {}).get("series", 0) for d in inv.values())
        f["sample_entries"] = sum((d["entries"] or {}).get("samples", 0) for d in inv.values())
    else:
        f["series_records"] = f["series_entries"] = f["sample_entries"] = None
    f["inventory"] = inv
    f["python_reader"] = e["python_reader"]
    f["notes"] = sorted(x for x in os.listdir(cdir) if x.endswith(".txt"))

    # ---- cross-checks between notes
    if md and exp_text:
        if md["started"] != e["started"]:
            warn("%s: EXPECTED.md started=%s but %s says %s" % (name, md["started"], exp_path, e["started"]))
        if md["series_after"] != e["head_series"] and e["started"]:
            warn("%s: EXPECTED.md series %s != %s head_series %s" % (name, md["series_after"], exp_path, e["head_series"]))
        if md["samples_after"] != e["samples_queryable"] and e["started"]:
            warn("%s: EXPECTED.md samples %s != %s %s" % (name, md["samples_after"], exp_path, e["samples_queryable"]))
        mdc = md["corruption"]
        logged = e["corruption"]["logged"] if e["corruption"] else None
        # EXPECTED.md abbreviates 'wal/checkpoint.NNNNNNNN/' to 'checkpoint/'
        if mdc != (re.sub(r"^wal/checkpoint\.\d+/", "checkpoint/", logged) if logged else None) and mdc != logged:
            warn("%s: EXPECTED.md corruption %r != %s %r" % (name, mdc, exp_path, logged))
    if damage_txt:
        da = parse_damage(damage_txt)["segments_after"]
        if da and da != e["files_before"]:
            warn("%s: DAMAGE.txt segments %s != EXPECTED files before %s" % (name, da, e["files_before"]))
    if not damage and w["segments"] and w["segments"] != e["files_before"] and e["files_before"]:
        warn("%s: writer README segments %s != EXPECTED files before %s" % (name, w["segments"], e["files_before"]))
    if inv and e["files_before"]:
        inv_sizes = sorted(("%s/%s" % (d, s["name"]), s["size"]) for d, v in inv.items() for s in v["segments"])
        exp_sizes = sorted((x["path"], x["size"]) for x in e["files_before"])
        if inv_sizes != exp_sizes:
            warn("%s: INVENTORY segments %s != EXPECTED files before %s" % (name, inv_sizes, exp_sizes))
    return f


def parse_memory_md(text):
    """MEMORY.md: one markdown table per Prometheus version -> {corpus: {column header: value}}."""
    rows, header, version = {}, None, None
    for line in text.splitlines():
        m = re.match(r"^## Prometheus (\S+)", line)
        if m:
            version, header = m.group(1), None
            continue
        if not line.startswith("|"):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(line.replace("|", "").strip()) <= set("-: "):
            continue
        row = {"replayed_by": version}
        for h, c in zip(header[1:], cells[1:]):
            try:
                row[h] = int(c) if re.fullmatch(r"-?\d+", c) else float(c) if re.fullmatch(r"-?\d+\.\d+", c) else c
            except ValueError:
                row[h] = c
        rows[cells[0]] = row
    return rows


def check_disk(root, facts):
    bad = 0
    for name, f in facts.items():
        cdir = os.path.join(root, f["path"])
        on_disk = []
        for d in ("wal", "wbl"):
            p = os.path.join(cdir, d)
            if not os.path.isdir(p):
                continue
            for dp, dns, fns in os.walk(p):
                dns.sort()
                for fn in sorted(fns):
                    full = os.path.join(dp, fn)
                    on_disk.append({"path": os.path.relpath(full, cdir), "size": os.path.getsize(full)})
        want = sorted((x["path"], x["size"]) for x in f["segments"])
        got = sorted((x["path"], x["size"]) for x in on_disk)
        if want != got:
            print("MISMATCH %s: notes %s, disk %s" % (name, want, got), file=sys.stderr)
            bad += 1
    return bad


def seglist(segs):
    return ", ".join("%s %d" % (x["path"].replace("wal/", "", 1) if x["path"].startswith("wal/") else x["path"], x["size"])
                     for x in segs)


def markdown_table(facts):
    """The table in testdata/README.md (between the facts-table markers)."""
    head = ["corpus", "written by", "replayed by", "segments (name bytes; wal/ unless named)", "clean",
            "corruption Prometheus logged", "started", "samples appended (sum over cycles)",
            "WAL entries series / samples (INVENTORY)", "head_series before final stop",
            "after replay: head_series / queryable samples"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    dash = lambda v: "-" if v is None else str(v)
    for name, f in facts.items():
        c = f["corruption"]
        corr = c["logged"] if c else ("- (refused: %s)" % f["fatal_error"] if not f["started"] and f["fatal_error"] else "-")
        if c and not f["started"] and f["fatal_error"]:
            corr += "; then exit: " + f["fatal_error"]
        ar = f["after_replay"]
        after = "%s / %s" % (dash(ar["head_series"]), dash(ar["samples_queryable"]))
        if ar.get("agent_active_series") is not None:
            after += " (agent active series %d)" % ar["agent_active_series"]
        inv = "-" if f["series_entries"] is None else "%d / %d" % (f["series_entries"], f["sample_entries"])
        app = dash(f["samples_appended"])
        if f["samples_appended_histogram"]:
            app += " (%d float + %d histogram)" % (f["samples_appended_float"], f["samples_appended_histogram"])
        wn = f["writer_notes"] or ""
        if f["base"] and f["samples_appended"] is not None:
            app += " (base)"
        row = [name, f["prometheus"] + (" (%s)" % f["mode"] if f["mode"] != "server" else ""), dash(f["replayed_by"]),
               seglist(f["segments"]), "yes" if f["clean"] else "no", corr, "yes" if f["started"] else "NO", app, inv,
               dash(f["head_series"]) + (" (base)" if f["base"] and f["head_series"] is not None else ""), after]
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
    return "\n".join(out) + "\n"


def update_readme(root, facts):
    path = os.path.join(root, "README.md")
    text = read(path)
    if text is None:
        return
    a, b = "<!-- facts-table:start (scripts/extract-facts.py writes this table) -->\n", "<!-- facts-table:end -->"
    i, j = text.find(a), text.find(b)
    if i < 0 or j < 0:
        warn("README.md has no facts-table markers; table not written")
        return
    new = text[:i + len(a)] + markdown_table(facts) + text[j:]
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
        print("updated the table in %s" % path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testdata", default=os.path.join(here, "..", "testdata"))
    ap.add_argument("--check", action="store_true", help="compare segment sizes in the notes with the files on disk")
    args = ap.parse_args()
    root = os.path.normpath(args.testdata)
    md_rows = parse_expected_md(read(os.path.join(root, "EXPECTED.md")) or "")
    bad = 0
    for group, out in (("corpora", "facts.json"), ("memory", "memory/facts.json")):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        facts = {}
        for name in sorted(os.listdir(gdir)):
            if os.path.isdir(os.path.join(gdir, name)):
                facts[name] = corpus_facts(root, group, name, md_rows if group == "corpora" else {})
        if group == "memory":
            mem = parse_memory_md(read(os.path.join(gdir, "MEMORY.md")) or "")
            for name in facts:
                facts[name]["memory_md"] = mem.get(name)
                if name not in mem:
                    warn("MEMORY.md has no row for %s" % name)
        if group == "corpora":
            missing = set(md_rows) ^ set(facts)
            if missing:
                warn("EXPECTED.md rows and corpus dirs differ: %s" % sorted(missing))
        with open(os.path.join(root, out), "w", encoding="utf-8") as fh:
            json.dump(facts, fh, indent=1, sort_keys=False)
            fh.write("\n")
        print("wrote %s (%d entries)" % (os.path.join(root, out), len(facts)))
        if group == "corpora":
            update_readme(root, facts)
        if args.check:
            bad += check_disk(root, facts)
    print("%d warning(s)" % len(WARNINGS))
    if args.check:
        print("disk check: %s" % ("OK" if bad == 0 else "%d mismatch(es)" % bad))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/seeds/<target>/ from testdata/ (run from the repo root).

Deterministic: real segment slices and record payloads cut out of testdata/, plus structured
inputs for the targets that build their data from bytes (roundtrip, check_dir), with random
tails from a fixed seed. Keep the total small (< 2 MB): `du -sh fuzz/seeds`.
"""
import os
import random
import struct

PAGE = 32768
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "fuzz", "seeds")
rng = random.Random(20261122)


def rd(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fragments(data):
    """(offset, type byte, payload) of each fragment, skipping page padding."""
    pos, out = 0, []
    while pos + 7 <= len(data):
        t = data[pos]
        if t & 7 == 0:
            pos = (pos // PAGE + 1) * PAGE
            continue
        n = int.from_bytes(data[pos + 1 : pos + 3], "big")
        out.append((pos, t, data[pos + 7 : pos + 7 + n]))
        pos += 7 + n
    return out


# frames: slices of real segments (snappy, zstd, uncompressed, multi-page records, torn tails).
c = "testdata/corpora/"
put("frames", "small-clean-snappy-2pages", rd(c + "small-clean/wal/00000000")[: 2 * PAGE])
put("frames", "v3-zstd-2pages", rd(c + "v3-zstd-small/wal/00000000")[: 2 * PAGE])
put("frames", "uncompressed-2pages", rd(c + "uncompressed/wal/00000000")[: 2 * PAGE])
put("frames", "bigrecord-3pages-cut", rd(c + "killed-bigrecords/wal/00000000")[: 3 * PAGE])
tail = rd(c + "small-clean--trunc-tail/wal/00000003")
put("frames", "torn-tail", tail[(len(tail) // PAGE - 1) * PAGE :])
put("frames", "wbl-page", rd(c + "v3-wbl/wbl/00000000")[:PAGE])
put("frames", "checkpoint-page", rd(c + "v3-checkpoint/wal/checkpoint.00000001/00000000")[:PAGE])
# The series test vector of the format spec: one `full` fragment, file cut after it.
series = bytes([1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 8]) + b"__name__" + bytes([2]) + b"up"
put("frames", "spec-series-vector", bytes([0x01, 0x00, 0x16, 0x39, 0x19, 0x94, 0xF3]) + series)
put("frames", "empty", b"")

# record: real record payloads (the small ones) and every type with no entries.
for name in sorted(os.listdir(os.path.join(ROOT, "testdata/records"))):
    data = rd("testdata/records/" + name)
    if name.endswith(".bin") and len(data) <= 6000:
        put("record", name[:-4], data)
put("record", "spec-series-vector", series)
for t in list(range(1, 15)) + [0xFF]:
    put("record", "type-%d-only" % t, bytes([t]))

# compression: mode byte (0 snappy, 1 zstd, 2 + 4k: compress_record round trip with None,
# Snappy, Zstd for k = 0, 1, 2; 3 both decoders) + payload.
snappy = [p for _, t, p in fragments(rd(c + "small-clean/wal/00000000")) if t == 0x09 and len(p) < 3000]
zstd = [p for _, t, p in fragments(rd(c + "v3-zstd-small/wal/00000000")) if t == 0x11 and len(p) < 3000]
for i, p in enumerate(snappy[:3]):
    put("compression", "snappy-%d" % i, b"\x00" + p)
for i, p in enumerate(zstd[:3]):
    put("compression", "zstd-%d" % i, b"\x01" + p)
put("compression", "both-snappy", b"\x03" + snappy[0])
put("compression", "both-zstd", b"\x03" + zstd[0])
rec = rd("testdata/records/v3h-samples-155.bin")
for k, mode in enumerate([2, 6, 10]):
    put("compression", "roundtrip-%d" % k, bytes([mode]) + rec)

# roundtrip: gen_segment's bytes: record count, then per record a type index, an entry count
# and its fields; random tails let the fuzzer start from every record type.
for t in range(13):
    put("roundtrip", "type-%d" % t, bytes([rng.randrange(12), t, rng.randrange(6)]) + rng.randbytes(300))
# One series record with a 64 KiB incompressible label value: split over three pages.
big = bytes([0, 0, 1, 0, 5, 1, 3]) + b"abc" + bytes([0xFF, 0xFF, 0x7F]) + struct.pack("<I", 7) + bytes([0, 1, 1])
put("roundtrip", "multipage-series", big + rng.randbytes(8))

# check_dir: flags (1 checkpoint, 2 wbl, 4 frames level, 8 agent, 16 give wal/), first index,
# segment count, then per segment: gap byte, name byte, kind byte (0 raw: u16 length + bytes,
# 1 encoded + one mutation, 2 encoded).
for i, flags in enumerate([0, 1, 2, 4, 8, 16, 3]):
    head = bytes([flags, rng.randrange(4), rng.randrange(4)])
    put("check_dir", "flags-%d" % flags, head + rng.randbytes(400))
page = rd(c + "small-clean/wal/00000000")[:PAGE]
put("check_dir", "real-page-raw", bytes([0, 0, 0, 2, 2, 0]) + struct.pack("<H", PAGE) + page)

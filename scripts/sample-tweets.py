#!/usr/bin/env python3
"""A seeded random sample of the tweets set as a label,text CSV: sample-tweets.py TWEETS.csv OUT.csv N [--binary]
Stratified by sentiment; with --binary, N/2 positive and N/2 negative tweets labelled 1 / -1 (an out-of-distribution set for polarity)."""
import csv, random, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(src, encoding="utf-8")))
if "--binary" in sys.argv:
    rows = [r for r in rows if r["sentiment"] in ("positive", "negative")]
random.Random(0).shuffle(rows)
by = {}
for r in rows: by.setdefault(r["sentiment"], []).append(r)
if "--binary" in sys.argv:
    keep = by["positive"][: n // 2] + by["negative"][: n // 2]
    label = lambda r: "1" if r["sentiment"] == "positive" else "-1"
else:
    keep = [r for rs in by.values() for r in rs[: round(n * len(rs) / len(rows))]]
    label = lambda r: r["sentiment"]
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f); w.writerow(["label", "text"])
    for r in keep: w.writerow([label(r), r["text"]])

#!/usr/bin/env python3
"""The table of scripts/experiment-distill-pretraining.sh: per task, setting, student and loss, test accuracy and
macro-F1 (mean and sample standard deviation over the seeds present), training wall time and tokens x parameters
(the training tokens processed times the student's parameters), and the teacher's own test accuracy."""
import json, pathlib, re, statistics, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/distill-pretraining")
def stats(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)
print(open(root / "cpu.txt").read().strip() if (root / "cpu.txt").exists() else "")
for task in sorted(p for p in root.iterdir() if (p / "teacher/summary.json").exists()):
    t = json.load(open(task / "teacher/summary.json"))
    print(f"\n{task.name}: MPNet teacher test accuracy {t['test']['accuracy']:.4f}, macro-F1 {t['test']['macro_f1']:.4f}")
    print("| setting | student | loss | seeds | test accuracy | test macro-F1 | train s | tokens x params |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for run in task.iterdir():
        m = re.fullmatch(r"(random4|minilm)-(ce|kd|au)-(all|p10|p10aug)-s(\d+)", run.name)
        if not m or not (run / "summary.json").exists(): continue
        s = json.load(open(run / "summary.json"))
        rows.setdefault((m[3], m[1], m[2]), []).append(s)
    order = {"all": 0, "p10": 1, "p10aug": 2, "random4": 0, "minilm": 1, "ce": 0, "kd": 1, "au": 2}
    for key in sorted(rows, key=lambda k: tuple(order[x] for x in k)):
        runs = rows[key]
        acc, f1 = stats([r["test"]["accuracy"] for r in runs]), stats([r["test"]["macro_f1"] for r in runs])
        secs = statistics.mean(r.get("training_loop_seconds", r["train_seconds"]) for r in runs)
        work = statistics.mean(r["train_tokens_processed"] * r["parameters"] for r in runs)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(runs)} | {acc[0]:.4f} ± {acc[1]:.4f} | {f1[0]:.4f} ± {f1[1]:.4f} | {secs:.0f} | {work:.2e} |")

#!/usr/bin/env python3
"""Keeps issue 17's experiment across sessions: appends each finished run of a scripts/experiment-decoder-sft.sh
folder to docs/results/decoder-sft-runs.jsonl (one line per run: its scores, time, tokens, the CPU, the teacher's
identity and the commit), skipping runs already recorded, and prints the table of every recorded run grouped by
student and variant (mean ± standard deviation over seeds, and how many teachers they came from).

A machine of this project keeps nothing between sessions, so the grid is run a slice at a time; each slice retrains
the teacher with the same recipe. The teacher is identified by the SHA-256 of its best/model.safetensors: equal on
the same CPU kind and code, different (within rounding) on another CPU, so a row whose runs came from more than one
teacher says so.
  python3 scripts/record-decoder-sft.py [RUNS_DIR ...]        (no folder: only print the table)
"""
import json, math, os, statistics, sys
from results_log import append, checksum, load, machine

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.environ.get("RESULTS_LOG", os.path.join(HERE, "..", "docs", "results", "decoder-sft-runs.jsonl"))


def record(runs_dir, known):
    teacher = os.path.join(runs_dir, "teacher")
    if not os.path.exists(os.path.join(teacher, "summary.json")):
        sys.exit(f"record-decoder-sft: {runs_dir}: no teacher/summary.json (not an experiment folder, or unfinished)")
    weights = os.path.join(teacher, "best", "model.safetensors")
    teacher_id = checksum(weights)
    cpu, commit = machine(runs_dir)
    new = []
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, "summary.json")
        if not os.path.isfile(path) or (name, teacher_id) in known:
            continue
        s = json.load(open(path))
        run, _, seed = name.rpartition("-s") if name != "teacher" else ("teacher", "", "42")
        student, _, variant = run.partition("-") if run != "teacher" else ("teacher", "", "fine-tune")
        test = s.get("test", {})
        cfg = os.path.join(runs_dir, name, "config.json")
        lr = json.load(open(cfg)).get("learning_rate") if os.path.exists(cfg) else None
        new.append({"run": name, "student": student, "variant": variant, "seed": int(seed),
                    "rouge1": test.get("rouge1"), "rouge2": test.get("rouge2"), "rougeL": test.get("rougeL"),
                    "dev_perplexity": math.exp(s["best_dev_loss"]), "parameters": s.get("parameters"),
                    "training_loop_seconds": round(s.get("training_loop_seconds", float("nan")), 1),
                    "train_tokens": s.get("train_tokens_processed"), "steps": s.get("steps"), "learning_rate": lr,
                    "teacher": teacher_id, "cpu": cpu, "commit": commit})
        known.add((name, teacher_id))
    append(LOG, new)
    print(f"record-decoder-sft: {runs_dir}: {len(new)} new runs recorded (teacher {teacher_id})", file=sys.stderr)


def table(rows):
    fmt = lambda v: f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
    groups = {}
    for r in rows:
        key = (r["student"], r["teacher"]) if r["student"] == "teacher" else (r["student"], r["variant"])
        groups.setdefault(key, []).append(r)  # each teacher its own row
    print("| student | training | runs (seeds) | teachers | test ROUGE-1 | test ROUGE-2 | test ROUGE-L | dev perplexity | training s (fastest) | training tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (student, variant), g in sorted(groups.items(), key=lambda kv: (kv[0][0] != "teacher", kv[0])):
        col = lambda k: fmt([r[k] for r in g])
        seeds = ",".join(str(r["seed"]) for r in g)
        variant = f"fine-tune ({g[0]['teacher']}, {g[0]['cpu']})" if student == "teacher" else variant
        times = [r["training_loop_seconds"] for r in g if r["training_loop_seconds"] is not None]
        fastest = f"{min(times):.0f}" if times else "n/a"
        print(f"| {student} | {variant} | {len(g)} ({seeds}) | {len({r['teacher'] for r in g})} | {col('rouge1')} | {col('rouge2')} "
              f"| {col('rougeL')} | {fmt([r['dev_perplexity'] for r in g])} | {fastest} | {g[0]['train_tokens']} |")


if __name__ == "__main__":
    known = {(r["run"], r["teacher"]) for r in load(LOG)}
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    for d in sys.argv[1:]:
        record(d, known)
    table(load(LOG))

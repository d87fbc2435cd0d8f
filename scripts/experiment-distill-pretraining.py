#!/usr/bin/env python3
"""The table of scripts/experiment-distill-pretraining.sh: per task, setting, student and loss, test accuracy and
macro-F1 (mean and sample standard deviation over the seeds present), training wall time and tokens x parameters
(the training tokens processed times the student's parameters), and the teacher's own test accuracy.

A machine of this project keeps nothing between sessions, so the grid runs a slice at a time: every finished run of
the folders given is appended to docs/results/distill-pretraining-runs.jsonl (skipping runs already there) with its
task's teacher (SHA-256 of its weights, its test accuracy), the CPU, the recipe (epochs, max length, learning rate)
and the commit; the table is made from every recorded run, one block per task and recipe, and says from how many
teachers a row's seeds came (each slice retrains the teachers with the same recipe).
  python3 scripts/experiment-distill-pretraining.py [RUNS_DIR ...]     (no folder: only print the table)
"""
import json, os, re, statistics, sys
from results_log import append, checksum, load, machine

# What the random student skips: all-MiniLM-L6-v2's model card (sentence-transformers) trains nreimers/MiniLM-L6-H384-uncased
# contrastively for 100k steps of 1024 sentence pairs truncated to 128 tokens (an upper bound on the tokens). That model is
# every second layer of microsoft/MiniLM-L12-H384-uncased (its model card: "keeping only every second layer"), which was
# distilled from a UniLMv2 teacher over English Wikipedia and BookCorpus (Wang et al. 2020, arXiv 2002.10957): a stage not
# counted here, because its step count is not in what could be read from this machine.
CONTRASTIVE_STEPS, CONTRASTIVE_PAIRS, CONTRASTIVE_MAX_TOKENS, MINILM_PARAMETERS = 100_000, 1024, 128, 22.7e6
SKIPPED_AT_MOST = CONTRASTIVE_STEPS * CONTRASTIVE_PAIRS * 2 * CONTRASTIVE_MAX_TOKENS * MINILM_PARAMETERS

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.environ.get("RESULTS_LOG", os.path.join(HERE, "..", "docs", "results", "distill-pretraining-runs.jsonl"))
RUN = re.compile(r"(random4|minilm)-(ce|kd|au)-(all|p10|p10aug)-s(\d+)")


def record(root, known):
    cpu, commit = machine(root)
    new = []
    for task in sorted(os.listdir(root)):
        teacher = os.path.join(root, task, "teacher")
        if not os.path.exists(os.path.join(teacher, "summary.json")):
            continue
        t = json.load(open(os.path.join(teacher, "summary.json")))
        teacher_id = checksum(os.path.join(teacher, "best", "model.safetensors"))
        for name in sorted(os.listdir(os.path.join(root, task))):
            m = RUN.fullmatch(name)
            path = os.path.join(root, task, name)
            if not m or not os.path.exists(os.path.join(path, "summary.json")) or (task, name, teacher_id) in known:
                continue
            s = json.load(open(os.path.join(path, "summary.json")))
            config = json.load(open(os.path.join(path, "config.json"))) if os.path.exists(os.path.join(path, "config.json")) else {}
            new.append({"task": task, "run": name, "student": m[1], "loss": m[2], "setting": m[3], "seed": int(m[4]),
                        "accuracy": s["test"]["accuracy"], "macro_f1": s["test"]["macro_f1"],
                        "training_loop_seconds": round(s.get("training_loop_seconds", s["train_seconds"]), 1),
                        "tokens_x_parameters": s["train_tokens_processed"] * s["parameters"],
                        "epochs": config.get("epochs"), "max_length": config.get("max_length"),
                        "learning_rate": config.get("learning_rate"),
                        "teacher": teacher_id, "teacher_accuracy": t["test"]["accuracy"], "teacher_macro_f1": t["test"]["macro_f1"],
                        "cpu": cpu, "commit": commit})
            known.add((task, name, teacher_id))
    append(LOG, new)
    print(f"experiment-distill-pretraining: {root}: {len(new)} new runs recorded", file=sys.stderr)


def stats(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def table(rows):
    order = {"all": 0, "p10": 1, "p10aug": 2, "random4": 0, "minilm": 1, "ce": 0, "kd": 1, "au": 2}
    blocks = {}
    for r in rows:
        blocks.setdefault((r["task"], r["epochs"], r["max_length"], r["learning_rate"]), []).append(r)
    for (task, epochs, maxlen, lr), runs in sorted(blocks.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        teachers = {}
        for r in runs:
            teachers[r["teacher"]] = (r["teacher_accuracy"], r["teacher_macro_f1"], r["cpu"])
        print(f"\n{task} (students: at most {epochs} epochs, max length {maxlen}, lr {lr}); MPNet teachers: "
              + "; ".join(f"{k} test accuracy {a:.4f}, macro-F1 {f:.4f} ({c})" for k, (a, f, c) in teachers.items()))
        print("| setting | student | loss | seeds | teachers | test accuracy | test macro-F1 | train s | tokens x params |")
        print("|---|---|---|---|---|---|---|---|---|")
        cells = {}
        for r in runs:
            cells.setdefault((r["setting"], r["student"], r["loss"]), []).append(r)
        for key in sorted(cells, key=lambda k: tuple(order[x] for x in k)):
            g = cells[key]
            acc, f1 = stats([r["accuracy"] for r in g]), stats([r["macro_f1"] for r in g])
            secs = statistics.median(r["training_loop_seconds"] for r in g)
            work = statistics.mean(r["tokens_x_parameters"] for r in g)
            seeds = ",".join(str(r["seed"]) for r in sorted(g, key=lambda r: r["seed"]))
            print(f"| {key[0]} | {key[1]} | {key[2]} | {len(g)} ({seeds}) | {len({r['teacher'] for r in g})} | {acc[0]:.4f} ± {acc[1]:.4f} "
                  f"| {f1[0]:.4f} ± {f1[1]:.4f} | {secs:.0f} | {work:.2e} |")
        largest = max(r["tokens_x_parameters"] for r in runs)
        print(f"Pre-training the random student skipped: all-MiniLM-L6-v2's contrastive stage alone is at most {SKIPPED_AT_MOST:.2e} tokens x params "
              f"(model card: {CONTRASTIVE_STEPS // 1000}k steps x {CONTRASTIVE_PAIRS} pairs x 2 x {CONTRASTIVE_MAX_TOKENS} tokens x "
              f"{MINILM_PARAMETERS / 1e6:.1f}M), {SKIPPED_AT_MOST / largest:.0e} times the largest run above; "
              "before it, the distillation of MiniLM-L12 (Wang et al. 2020), whose every second layer MiniLM-L6 is, is not counted.")


if __name__ == "__main__":
    known = {(r["task"], r["run"], r["teacher"]) for r in load(LOG)}
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    for d in sys.argv[1:]:
        record(d, known)
    table(load(LOG))

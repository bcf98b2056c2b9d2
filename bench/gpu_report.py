#!/usr/bin/env python3
"""Helpers of bench/gpu.sh (issue 12's prepared GPU run).

  gpu_report.py env OUT/env.json [--device cuda]
      torch version, CUDA build, device name and capability -> JSON
  gpu_report.py matmul --device cuda --dtype bf16 [--size 8192] [--iters 20]
      times torch.matmul of two (size, size) matrices: {"tflops": ..., ...} (the FLOP floor's peak)
  gpu_report.py gtest LOG
      counts a Google Test log's per-test lines: {"passed", "failed", "skipped", "complete"}
      (works on a log cut short by a timeout, where --gtest_output would write nothing)
  gpu_report.py report OUT
      reads OUT/steps.tsv and the step outputs, writes OUT/gpu-results.json and
      OUT/gpu-table.md, prints the table

FLOP floor (bench/floor.py's cost model, frozen weights, gradient only for the prompt):
  N = L * (2*C*H*D + 2*C*G*D + 3*C*I) + V*C   (projections + MLP + the LM head, tied or not)
  prompt tuning: S = P + T positions per row, each through every layer, keys S
  prefix tuning: S = T positions, keys T + P (the prefixes are keys/values only)
  step FLOPs = B * S * (4 * N + 12 * L * K * H * D)   with K the keys per query (full, no causal skip)
  floor fraction = (step FLOPs / step time) / peak
"""
import argparse
import json
import pathlib
import re
import sys
import time


def env(a):
    import torch
    out = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "device_name": None, "capability": None,
           "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(0)
        props = torch.cuda.get_device_properties(0)
        out.update(device_name=torch.cuda.get_device_name(0), capability=f"{cap[0]}.{cap[1]}",
                   memory_mib=props.total_memory / 2**20)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


def matmul(a):
    import torch
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    dev = torch.device(a.device)
    x = torch.randn(a.size, a.size, device=dev).to(dtype)
    y = torch.randn(a.size, a.size, device=dev).to(dtype)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    for _ in range(3):
        x @ y
    sync()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        x @ y
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    best, med = times[0], times[len(times) // 2]
    flop = 2.0 * a.size ** 3
    print(json.dumps({"device": a.device, "dtype": a.dtype, "size": a.size, "iters": a.iters,
                      "tflops": flop / med / 1e12, "tflops_best": flop / best / 1e12,
                      "torch": torch.__version__}))


def gtest_counts(path):
    text = pathlib.Path(path).read_text(errors="replace") if pathlib.Path(path).exists() else ""
    per_test = lambda tag: len(re.findall(r"^\[ *" + tag + r" *\] \S+\.\S+ \(\d+ ms\)", text, re.M))
    return {"passed": per_test("OK"), "failed": per_test("FAILED"), "skipped": per_test("SKIPPED"),
            "complete": bool(re.search(r"^\[==========\] \d+ tests? from .* ran\.", text, re.M))}


def gtest(a):
    print(json.dumps(gtest_counts(a.log)))


def read_json(path):
    """The last line of a file that parses as a JSON object, else None."""
    p = pathlib.Path(path)
    if not p.exists():
        return None
    for line in reversed(p.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def step_flops(config, method, B, T, P):
    c = config
    C, L, I, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    H = c["num_attention_heads"]
    G = c.get("num_key_value_heads", H)
    D = c.get("head_dim") or C // H
    n = L * (2 * C * H * D + 2 * C * G * D + 3 * C * I) + V * C
    S, K = (P + T, P + T) if method == "prompt-tuning" else (T, T + P)
    return B * S * (4 * n + 12 * L * K * H * D), n


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def report(a):
    out = pathlib.Path(a.out)
    meta = json.loads((out / "run.json").read_text())
    steps = []
    for line in (out / "steps.tsv").read_text().splitlines():
        name, rc, seconds, note = (line.split("\t") + [""])[:4]
        steps.append({"step": name, "rc": None if rc == "-" else int(rc), "seconds": float(seconds), "note": note})
    status = {s["step"]: s for s in steps}
    results = {"date_utc": meta["date_utc"], "mode": meta["mode"], "device": meta["device"],
               "dtype": meta["dtype"], "batch": meta["batch"], "seq": meta["seq"],
               "virtual_tokens": meta["virtual"], "steps": meta["steps"], "warmup": meta["warmup"],
               "git_commit": meta["git_commit"], "build_dir": meta["build_dir"],
               "toolchain": meta["toolchain"], "jobs": meta["jobs"],
               "env": json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else None,
               "nvidia_smi": meta.get("nvidia_smi"), "nvcc": meta.get("nvcc"),
               "step_timings": steps}
    tests = {}
    for name in ("cuda_tests", "native_tests"):
        s = status.get(name)
        if s is None:
            tests[name] = {"ran": False, "note": "not run (--skip-tests)"}
        elif s["rc"] is None:
            tests[name] = {"ran": False, "note": s["note"]}
        else:
            tests[name] = dict(gtest_counts(out / f"{name}.log"), ran=True, rc=s["rc"],
                               seconds=s["seconds"], timed_out=s["rc"] in (124, 137), note=s["note"])
    results["tests"] = tests
    model_cfg = out / "model-config.json"
    config = json.loads(model_cfg.read_text()) if model_cfg.exists() else None
    results["model"] = {"config": config, "make_model": read_json(out / "model.log")}
    peak = read_json(out / "matmul_peak.log")
    nominal = 989e12 if meta["device"].startswith("cuda") else None
    if peak and peak.get("tflops"):
        peak_flops, peak_source = peak["tflops"] * 1e12, (
            f"measured: torch.matmul {peak['size']}^3 {peak['dtype']} on {meta['device']}, median of {peak['iters']}")
    elif nominal:
        peak_flops, peak_source = nominal, "nominal: 989 TFLOP/s dense bf16 (H100/H200 SXM)"
    else:
        peak_flops, peak_source = None, "none (the matmul step failed)"
    results["peak"] = {"flops": peak_flops, "source": peak_source, "measured": peak,
                       "nominal_h100_h200_bf16_flops": 989e12}
    rows = []
    for method in ("prompt-tuning", "prefix-tuning"):
        ours = read_json(out / f"bench_ptune_{method}.log")
        peer = read_json(out / f"bench_peer_{method}.log")
        row = {"method": method, "ptune": ours, "peer": peer}
        flops, n = step_flops(config, method, meta["batch"], meta["seq"], meta["virtual"]) if config else (None, None)
        row["step_flops"], row["params_matmul"] = flops, n
        for side, r in (("ptune", ours), ("peer", peer)):
            tps = r.get("tokens_per_s") if r else None
            row[f"{side}_tokens_per_s"] = tps
            row[f"{side}_peak_cuda_mib"] = r.get("peak_cuda_mib") if r else None
            row[f"{side}_peak_rss_mib"] = r.get("peak_rss_mib") if r else None
            row[f"{side}_floor_fraction"] = (flops / r["step_s_median"] / peak_flops
                                             if r and flops and peak_flops else None)
        row["ratio_ptune_over_peer"] = (row["ptune_tokens_per_s"] / row["peer_tokens_per_s"]
                                        if row["ptune_tokens_per_s"] and row["peer_tokens_per_s"] else None)
        rows.append(row)
    results["bench"] = rows
    results["ok"] = all(s["rc"] in (0, None) for s in steps)
    (out / "gpu-results.json").write_text(json.dumps(results, indent=2))

    env_ = results["env"] or {}
    gpu = env_.get("device_name") or "no GPU (CPU dry run)"
    lines = [f"### {meta['date_utc'][:10]}, {gpu}, torch {env_.get('torch', '?')}, commit {meta['git_commit']}",
             "",
             f"Random {config.get('model_type', '?') if config else '?'} model "
             f"({fmt(results['model']['make_model'].get('parameters') if results['model']['make_model'] else None)} parameters), "
             f"{meta['dtype']} on {meta['device']}, batch {meta['batch']} x {meta['seq']}, "
             f"{meta['virtual']} virtual tokens, median of {meta['steps']} steps after {meta['warmup']} warm-up. "
             f"Peak for the floor: {peak_source}"
             + (f" = {peak_flops / 1e12:.1f} TFLOP/s." if peak_flops else "."),
             "",
             "| method | ptune tokens/s | transformers + PEFT tokens/s | ptune / peer | ptune peak CUDA MiB | peer peak CUDA MiB | ptune floor fraction | peer floor fraction |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        pct = lambda f: f"{100 * f:.1f}%" if f is not None else "-"
        ratio = f"{r['ratio_ptune_over_peer']:.2f}x" if r["ratio_ptune_over_peer"] else "-"
        lines.append(f"| {r['method']} | {fmt(r['ptune_tokens_per_s'])} | {fmt(r['peer_tokens_per_s'])} | {ratio} "
                     f"| {fmt(r['ptune_peak_cuda_mib'])} | {fmt(r['peer_peak_cuda_mib'])} "
                     f"| {pct(r['ptune_floor_fraction'])} | {pct(r['peer_floor_fraction'])} |")
    lines.append("")
    for name, t in tests.items():
        if t.get("ran"):
            lines.append(f"- {name}: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
                         f"{' (timed out)' if t['timed_out'] else ''}, {t['seconds']:.0f} s")
        else:
            lines.append(f"- {name}: {t['note']}")
    lines.append("- steps (s): " + ", ".join(f"{s['step']} {s['seconds']:.0f}" + ("" if s["rc"] in (0, None) else f" (rc {s['rc']})")
                                            for s in steps))
    table = "\n".join(lines) + "\n"
    (out / "gpu-table.md").write_text(table)
    print(table)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("out")
    m = sub.add_parser("matmul")
    m.add_argument("--device", default="cuda")
    m.add_argument("--dtype", default="bf16")
    m.add_argument("--size", type=int, default=8192)
    m.add_argument("--iters", type=int, default=20)
    g = sub.add_parser("gtest")
    g.add_argument("log")
    r = sub.add_parser("report")
    r.add_argument("out")
    a = ap.parse_args()
    {"env": env, "matmul": matmul, "gtest": gtest, "report": report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

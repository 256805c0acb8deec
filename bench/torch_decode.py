"""PyTorch eager reference decode for `deno task bench` (bench/torch_engine.ts drives it).

What a researcher would run instead of this toolkit: OPT in PyTorch eager mode, f32, a KV
cache, greedy selection, on the same weights (read from the same safetensors file, f16/bf16
converted to f32 exactly), the same prompts and the same per-column layer sets (a skipped
layer is the identity; by the nesting invariant every layer's cache is a prefix of the
columns, so the cache of layer l at column c holds columns 0..c). The prompt is prefilled
layer by layer on each layer's prefix of prompt columns, the LM head runs on the last prompt
column only, then one column per token, as the project's backends do.

Protocol (one JSON object per line on stdin, one reply per line on stdout):
  {"cmd": "load", "dir": DIR, "threads": 2, "device": "cpu"|"cuda"}
      -> {"ok": true, "torch": "1.13...", "threads": 2, "device": "cpu"}
  {"cmd": "decode", "prompts": [[...]], "sets": [[...], ...], "maxNewTokens": N}
      -> {"ok": true, "ms": wall, "prefillMs": ..., "tokens": [[...]]}
  {"cmd": "quit"}
Errors reply {"ok": false, "error": "..."}.

Run it with /usr/bin/python3 (Debian's python3-torch) and OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE unset, so that OpenBLAS picks its fast kernels for this CPU.
"""

import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """Minimal safetensors reader (the `safetensors` package is not installed here)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        dt = info["dtype"]
        if dt == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif dt == "F32":
            arr = np.frombuffer(raw, dtype=np.float32).copy()
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {dt} not supported")
        out[name] = torch.from_numpy(arr.reshape(info["shape"]))
    return out


class Opt:
    def __init__(self, model_dir, device="cpu"):
        self.device = torch.device(device)
        with open(f"{model_dir}/config.json") as f:
            cfg = json.load(f)
        self.d = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.L = cfg["num_hidden_layers"]
        self.pre = cfg.get("do_layer_norm_before", True)
        t = {k: v.to(self.device) for k, v in read_safetensors(f"{model_dir}/model.safetensors").items()}

        def get(suffix):
            for k, v in t.items():
                if k.endswith(suffix):
                    return v.contiguous()
            return None

        self.embed = get("decoder.embed_tokens.weight")
        self.pos = get("decoder.embed_positions.weight")
        self.project_in = get("decoder.project_in.weight")
        self.project_out = get("decoder.project_out.weight")
        self.final_ln = (get("decoder.final_layer_norm.weight"), get("decoder.final_layer_norm.bias"))
        head = get("lm_head.weight")
        self.head = head if head is not None else self.embed
        self.layers = []
        for i in range(self.L):
            p = f"decoder.layers.{i}."
            self.layers.append({
                n: (get(p + s + ".weight"), get(p + s + ".bias"))
                for n, s in (("q_proj", "self_attn.q_proj"), ("k_proj", "self_attn.k_proj"),
                             ("v_proj", "self_attn.v_proj"), ("out_proj", "self_attn.out_proj"),
                             ("fc1", "fc1"), ("fc2", "fc2"))
            } | {
                "ln1": (get(p + "self_attn_layer_norm.weight"), get(p + "self_attn_layer_norm.bias")),
                "ln2": (get(p + "final_layer_norm.weight"), get(p + "final_layer_norm.bias")),
            })

    def layer(self, l, x, c0, kc, vc):
        """Layer l on columns c0 .. c0+n-1 (x: [B, n, d]); caches [B, H, cap, hd]."""
        W = self.layers[l]
        B, n, d = x.shape
        H = self.heads
        hd = d // H
        h = F.layer_norm(x, (d,), *W["ln1"]) if self.pre else x
        q = F.linear(h, *W["q_proj"]) * (hd ** -0.5)
        k = F.linear(h, *W["k_proj"])
        v = F.linear(h, *W["v_proj"])
        kc[:, :, c0:c0 + n] = k.view(B, n, H, hd).transpose(1, 2)
        vc[:, :, c0:c0 + n] = v.view(B, n, H, hd).transpose(1, 2)
        q = q.view(B, n, H, hd).transpose(1, 2)
        keys = kc[:, :, :c0 + n]
        s = torch.matmul(q, keys.transpose(2, 3))
        if n > 1:
            mask = torch.ones(n, c0 + n, dtype=torch.bool, device=x.device).tril(c0)
            s = s.masked_fill(~mask, float("-inf"))
        a = torch.matmul(torch.softmax(s, dim=-1), vc[:, :, :c0 + n])
        a = a.transpose(1, 2).reshape(B, n, d)
        x = x + F.linear(a, *W["out_proj"])
        if not self.pre:
            x = F.layer_norm(x, (d,), *W["ln1"])
        h = F.layer_norm(x, (d,), *W["ln2"]) if self.pre else x
        x = x + F.linear(torch.relu(F.linear(h, *W["fc1"])), *W["fc2"])
        if not self.pre:
            x = F.layer_norm(x, (d,), *W["ln2"])
        return x

    def embed_cols(self, ids, c0):
        e = F.embedding(ids, self.embed)
        if self.project_in is not None:
            e = F.linear(e, self.project_in)
        n = ids.shape[1]
        return e + self.pos[c0 + 2:c0 + 2 + n]

    def head_logits(self, x):
        if self.final_ln[0] is not None:
            x = F.layer_norm(x, (x.shape[-1],), *self.final_ln)
        if self.project_out is not None:
            x = F.linear(x, self.project_out)
        return F.linear(x, self.head)

    @torch.inference_mode()
    def decode(self, prompts, sets, N):
        B, P = len(prompts), len(prompts[0])
        if any(len(p) != P for p in prompts):
            raise ValueError("prompts must have equal lengths (no padding in this reference)")
        columns = P + N - 1
        sets = [set(s) for s in sets[:columns]]
        d, H = self.d, self.heads
        caps = [0] * self.L
        for c in range(columns):
            for l in sets[c]:
                caps[l] = c + 1
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        kc = [torch.empty(B, H, cap, d // H, device=self.device) for cap in caps]
        vc = [torch.empty(B, H, cap, d // H, device=self.device) for cap in caps]
        ids = torch.tensor(prompts, dtype=torch.long, device=self.device)
        x = self.embed_cols(ids, 0)
        for l in range(self.L):
            q = 0
            while q < P and l in sets[q]:
                q += 1
            if q > 0:
                x = torch.cat([self.layer(l, x[:, :q], 0, kc[l], vc[l]), x[:, q:]], dim=1) \
                    if q < P else self.layer(l, x, 0, kc[l], vc[l])
        tok = self.head_logits(x[:, P - 1:P]).argmax(-1)  # [B, 1]
        sync()
        t1 = time.perf_counter()
        out = [tok]
        for i in range(1, N):
            c = P + i - 1
            x = self.embed_cols(tok, c)
            for l in sorted(sets[c]):
                x = self.layer(l, x, c, kc[l], vc[l])
            tok = self.head_logits(x).argmax(-1)
            out.append(tok)
        sync()
        t2 = time.perf_counter()
        tokens = torch.cat(out, dim=1).tolist()
        return {"ms": (t2 - t0) * 1e3, "prefillMs": (t1 - t0) * 1e3, "tokens": tokens}


def blas_info():
    """The BLAS library this process mapped, and a 512x768x768 f32 GEMM's GFLOP/s.

    Debian's python3-torch calls whatever provides libblas.so.3: the reference BLAS of
    libblas3 (plain loops, ~1 GFLOP/s) unless libopenblas0 is installed. A reference-BLAS
    PyTorch is an order of magnitude slower than what a user would run, so the caller warns.
    """
    a = torch.randn(512, 768)
    b = torch.randn(768, 768)
    a @ b
    t = time.perf_counter()
    for _ in range(3):
        a @ b
    gflops = 3 * 2 * 512 * 768 * 768 / (time.perf_counter() - t) / 1e9
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in path.lower() or "mkl" in path.lower():
                    libs.add(path)
    except OSError:
        pass
    reference = any("/blas/libblas" in p for p in libs) and not any(
        "openblas" in p.lower() or "mkl" in p.lower() for p in libs)
    return {"blas": sorted(libs), "referenceBlas": reference, "gemmGflops": gflops}


def main():
    model = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            if cmd == "load":
                torch.set_num_threads(int(req.get("threads", 2)))
                device = req.get("device", "cpu")
                if device == "cuda" and not torch.cuda.is_available():
                    raise ValueError("device cuda asked for, but torch.cuda.is_available() is false")
                model = Opt(req["dir"], device)
                name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
                reply = {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "device": name, **(blas_info() if device == "cpu" else {})}
            elif cmd == "decode":
                if model is None:
                    raise ValueError("no model loaded")
                reply = {"ok": True, **model.decode(req["prompts"], req["sets"], int(req["maxNewTokens"]))}
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as e:  # reported to the caller, which prints it
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

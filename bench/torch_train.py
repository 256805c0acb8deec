"""PyTorch eager reference of a fine-tuning step for `deno task bench --train`
(bench/train_bench.ts drives it).

What a researcher would run instead of this toolkit's trainer: OPT in PyTorch eager mode,
f32, the same weights (the same safetensors file, read by torch_decode.py's reader), the
same left-padded batches with the same per-column layer masks (SkipDecode plans), the mean
NLL over target tokens only, backward, gradient clipping at global norm 1, and
torch.optim.AdamW (betas 0.9/0.98, eps 1e-8, weight decay 0.01 on linear weights and
embeddings only, as train/optim.ts). A column that skips layer l passes its hidden state
through unchanged and its keys/values are not visible to the row's other columns at l, as
in train/reference.ts. Each layer runs on the columns up to the last active one (the masks
nest, so later columns are the ones skipped), the LM head on target columns only.

Protocol (one JSON object per line on stdin, one reply per line on stdout):
  {"cmd": "load", "dir": DIR, "threads": 2, "lr": 1e-4}
      -> {"ok": true, "torch": "1.13...", "threads": 2, "blas": [...]}
  {"cmd": "batches", "batches": [{"rows", "length", "layers", "tokens", "positions",
      "targets", "active"}, ...]}  -> {"ok": true}
  {"cmd": "steps", "first": I, "count": N}  (batches I, I+1, ... modulo their number)
      -> {"ok": true, "ms": [...], "losses": [...]}
  {"cmd": "quit"}
Errors reply {"ok": false, "error": "..."}.
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_decode import blas_info, read_safetensors  # noqa: E402


class TrainOpt:
    def __init__(self, model_dir, lr):
        with open(f"{model_dir}/config.json") as f:
            cfg = json.load(f)
        self.d = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.L = cfg["num_hidden_layers"]
        self.pre = cfg.get("do_layer_norm_before", True)
        t = read_safetensors(f"{model_dir}/model.safetensors")
        self.p = {}
        for k, v in t.items():
            name = k[len("model."):] if k.startswith("model.") else k
            if name == "lm_head.weight" and "decoder.embed_tokens.weight" in self.p:
                continue  # tied to the token embeddings, as OPT's checkpoints are
            self.p[name] = v.clone().requires_grad_(True)
        decay = [v for k, v in self.p.items() if k.endswith(".weight") and "layer_norm" not in k]
        rest = [v for k, v in self.p.items() if not (k.endswith(".weight") and "layer_norm" not in k)]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.98), eps=1e-8)

    def w(self, name):
        return self.p.get(f"decoder.{name}")

    def lin(self, x, name):
        return F.linear(x, self.w(f"{name}.weight"), self.w(f"{name}.bias"))

    def loss(self, b):
        B, T, L = b["rows"], b["length"], b["layers"]
        tokens = torch.tensor(b["tokens"], dtype=torch.long).view(B, T)
        pos = torch.tensor(b["positions"], dtype=torch.long).view(B, T)
        targets = torch.tensor(b["targets"], dtype=torch.long).view(B * T)
        active = torch.tensor(b["active"], dtype=torch.bool).view(L, B, T)
        real = (pos >= 0).unsqueeze(-1)
        e = F.embedding(tokens, self.w("embed_tokens.weight"))
        if self.w("project_in.weight") is not None:
            e = F.linear(e, self.w("project_in.weight"))
        x = (e + self.w("embed_positions.weight")[(pos + 2).clamp(min=0)]) * real
        d, H = self.d, self.heads
        hd = d // H
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        eye = torch.eye(T, dtype=torch.bool)
        for l in range(L):
            a = active[l]
            cols = torch.nonzero(a.any(0))
            if cols.numel() == 0:
                continue
            n = int(cols.max()) + 1  # columns 0 .. n-1 hold every active one
            an = a[:, :n]
            xin = x[:, :n]
            pre = f"layers.{l}."
            h = F.layer_norm(xin, (d,), self.w(pre + "self_attn_layer_norm.weight"),
                             self.w(pre + "self_attn_layer_norm.bias")) if self.pre else xin
            q = self.lin(h, pre + "self_attn.q_proj") * (hd ** -0.5)
            k = self.lin(h, pre + "self_attn.k_proj")
            v = self.lin(h, pre + "self_attn.v_proj")
            q, k, v = (z.view(B, n, H, hd).transpose(1, 2) for z in (q, k, v))
            s = torch.matmul(q, k.transpose(2, 3))
            # keys: earlier columns of the row that run layer l (and the query itself, so an
            # inactive query's row is never all -inf; its output is discarded below)
            mask = causal[:n, :n] & (an.unsqueeze(1) | eye[:n, :n])
            s = s.masked_fill(~mask.unsqueeze(1), float("-inf"))
            ctx = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, n, d)
            y = xin + self.lin(ctx, pre + "self_attn.out_proj")
            if not self.pre:
                y = F.layer_norm(y, (d,), self.w(pre + "self_attn_layer_norm.weight"),
                                 self.w(pre + "self_attn_layer_norm.bias"))
            h = F.layer_norm(y, (d,), self.w(pre + "final_layer_norm.weight"),
                             self.w(pre + "final_layer_norm.bias")) if self.pre else y
            y = y + self.lin(torch.relu(self.lin(h, pre + "fc1")), pre + "fc2")
            if not self.pre:
                y = F.layer_norm(y, (d,), self.w(pre + "final_layer_norm.weight"),
                                 self.w(pre + "final_layer_norm.bias"))
            y = torch.where(an.unsqueeze(-1), y, xin)
            x = torch.cat([y, x[:, n:]], dim=1) if n < T else y
        idx = torch.nonzero(targets >= 0).squeeze(1)
        hf = x.reshape(B * T, d)[idx]
        if self.w("final_layer_norm.weight") is not None:
            hf = F.layer_norm(hf, (d,), self.w("final_layer_norm.weight"),
                              self.w("final_layer_norm.bias"))
        if self.w("project_out.weight") is not None:
            hf = F.linear(hf, self.w("project_out.weight"))
        head = self.p.get("lm_head.weight", self.w("embed_tokens.weight"))
        logits = F.linear(hf, head)
        return F.cross_entropy(logits, targets[idx], reduction="mean")

    def step(self, b):
        loss = self.loss(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.p.values()), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss)


def main():
    model = None
    batches = []
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
                model = TrainOpt(req["dir"], float(req.get("lr", 1e-4)))
                reply = {"ok": True, "torch": torch.__version__,
                         "threads": torch.get_num_threads(), **blas_info()}
            elif cmd == "batches":
                batches = req["batches"]
                reply = {"ok": True}
            elif cmd == "steps":
                if model is None or not batches:
                    raise ValueError("load a model and send batches first")
                ms, losses = [], []
                for i in range(int(req["count"])):
                    b = batches[(int(req["first"]) + i) % len(batches)]
                    t0 = time.perf_counter()
                    losses.append(model.step(b))
                    ms.append((time.perf_counter() - t0) * 1e3)
                reply = {"ok": True, "ms": ms, "losses": losses}
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as e:  # noqa: BLE001 (the reply carries it)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

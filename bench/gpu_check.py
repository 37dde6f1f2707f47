"""GPU check (run on a CUDA machine): the device choice, the pool in fp16 on CUDA, and the transformers backend
in a real Crew run, all with tiny random models (no Hub). Prints JSON and writes $OUT/gpu_check.json."""

# ruff: noqa: E402 - the repo root goes on sys.path first, so this runs where smolcrew is not installed
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
import torch

out = {
    "torch": torch.__version__,
    "cuda": torch.cuda.is_available(),
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
}
from smolcrew.backends import build_model, resolve_device
from smolcrew.config import load_settings
from smolcrew.pool import PipelinePool
from smolcrew.tools.context import use_tools
from smolcrew.tools.text import ClassifySentiment
from tests.tools.tiny_language import tiny_text_generator
from tests.tools.tiny_models import tiny_text_classifier

tmp = Path(tempfile.mkdtemp())
out["resolve_auto"] = resolve_device("auto")
# 1. pool on cuda: fp16 key, pipeline on cuda, tool answers
folder = tiny_text_classifier(tmp / "sst2")
pool = PipelinePool(device="auto", overrides={"sentiment": str(folder)})
with use_tools(pool=pool):
    result = ClassifySentiment()(text="the movie is great")
[key] = pool.loaded()
pipe = pool.get("sentiment")
out["pool"] = {
    "key": list(key),
    "param_dtype": str(next(pipe.model.parameters()).dtype),
    "param_device": str(next(pipe.model.parameters()).device),
    "result": result,
    "resident_bytes": pool.stats.resident_bytes[key],
}
# 2. transformers backend on cuda with a tiny random causal LM, inside a real Crew run (manager mode)
small = tiny_text_generator(tmp / "gpt2")
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

tok = AutoTokenizer.from_pretrained(small)
gen = tmp / "gpt2-long"  # agent prompts run to thousands of tokens: a long position table
GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=8192, n_embd=32, n_layer=1, n_head=2)).save_pretrained(gen)
tok.save_pretrained(gen)
settings = load_settings(
    home=str(tmp / "home"),
    device="auto",
    llm={"backend": "transformers", "model": str(gen), "max_tokens": 24},
    routing={"mode": "manager"},
    agents={"max_steps": 2, "specialist_max_steps": 1},
    memory={"enabled": True, "sinks": []},
)
t = time.time()
model = build_model(settings)
out["backend_load_s"] = round(time.time() - t, 2)
out["backend"] = {"class": type(model).__name__, "device": str(model.model.device), "dtype": str(model.model.dtype)}
from smolcrew.crew import Crew

crew = Crew(settings, model=model)
t = time.time()
r = crew.run("What is 2+2?")
crew.close()
out["crew_run"] = {
    "state": r.state,
    "error": (r.error or "")[:600],
    "steps": len(r.steps),
    "tokens": [r.input_tokens, r.output_tokens],
    "s": round(time.time() - t, 2),
    "mode": r.mode,
    "journal_steps": len((tmp / "home" / "journal" / f"{r.run_id}.jsonl").read_text().splitlines()),
}
print(json.dumps(out, indent=1, default=str))
report = Path(os.environ.get("OUT", tempfile.gettempdir())) / "gpu_check.json"
report.write_text(json.dumps(out, indent=1, default=str))

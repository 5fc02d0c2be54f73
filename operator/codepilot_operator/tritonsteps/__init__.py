"""The Python model of the TensorRT-LLM ensemble's two text steps, shipped with the operator.

``preprocessing`` turns the prompt into the engine's token ids and ``postprocessing`` the engine's ids
into text, both with the tokenizer in the weight snapshot. The upstream models of TensorRT-LLM's Triton
backend read tensors and parameters that the configs of render/ensemble.py leave out (multimodal,
LoRA, embedding bias) and fail to load against them, so the operator ships its own, declaring exactly
those configs' tensors.

One source serves both steps (textsteps.py; Triton loads each model.py alone, from the Triton image,
where this package is not installed, so it cannot import anything of ours). Its text is read once,
here, as package data, so render/ (pure) can put it into the version's ConfigMap.
"""

from __future__ import annotations

from importlib.resources import files

TEXT_STEPS_SOURCE = (files(__package__) / "textsteps.py").read_text(encoding="utf-8")

"""The TensorRT-LLM ensemble's text steps in real Triton: the rendered ``preprocessing`` and
``postprocessing`` configs with the model.py the operator ships (tritonsteps/textsteps.py, taken from
the rendered ConfigMap), loaded by Triton's python backend, and a tokenizer in the ``tokenizer.json``
format of a weight snapshot, built here: SentencePiece-like (Metaspace), where a token decoded alone
loses its leading space, with a BOS token the prompt gets. The engine between the steps needs a GPU;
the test plays its part (ids in, ids out, one response per token as when streaming).

Triton's python stub runs on the base interpreter, not this virtual environment, so the test puts
``tokenizers`` (which the Triton TensorRT-LLM image has) beside each model.py, a directory the python
backend puts on the model's import path.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tritonclient import http as triton_http

from codepilot_operator.api import CodePilot
from codepilot_operator.render.configmap import composing_key, model_config_map
from codepilot_operator.render.ensemble import POSTPROCESSING, PREPROCESSING, TEXT_STEPS_KEY
from codepilot_operator.render.served import served_versions
from codepilot_operator.render.tritonconfig import weights_dir
from codepilot_operator.tritonsteps import textsteps
from tests.fixtures.triton import TritonServer, _backends, free_ports, launch
from tests.helpers import codepilot

CODE = [
    "def add(a, b):\n    return a + b\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
]


def _tokenizer() -> Tokenizer:
    """A small BPE over code with SentencePiece's space handling, BOS added to every encoding."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"])
    tokenizer.train_from_iterator(CODE * 20, trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return tokenizer


def _write_snapshot_tokenizer(directory: Path) -> Tokenizer:
    directory.mkdir(parents=True)
    tokenizer = _tokenizer()
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    return Tokenizer.from_file(str(directory / "tokenizer.json"))


@pytest.fixture(scope="module")
def steps() -> Iterator[tuple[TritonServer, Tokenizer]]:
    cp = codepilot()  # tensorrtllm: the ensemble and its steps
    workdir = Path(tempfile.mkdtemp(prefix="codepilot-text-steps-"))
    try:
        snapshot = workdir / "snapshot"
        tokenizer = _write_snapshot_tokenizer(snapshot)
        data = model_config_map(cp, served_versions(cp)[0])["data"]
        repository = workdir / "models"
        for step in (PREPROCESSING, POSTPROCESSING):
            (repository / step / "1").mkdir(parents=True)
            config = data[composing_key(step)].replace(f'"{weights_dir(cp)}"', json.dumps(str(snapshot)))
            assert str(snapshot) in config  # the tokenizer is read where the config says
            (repository / step / "config.pbtxt").write_text(config)
            (repository / step / "1" / "model.py").write_text(data[TEXT_STEPS_KEY])
            (repository / step / "1" / "tokenizers").symlink_to(Path(tokenizers.__file__).parent)
        server = _start(cp, repository, workdir)
        try:
            yield server, tokenizer
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _start(cp: CodePilot, repository: Path, workdir: Path) -> TritonServer:
    ports = dict(zip(("http", "grpc", "metrics"), free_ports(3), strict=True))
    args = [
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        f"--load-model={PREPROCESSING}",
        f"--load-model={POSTPROCESSING}",
        f"--http-port={ports['http']}",
        f"--grpc-port={ports['grpc']}",
        f"--metrics-port={ports['metrics']}",
        f"--backend-directory={_backends(workdir)}",
    ]
    return launch(cp, args, ports, workdir)


def _infer(server: TritonServer, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> Any:
    client = triton_http.InferenceServerClient(server.http_url)
    try:
        tensors = []
        for name, value in inputs.items():
            kind = "BYTES" if value.dtype == np.object_ else "INT32"
            tensor = triton_http.InferInput(name, list(value.shape), kind)
            tensor.set_data_from_numpy(value)
            tensors.append(tensor)
        result = client.infer(model, tensors, outputs=[triton_http.InferRequestedOutput(o) for o in outputs])
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()


def test_preprocessing_turns_the_prompt_into_the_snapshot_tokenizers_ids(
    steps: tuple[TritonServer, Tokenizer],
) -> None:
    server, tokenizer = steps
    prompt = "def add(a, b):\n    return"
    result = _infer(
        server,
        PREPROCESSING,
        {
            "QUERY": np.array([[prompt.encode()]], dtype=np.object_),
            "REQUEST_OUTPUT_LEN": np.array([[16]], dtype=np.int32),
        },
        ["INPUT_ID", "REQUEST_INPUT_LEN", "REQUEST_OUTPUT_LEN", "OUT_END_ID", "OUT_PAD_ID"],
    )
    expected = tokenizer.encode(prompt).ids
    assert expected[0] == tokenizer.token_to_id("<s>")  # the BOS the model was trained with
    assert result["INPUT_ID"].tolist() == [expected]
    assert result["REQUEST_INPUT_LEN"].tolist() == [[len(expected)]]  # the gateway's prompt_tokens
    assert result["REQUEST_OUTPUT_LEN"].tolist() == [[16]]
    eos = tokenizer.token_to_id("</s>")
    assert result["OUT_END_ID"].tolist() == [[eos]] and result["OUT_PAD_ID"].tolist() == [[eos]]


def test_streamed_pieces_decode_to_text_that_concatenates_with_its_spaces(
    steps: tuple[TritonServer, Tokenizer],
) -> None:
    """One response per token, as the engine streams: decoded alone each SentencePiece token would
    lose its leading space and the answer would read 'returna+b'."""
    server, tokenizer = steps
    completion = " return a + b"
    ids = tokenizer.encode(completion, add_special_tokens=False).ids
    assert len(ids) > 3
    pieces = []
    for token in ids:
        result = _infer(
            server,
            POSTPROCESSING,
            {
                "TOKENS_BATCH": np.array([[[token]]], dtype=np.int32),
                "SEQUENCE_LENGTH": np.array([[1]], dtype=np.int32),
            },
            ["OUTPUT"],
        )
        pieces.append(result["OUTPUT"][0][0].decode())
    assert "".join(pieces) == completion
    assert "".join(tokenizer.decode([token]) for token in ids) != completion  # what naive decoding gives


def test_postprocessing_decodes_only_the_sequence_length_and_drops_the_end_token(
    steps: tuple[TritonServer, Tokenizer],
) -> None:
    server, tokenizer = steps
    ids = tokenizer.encode(" return n", add_special_tokens=False).ids
    eos = tokenizer.token_to_id("</s>")
    padded = [*ids, eos, eos, eos]
    result = _infer(
        server,
        POSTPROCESSING,
        {
            "TOKENS_BATCH": np.array([[padded]], dtype=np.int32),
            "SEQUENCE_LENGTH": np.array([[len(ids) + 1]], dtype=np.int32),  # the answer and its end
        },
        ["OUTPUT"],
    )
    assert result["OUTPUT"].tolist() == [[b" return n"]]


def test_an_empty_prompt_the_tokenizer_makes_nothing_of_is_refused() -> None:
    """With no BOS token (StarCoder's, Qwen's) an empty prompt is no tokens, which the engine cannot
    start from: refused (Triton's error, the gateway's 400), not sent as one padding token."""
    no_bos = _tokenizer()
    no_bos.post_processor = None
    with pytest.raises(ValueError, match="the prompt is empty"):
        textsteps.encode_batch(no_bos, ["def f():", ""], True, 0)
    ids, lengths = textsteps.encode_batch(_tokenizer(), [""], True, 0)  # with BOS: a prompt of one
    assert lengths.tolist() == [[1]] and ids.tolist() == [[_tokenizer().token_to_id("<s>")]]


def test_a_snapshot_without_an_end_token_is_refused_naming_the_file(tmp_path: Path) -> None:
    _tokenizer().save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"tokenizer_config.json is missing \(it names the eos_token\)"):
        textsteps.load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text('{"bos_token": "<s>"}')
    with pytest.raises(ValueError, match=r"tokenizer_config.json names no eos_token"):
        textsteps.load_tokenizer(str(tmp_path))

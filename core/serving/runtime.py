"""The MLServer runtime that serves one exported file: V2 tensors in, the Predictor's probabilities and labels out."""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    ResponseOutput,
)

from core.export.model_file import label_names
from core.scoring.predictor import Predictor
from core.serving.limits import IDS_INPUT, TEXT_INPUT, Limits, RequestError, ids_rows, requested, review_texts

PLATFORM = "onnxruntime_onnx"  # what Triton calls a model its onnxruntime backend runs
# Outputs by input: ids give a probability and a label a row; text also gives the word counts the rule found (tokens 0:
# no word was read, and the probability is the model's on an empty review) and whether the review was cut.
IDS_OUTPUTS = {"probability": "FP32", "label": "BYTES"}
TEXT_OUTPUTS = {**IDS_OUTPUTS, "tokens": "INT64", "unknown_tokens": "INT64", "truncated": "BOOL"}


def _tensors(datatypes: dict[str, str], shape: list[int]) -> list[MetadataTensor]:
    return [MetadataTensor(name=name, datatype=datatype, shape=shape) for name, datatype in datatypes.items()]


class ReviewModel(MLModel):
    """One .onnx file (ids or text) behind the Open Inference Protocol; settings.parameters.uri is its path and
    settings.parameters.extra["limits"] the fields of a Limits."""

    async def load(self) -> bool:
        parameters = self.settings.parameters
        self.predictor = Predictor.from_file(parameters.uri)
        self.limits = Limits(**(parameters.extra or {}).get("limits", {}))
        return True

    async def metadata(self) -> MetadataModelResponse:
        """The file's inputs and outputs, and what a client needs from its metadata_props to use them."""
        metadata = self.predictor.metadata
        vocabulary = metadata.vocabulary
        essentials = {
            "file": self.predictor.path.name,
            "vocabulary_size": vocabulary.num_words,
            "text_rule": vocabulary.normalization,
            "threshold": metadata.threshold,
            "labels": list(metadata.labels),
            "sequence_length": metadata.sequence_length,
            "padding": metadata.padding,
            "truncating": metadata.truncating,
            "pad_id": vocabulary.pad_id,
            "start_id": vocabulary.start_id,
            "oov_id": vocabulary.oov_id,
            "index_from": vocabulary.index_from,
            "model": metadata.config.to_dict()["model"],
            "test_metrics": metadata.metrics,
            "created": metadata.created,
            "limits": self.limits.to_dict(),
        }
        return MetadataModelResponse(
            name=self.name,
            versions=self.settings.versions,
            platform=PLATFORM,
            inputs=[
                MetadataTensor(name=IDS_INPUT, datatype="INT32", shape=[-1, -1]),
                MetadataTensor(name=TEXT_INPUT, datatype="BYTES", shape=[-1]),
            ],
            outputs=_tensors(TEXT_OUTPUTS, [-1]),
            parameters=Parameters(**essentials),
        )

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        try:
            outputs = self._outputs(payload)
        except RequestError as error:
            raise MLServerError(str(error), error.status) from None
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)

    def _outputs(self, payload: InferenceRequest) -> list[ResponseOutput]:
        if len(payload.inputs) != 1:
            raise RequestError(
                f"send one input, {IDS_INPUT} (INT32 [rows, ids]) or {TEXT_INPUT} (BYTES [rows]); "
                f"got {len(payload.inputs)}"
            )
        (tensor,) = payload.inputs
        wanted = [output.name for output in payload.outputs or []]
        metadata = self.predictor.metadata
        datatype = str(tensor.datatype)  # MLServer keeps enums as their values
        if tensor.name == IDS_INPUT:
            names = requested(wanted, list(IDS_OUTPUTS))
            ids = ids_rows(datatype, tensor.shape, tensor.data.root, metadata.vocabulary.num_words, self.limits)
            scores = self.predictor.probabilities(ids)
            columns = {"probability": scores, "label": label_names(scores, metadata.threshold, metadata.labels)}
            datatypes = IDS_OUTPUTS
        elif tensor.name == TEXT_INPUT:
            names = requested(wanted, list(TEXT_OUTPUTS))
            predictions = self.predictor.predict(review_texts(datatype, tensor.shape, tensor.data.root, self.limits))
            columns = {
                "probability": np.array([item.score for item in predictions], dtype=np.float32),
                "label": [item.label for item in predictions],
                "tokens": [item.tokens for item in predictions],
                "unknown_tokens": [item.unknown_tokens for item in predictions],
                "truncated": [item.truncated for item in predictions],
            }
            datatypes = TEXT_OUTPUTS
        else:
            raise RequestError(
                f"no input {tensor.name!r}: send {IDS_INPUT} (INT32 [rows, ids]) or {TEXT_INPUT} (BYTES [rows])"
            )
        return [
            ResponseOutput(
                name=name,
                datatype=datatypes[name],
                shape=[len(columns[name])],
                data=columns[name].tolist() if isinstance(columns[name], np.ndarray) else columns[name],
            )
            for name in names
        ]

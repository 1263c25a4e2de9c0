"""Network building blocks of the supernet and of every static subnet.

Static modules (ordinary PyTorch layers, exportable): attention variants (``attention``),
feed-forward / convolution / recurrent branches, encoder layers (``blocks``), front-ends and the
subsampler, the encoder (``encoder``) and decoder heads (``ctc``, ``transducer``, ``decoder``,
``heads``). Weight sharing: ``elastic`` (sliced max-size weights) and ``mixed`` (the supernet's
layer slot). ``params``: exact parameter counts.
"""

from supernet.nn.attention import ATTENTION_CLASSES, LinearAttention, LocalAttention, MultiHeadAttention, RelPositionAttention
from supernet.nn.blocks import BLOCK_UNITS, EncoderLayer, unit_spec
from supernet.nn.config import NetConfig
from supernet.nn.convolution import ConvModule, ConvSE
from supernet.nn.ctc import CTCHead
from supernet.nn.decoder import AttentionHead
from supernet.nn.elastic import Elastic, slice_like, sliced_state
from supernet.nn.encoder import Encoder, EncoderStack
from supernet.nn.feedforward import FeedForward
from supernet.nn.frontend import FrontEnd, LearnableFrontEnd, feature_dim, make_features
from supernet.nn.heads import HEADS, build_head, head_spec
from supernet.nn.recurrent import BLSTMUnit, LSTMUnit
from supernet.nn.subsampler import Subsampler
from supernet.nn.transducer import TransducerHead

__all__ = [
    "ATTENTION_CLASSES", "MultiHeadAttention", "RelPositionAttention", "LocalAttention", "LinearAttention",
    "BLOCK_UNITS", "EncoderLayer", "unit_spec", "NetConfig", "ConvModule", "ConvSE", "CTCHead", "AttentionHead",
    "TransducerHead", "Elastic", "slice_like", "sliced_state", "Encoder", "EncoderStack", "FeedForward", "FrontEnd",
    "LearnableFrontEnd", "feature_dim", "make_features", "HEADS", "build_head", "head_spec", "BLSTMUnit", "LSTMUnit",
    "Subsampler",
]  # fmt: skip

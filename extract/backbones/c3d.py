"""C3D (Tran et al., ICCV 2015) with the layer names of c3d-pytorch, so its ``c3d.pickle`` loads unchanged.

Eight 3x3x3 convolutions in five stages, max pooling after each stage (the first pools space only),
then three fully connected layers. Trained on Sports-1M in Caffe: the input is a 16-frame clip,
112x112 crop of frames resized to 128x171, BGR on a 0-255 scale minus the training mean.

Registered backbones (same checkpoint):

    "c3d"       [B, 3, 16, 112, 112] -> fc6 after ReLU                    [B, 4096]
    "c3d_maps"  [B, 3, T, H, W]      -> conv5b after ReLU (before pool5)   [B, 512, T/8, H/16, W/16]
                                        = [B, 512, 2, 7, 7] for a 16x112x112 clip

The maps are the frozen encoder output that the pixel-level distinction decoder trains on.

Input convention of ``c3d.pickle``: BGR on a 0-255 scale minus the Sports-1M mean, not the RGB 0-255 without a
mean that c3d-pytorch's own ``predict.py`` feeds. The evidence:

* The weights are Caffe's: DavideA (DavideA/c3d-pytorch#5) "limited to translate parameters correctly from the
  Keras + Theano version" (albertomontesg's gist "Sports1M C3D Network to Keras"), itself a conversion of the
  Caffe model of facebook/C3D. Conversions copy parameters; they do not change what conv1 expects.
* facebook/C3D trains and extracts features from frames read by OpenCV (BGR, 0-255) minus
  ``sport1m_train16_128_mean.binaryproto`` (C3D-v1.0/examples/c3d_feature_extraction), a mean volume of
  16 x 128 x 171 frames (facebookarchive/C3D#59 on reading its layout).
* ``predict.py`` reads frames with skimage (RGB) and marks the question itself: "TODO: should I remove mean
  here?". c3d-pytorch#4 answers it from the Caffe sources ("[0, 255], BGR mode, mean subtraction"), and
  c3d-pytorch#1 derives the per-channel Sports-1M mean from that binaryproto (as albertomontesg's keras-model-zoo
  ``c3d_mean.npy``, shape (1, 3, 16, 128, 171)): (90.25, 97.66, 101.41) in BGR order; with BGR minus this mean
  the repository's own "roger" clip is classified tennis at 0.99994.

hl therefore feeds BGR minus :data:`SPORTS1M_MEAN_BGR`, from frames resized to 128 x 171 (the size the mean and
the Caffe training clips have) and centre-cropped to 112 x 112; ``predict.py``'s 112 x 200 resize is its own.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._registry import BackboneSpec, ExtractorDef, WeightsEntry, register

CLIP_FRAMES = 16
CROP = 112
RESIZE = (128, 171)  # (height, width) the Sports-1M frames were stored at
# Per-channel mean of the Caffe Sports-1M mean volume (sport1m_train16_128_mean.binaryproto), in BGR order.
SPORTS1M_MEAN_BGR = (90.25, 97.66, 101.41)
FC6_INPUT = 512 * 1 * 4 * 4  # pool5 output of a 16x112x112 clip, flattened


def _conv(c_in: int, c_out: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=3, padding=1)


class C3D(nn.Module):
    """C3D as in c3d-pytorch's ``C3D_model.py``: same attribute names and shapes, 487 Sports-1M classes.

    ``output`` picks what :meth:`forward` returns: ``"fc6"`` (the 4096-d clip feature) or ``"conv5b"``
    (the last convolutional maps).
    """

    def __init__(self, output: str = "fc6", num_classes: int = 487):
        super().__init__()
        if output not in ("fc6", "conv5b"):
            raise ValueError(f"output must be 'fc6' or 'conv5b', got {output!r}")
        self.output = output

        self.conv1 = _conv(3, 64)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))  # space only: keep early motion

        self.conv2 = _conv(64, 128)
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)

        self.conv3a = _conv(128, 256)
        self.conv3b = _conv(256, 256)
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)

        self.conv4a = _conv(256, 512)
        self.conv4b = _conv(512, 512)
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)

        self.conv5a = _conv(512, 512)
        self.conv5b = _conv(512, 512)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))  # 7x7 -> 4x4

        self.fc6 = nn.Linear(FC6_INPUT, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(p=0.5)

    def conv_maps(self, clip: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] -> conv5b after ReLU, [B, 512, T/8, H/16, W/16]."""
        if clip.ndim != 5 or clip.shape[1] != 3:
            raise ValueError(f"C3D expects a clip [B, 3, T, H, W], got shape {tuple(clip.shape)}")
        h = self.pool1(F.relu(self.conv1(clip)))  # [B, 64, T, H/2, W/2]
        h = self.pool2(F.relu(self.conv2(h)))  # [B, 128, T/2, H/4, W/4]
        h = F.relu(self.conv3b(F.relu(self.conv3a(h))))
        h = self.pool3(h)  # [B, 256, T/4, H/8, W/8]
        h = F.relu(self.conv4b(F.relu(self.conv4a(h))))
        h = self.pool4(h)  # [B, 512, T/8, H/16, W/16]
        return F.relu(self.conv5b(F.relu(self.conv5a(h))))

    def fc6_from_maps(self, conv5b: torch.Tensor) -> torch.Tensor:
        """conv5b maps of a 16x112x112 clip [B, 512, 2, 7, 7] -> fc6 after ReLU [B, 4096]."""
        h = self.pool5(conv5b)  # [B, 512, 1, 4, 4]
        if h[0].numel() != FC6_INPUT:
            raise ValueError(
                f"fc6 needs a {CLIP_FRAMES}x{CROP}x{CROP} clip (conv5b [B, 512, 2, 7, 7]), "
                f"got conv5b of shape {tuple(conv5b.shape)}"
            )
        return F.relu(self.fc6(h.flatten(1)))

    def logits(self, clip: torch.Tensor) -> torch.Tensor:
        """Sports-1M class scores before softmax, [B, num_classes]."""
        h = self.dropout(self.fc6_from_maps(self.conv_maps(clip)))
        h = self.dropout(F.relu(self.fc7(h)))
        return self.fc8(h)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        maps = self.conv_maps(clip)
        if self.output == "conv5b":
            return maps
        return self.fc6_from_maps(maps)


def _as_uint8_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [N, T, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def preprocess(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB clips [N, T, H, W, 3] -> C3D input [N, 3, T, 112, 112], float32.

    Each frame is resized to 128x171 (bilinear, antialiased), centre-cropped to 112x112, reordered to
    BGR, and the Sports-1M per-channel mean is subtracted from the 0-255 values.
    """
    frames = _as_uint8_frames(frames)
    t = frames.shape[1]
    top = (RESIZE[0] - CROP) // 2
    left = (RESIZE[1] - CROP) // 2
    mean = torch.tensor(SPORTS1M_MEAN_BGR, dtype=torch.float32).view(3, 1, 1, 1)
    clips = []
    for clip in frames:  # one clip at a time bounds memory for high-resolution video
        x = clip.permute(0, 3, 1, 2).float()  # [T, 3, H, W], RGB
        x = F.interpolate(x, size=RESIZE, mode="bilinear", align_corners=False, antialias=True)
        x = x[:, :, top : top + CROP, left : left + CROP]
        x = x.flip(1).permute(1, 0, 2, 3)  # [3, T, 112, 112], BGR
        clips.append(x - mean)
    if not clips:
        return torch.empty(0, 3, t, CROP, CROP)
    return torch.stack(clips)


SPORTS1M = WeightsEntry(
    # DavideA/c3d-pytorch README (1111ccf): "Download the pretrained weights (Sports1M) from
    # [here](http://imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle)". The README gives only this http
    # address and publishes no checksum (nor does any release of the repository); whether the host serves the same
    # path over https could not be checked from here, so the published address is kept. The file is never
    # unpickled with code: it is read with torch.load(weights_only=True) (a plain state dict of tensors), its
    # names and shapes are checked before it is put in place, and the sha256 of the first download is recorded in
    # the weights directory (weights.json) and in every cache unit made with it.
    "c3d_sports1m", "c3d", "c3d.pickle", "http://imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle",
    description="C3D trained on Sports-1M (487 classes), converted from the Caffe model (DavideA/c3d-pytorch)",
    license="code MIT (DavideA/c3d-pytorch); the converted Caffe weights state no licence",
)

_COMMON = dict(
    modality="video",
    preprocess=preprocess,
    frame_size=lambda h, w: RESIZE,  # every frame to 128x171, antialiased (then the 112x112 crop)
    clip_frames=CLIP_FRAMES,
    input_size=(CROP, CROP),
    fps=8.0,  # 16 frames span a 2-s segment
    weights=(SPORTS1M,),
)

register(
    BackboneSpec(
        name="c3d",
        build=lambda: C3D(output="fc6"),
        feature_dim=4096,
        feature_layer="fc6 after ReLU",
        notes="c3d-pytorch C3D (c3d.pickle, Sports-1M); input BGR 0-255 minus the Sports-1M mean.",
        extractors=(ExtractorDef("c3d", "c3d", "segment", description="C3D Sports-1M fc6, 4096-d"),),
        **_COMMON,
    )
)

register(
    BackboneSpec(
        name="c3d_maps",
        build=lambda: C3D(output="conv5b"),
        feature_dim=512,
        feature_layer="conv5b after ReLU (before pool5)",
        feature_shape=(512, 2, 7, 7),
        notes="Frozen C3D encoder maps for the pixel-level decoder: [512, T/8, H/16, W/16].",
        extractors=(ExtractorDef("c3d_maps", "c3d_maps", "window", output="maps",
                                 description="C3D conv5b maps of the 16 frames ending at each target frame, "
                                 "float16"),),
        **_COMMON,
    )
)

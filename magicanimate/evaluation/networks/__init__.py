"""The four metric networks, defined here because torchvision cannot be installed on CPU-only machines.

Module and parameter names follow the published weight files exactly, so those files load strictly:

* :class:`~.inception.FIDInceptionV3` -- pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``.
* :class:`~.lpips_vgg.LPIPSVGG` -- torchvision's ``vgg16-397923af.pth`` + LPIPS v0.1 ``vgg.pth``.
* :class:`~.resnet3d.ResNet3D50` -- Hara et al.'s ``resnet-50-kinetics.pth``.
* :class:`~.i3d.InceptionI3D` -- ``i3d_pretrained_400.pt`` (piergiaj/pytorch-i3d naming).
"""

from magicanimate.evaluation.networks.i3d import InceptionI3D
from magicanimate.evaluation.networks.inception import FIDInceptionV3
from magicanimate.evaluation.networks.lpips_vgg import LPIPSVGG, VGG16Features
from magicanimate.evaluation.networks.resnet3d import ResNet3D50

__all__ = ["FIDInceptionV3", "InceptionI3D", "LPIPSVGG", "ResNet3D50", "VGG16Features"]

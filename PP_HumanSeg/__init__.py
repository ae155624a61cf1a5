"""PaddleSeg human segmentation (upstream StyleGAN-Human's mask model) as an optional backend.

Needs ``pip install paddlepaddle`` (or ``paddlepaddle-gpu``) and the exported model
``deeplabv3p_resnet50_os8_humanseg_512x512_100k_with_softmax`` unzipped into
``PP_HumanSeg/export_model/`` (see :data:`MODEL_URL`); nothing is downloaded at run time.
Importing this package does not import Paddle.

    from PP_HumanSeg import HumanSegmenter
    prob = HumanSegmenter()(rgb)        # HxW float32 person probability; > 0.5 = person
"""

from .deploy_config import (DEFAULT_MODEL_DIR, MODEL_NAME, MODEL_URL, DeployConfig, DeployFileError,
                            PaddleSegError, load_deploy_config)
from .predictor import HumanSegmenter, person_probability, postprocess, preprocess

__all__ = ['HumanSegmenter', 'PaddleSegError', 'DeployFileError', 'DEFAULT_MODEL_DIR', 'MODEL_NAME', 'MODEL_URL', 'DeployConfig',
           'load_deploy_config', 'preprocess', 'postprocess', 'person_probability']

"""OpenPose body keypoints (COCO-18): the network, its weights, and decoding into people.

Optional backend: it needs the user's ``body_pose_model.pth`` (pytorch-openpose's
conversion of the CMU Caffe model); see :data:`openpose.model.WEIGHTS_URL`.

    from openpose import Body
    people = Body('openpose/model/body_pose_model.pth')(rgb)   # list[Person]
"""

from .body import Body
from .decode import (COCO18_NAMES, LIMB_PAF_CHANNELS, LIMBS, Person, connect_limbs, decode_people, find_peaks,
                     group_people)
from .model import (DEFAULT_WEIGHTS, BodyPoseNet, OpenPoseWeightsError, load_body_weights, published_state_dict,
                    read_state_dict)

__all__ = ['Body', 'BodyPoseNet', 'COCO18_NAMES', 'DEFAULT_WEIGHTS', 'LIMBS', 'LIMB_PAF_CHANNELS',
           'OpenPoseWeightsError', 'Person', 'connect_limbs', 'decode_people', 'find_peaks', 'group_people',
           'load_body_weights', 'published_state_dict', 'read_state_dict']

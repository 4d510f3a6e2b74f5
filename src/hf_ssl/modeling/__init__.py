"""One folder per method; importing this package registers them all (see `hf_ssl.registry`).
The order is the order of `hf-ssl list`."""

from ..registry import register_method
from .autoencoder import METHOD as AUTOENCODER_METHOD
from .barlow_twins import METHOD as BARLOW_TWINS_METHOD
from .beit import METHOD as BEIT_METHOD
from .byol import METHOD as BYOL_METHOD
from .clip import METHOD as CLIP_METHOD
from .clm import METHOD as CLM_METHOD
from .colorization import METHOD as COLORIZATION_METHOD
from .context_encoder import METHOD as CONTEXT_ENCODER_METHOD
from .denoising_autoencoder import METHOD as DENOISING_AUTOENCODER_METHOD
from .data_distillation import METHOD as DATA_DISTILLATION_METHOD
from .dino import METHOD as DINO_METHOD
from .entropy_minimization import METHOD as ENTROPY_MINIMIZATION_METHOD
from .fixmatch import METHOD as FIXMATCH_METHOD
from .jigsaw import METHOD as JIGSAW_METHOD
from .mae import METHOD as MAE_METHOD
from .mean_teacher import METHOD as MEAN_TEACHER_METHOD
from .mlm import METHOD as MLM_METHOD
from .moco import METHOD as MOCO_METHOD
from .noisy_student import METHOD as NOISY_STUDENT_METHOD
from .pseudo_label import METHOD as PSEUDO_LABEL_METHOD
from .relative_patch_location import METHOD as RELATIVE_PATCH_LOCATION_METHOD
from .rotation import METHOD as ROTATION_METHOD
from .self_training import METHOD as SELF_TRAINING_METHOD
from .simclr import METHOD as SIMCLR_METHOD
from .simmim import METHOD as SIMMIM_METHOD
from .simsiam import METHOD as SIMSIAM_METHOD
from .supervised import METHOD as SUPERVISED_METHOD
from .swav import METHOD as SWAV_METHOD
from .vicreg import METHOD as VICREG_METHOD
from .visual_tokenizer import METHOD as VISUAL_TOKENIZER_METHOD
from .word2vec import METHOD as WORD2VEC_METHOD

for _method in (
    MAE_METHOD, SIMCLR_METHOD, MOCO_METHOD, BYOL_METHOD, SIMSIAM_METHOD, SWAV_METHOD, VICREG_METHOD,
    BARLOW_TWINS_METHOD, DINO_METHOD, CLIP_METHOD, VISUAL_TOKENIZER_METHOD, BEIT_METHOD, SIMMIM_METHOD,
    MLM_METHOD, CLM_METHOD, WORD2VEC_METHOD, ROTATION_METHOD, RELATIVE_PATCH_LOCATION_METHOD, JIGSAW_METHOD,
    AUTOENCODER_METHOD, DENOISING_AUTOENCODER_METHOD, CONTEXT_ENCODER_METHOD,
    COLORIZATION_METHOD,
    # semi-supervised (image-classification modality): the baseline first, then the methods
    SUPERVISED_METHOD, PSEUDO_LABEL_METHOD, ENTROPY_MINIMIZATION_METHOD, MEAN_TEACHER_METHOD, FIXMATCH_METHOD,
    SELF_TRAINING_METHOD, DATA_DISTILLATION_METHOD, NOISY_STUDENT_METHOD,
):
    register_method(_method)

"""Weight initializers (``init_cfg`` types) registered in MMPretrain."""
from .hlss_pretrained_init import HLSSPretrainedInit

__all__ = ['HLSSPretrainedInit']

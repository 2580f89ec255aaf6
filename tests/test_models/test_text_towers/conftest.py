"""Text-tower tests run offline: nothing may come from a model hub.

Set here, before any test module of this folder imports transformers.
"""
import os

os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'

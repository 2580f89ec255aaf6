"""Tests of hlss_plugin.evaluation."""

"""occfau_lib: the thin library behind the occfau notebooks.

Occlusion-robust facial action unit (AU) recognition by mining the latent space of a masked
autoencoder (Jiang et al., arXiv 2212.04029), re-implemented for teaching. One module per concept:

- ``aus``        FACS action units, BP4D / DISFA subsets            (notebook 00)
- ``synthfacs``  the procedural face world with known AUs           (notebook 00)
- ``data``       SynthFACS, BP4D, DISFA and CSV datasets, 3 folds   (notebook 00)
- ``metrics``    per-AU F1 / AUC, fold aggregation, result tables   (all notebooks)
- ``mae``        ViT-MAE: chosen masking, reconstruction, pretraining (notebooks 01, 02)
- ``occlusion``  region / random-patch masks and patch visibility    (notebooks 01-03)
- ``probe``      linear probes, probing under hiding, cached UMAP    (notebook 02)
- ``viz``        the plotting functions every figure and widget uses
- ``config``     the smoke / demo / paper profiles (``$OCCFAU_PROFILE``)
- ``cache``      load-if-config-matches-else-build, atomic writes
"""
__version__ = "0.1.0"

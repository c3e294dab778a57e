"""occfau_lib: the thin library behind the occfau notebooks.

Occlusion-robust facial action unit (AU) recognition by mining the latent space of a masked
autoencoder (Jiang et al., arXiv 2212.04029), re-implemented for teaching. One module per concept,
each importing only the floors below it:

- Ground floor: ``aus`` (FACS action units, the BP4D / DISFA subsets), ``patches`` (uint8 <->
  tensor, patch <-> pixel masks), ``config`` (the smoke / demo / paper profiles), ``cache``
  (checkpoint-or-train, content keys, the one checkpoint reader), ``files`` (atomic writes,
  checked folders).
- Data: ``data`` (the AUDataset interface, subject-exclusive folds), ``face_params``, ``render``
  and ``synthfacs`` (the procedural face world), ``loaders`` and ``tables`` (BP4D, DISFA, CSV
  files), ``occlusion`` (protocols and realistic occluders), ``metrics`` (per-AU F1 / AUC, folds).
- Methods: ``train`` (the loop every model shares), ``mae`` and ``mae_weights`` (ViT-MAE),
  ``probe`` (linear probes), ``teacher`` (the ME-GraphAU-style teacher), ``student`` (the mapping
  network on MAE latents), ``distill`` (node- and edge-level distillation).
- Top floor: ``experiments`` (the models a profile uses, the evaluation harness, the table of
  methods), ``latent_space`` (what the MAE's latent holds), ``viz``, ``widgets`` and ``explorer``
  (figures and interactive explorers), ``record`` (the claims record), ``cli`` and
  ``cli_settings`` (``python -m occfau_lib``).

Beside the package, ``tools/`` holds the repository's tooling (notebook runner, offline book,
shipped-model maker, figure cutter) and ``benchmarks/`` the measurements and their records.
"""
__version__ = "0.1.0"

"""occfau_lib: the thin library behind the occfau notebooks.

Occlusion-robust facial action unit (AU) recognition by mining the latent space of a masked
autoencoder (Jiang et al., arXiv 2212.04029), re-implemented for teaching. One module per concept,
each importing only the floors below it:

Ground floor: what every stage shares
- ``aus``           FACS action units, the BP4D / DISFA subsets                  (notebook 00)
- ``patches``       uint8 <-> tensor, normalisation, patch <-> pixel masks, face grid (all)
- ``config``        the smoke / demo / paper profiles (``$OCCFAU_PROFILE``)
- ``cache``         checkpoint-or-train, content keys, atomic writes, the one checkpoint reader

Data
- ``data``          the AUDataset interface: labels, subjects, subject-exclusive folds (notebook 00)
- ``face_params``   the vectors that describe a face: identity, AUs, nuisances      (notebook 00)
- ``render``        the SynthFACS renderer: one painter per face part              (notebook 00)
- ``synthfacs``     the procedural face world: identities, expressions, sessions   (notebook 00)
- ``loaders``       BP4D, DISFA and CSV files: layouts, frame rules, validation     (notebook 05)
- ``tables``        reading label tables (CSV) and recognising AU columns            (notebook 05)
- ``files``         checks of the folders and files a user names
- ``occlusion``     protocols and realistic occluders -> image, pixel mask, visibility (01-03)
- ``metrics``       per-AU F1 / AUC, fold aggregation, result tables               (all notebooks)

Methods: models, losses and training
- ``train``         the training loop every model shares: schedule, resume, DDP, engine
- ``mae``           ViT-MAE: visible-only encoding, reconstruction, pretraining       (01, 02)
- ``mae_weights``   official MAE weights from a local path (``$OCCFAU_MAE_WEIGHTS``)  (notebook 05)
- ``probe``         linear probes, the 3-fold protocol, the floors                    (notebook 02)
- ``teacher``       the ME-GraphAU-style AU-relation-graph teacher                   (notebook 03)
- ``student``       the mapping network on MAE latents (linear or attention)         (notebook 04)
- ``distill``       node- and edge-level knowledge distillation, the ablations       (notebook 04)

Top floor: experiments, figures and entry points
- ``experiments``   the models a profile uses, the one evaluation over occlusion conditions, the
                    table of methods
- ``latent_space``  what the MAE's latent holds and shows: hiding conditions, reconstruction error
                    by region, token drift, feature-space geometry (UMAP, neighbours)  (01-04)
- ``viz``           the plotting functions every figure uses
- ``widgets``       the notebooks' interactive explorers (ipywidgets)
- ``explorer``      the latent explorer's data: spaces, projections, neighbours, Projector export (02, 04)
- ``record``        the claims record: reading it, its tables
- ``cli``           ``python -m occfau_lib``: the four stages outside the notebooks (notebook 05)
- ``cli_settings``  the command line's presets, YAML files and ``key=value`` overrides

Beside the package, ``tools/`` holds the repository's own tooling: the notebook runner and the
offline book of ``make demo``, the shipped-model maker of ``make models`` and the README figure
cutter of ``make figures``.
"""
__version__ = "0.1.0"

"""The networks and the neural renderer (GAR: ``../shared/papers/000_...txt``), one job per module.

Networks: ``gar`` (G, and the condition's channel layout), ``discriminator`` (D), ``inverter`` (V),
``normals`` (N), ``regressor`` (FR), ``identity`` (R), built from ``layers`` (also the one
``autocast``); ``losses``; ``checkpoints`` (shipped weights, loaded by the caller that keeps them).
Data: ``align`` (the crop template), ``labels`` (region/normal label maps), ``data`` (the dataset
shards), ``evaluate`` (the auxiliary networks' figures).
The renderer: ``gar_nets`` (the loaded renderer :class:`~faceeditor.neural.gar_nets.GarNets`: G, V,
D, R and the caches that live with them) -> ``crop`` (where G works in a photo) -> ``condition``
(G's condition map, noise carried with the surface) -> ``tuning`` (pivotal-tuning deltas) ->
``crop_head`` and ``invert`` (eq. 10 + pivotal tuning) -> ``crop_render`` (G's image of an edited
face) -> ``fill`` (G as the compositor's fill layer) -> ``gar_renderer`` (the ``"gar"`` PhotoRenderer).
The photo-conditioned renderer (issue 15): ``photo_g`` (G_p, Tax-free eq. 7-10) <- ``photo_rep``
(its input, rep(p)) -> ``photo_renderer`` (the ``"neural"`` PhotoRenderer, feed-forward).
"""

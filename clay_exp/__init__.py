"""clay-exp: which spatial (location) encoding helps a masked-autoencoder EO model most?"""

__version__ = "0.1.0"

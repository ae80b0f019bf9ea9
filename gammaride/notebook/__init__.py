"""The Colab notebook's facade (``colab``) and its building blocks (``blocks``)."""

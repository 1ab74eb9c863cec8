"""The course's Keras layers (filled in by the layers work)."""

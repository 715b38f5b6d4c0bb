"""Image-folder datasets (Tiny-ImageNet-style and face identities); registered on import."""

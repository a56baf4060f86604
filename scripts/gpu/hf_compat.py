"""What differs between transformers 4.x and 5.x for the checks in this folder."""
import torch


def embeds(output):
    """get_image_features / get_text_features: a tensor in transformers 4.x, an output object in 5.x (the
    projected embeddings in .pooler_output)."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"no embeddings in {type(output).__name__}: expected a tensor or .pooler_output")
    return pooled

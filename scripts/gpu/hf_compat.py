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


def pil_image_processor(name):
    """The PIL image processor class `name` names: transformers 5.x's `<name>Pil` (its `<name>` is torchvision-based,
    not PIL's resize bit for bit), else transformers 4.x's `<name>` (PIL-based)."""
    import transformers
    try:
        return getattr(transformers, name + "Pil")
    except AttributeError:
        return getattr(transformers, name)


def use_pil_image_processor(processor, path):
    """Replaces a loaded processor's image processor with the PIL one of the same model, read from path (the
    processor's tokenizer and its own settings stay as AutoProcessor loaded them). Returns the processor."""
    name = type(processor.image_processor).__name__
    name = name[: -len("Fast")] if name.endswith("Fast") else name  # transformers 4.x's torchvision classes
    processor.image_processor = pil_image_processor(name).from_pretrained(path)
    return processor

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)



@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """A small OpenAI-style checkpoint (QuickGELU): 3 layers x 4 heads, 32 px, patch 8."""
    from transformers import CLIPConfig, CLIPModel

    from checkpoints import SMALL_TEXT, write_char_tokenizer

    folder = tmp_path_factory.mktemp("tiny")
    vocab = write_char_tokenizer(folder)
    config = CLIPConfig(
        vision_config=dict(hidden_size=64, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        text_config=dict(SMALL_TEXT, vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        projection_dim=24)
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny(tiny_folder):
    import clipinterp

    return clipinterp.load(tiny_folder)


@pytest.fixture()
def pixels():
    torch.manual_seed(3)
    return torch.randn(4, 3, 32, 32)

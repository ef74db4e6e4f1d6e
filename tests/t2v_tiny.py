"""A tiny random Latte-1 folder (the LattePipeline layout), built offline: for the Latte-T2V tests."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("a", "video", "of", "person", "playing", "guitar", "cat", "dog", "running", "apply", "eye", "makeup",
         "the", "sky", "jump", "rope", "square", "disc", "triangle", "cross", "ring", "diamond")  # the demo's classes last
TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                   cross_attention_dim=16, attention_bias=True, sample_size=8, patch_size=2,
                   activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
                   norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=16, video_length=4)
FRAMES, PIXELS = 4, 16  # the videos it makes: 4 frames of 16 x 16 (VAE factor 2)


def tiny_tokenizer(words=WORDS):
    """A T5-like fast tokenizer on a word vocabulary: whitespace words, ``</s>`` appended, ``<pad>`` = 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_pipeline(seed: int = 0, frames: int = FRAMES):
    """diffusers' LattePipeline on tiny random components (transformer weights ~ N(0, 0.05)), ``frames`` per video."""
    from diffusers import AutoencoderKL, DDIMScheduler, LattePipeline, LatteTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = LatteTransformer3DModel(**{**TRANSFORMER, "video_length": frames})
    with torch.no_grad():
        for p in transformer.parameters():
            p.normal_(0, 0.05)
    encoder = T5EncoderModel(T5Config(vocab_size=len(WORDS) + 3, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                      feed_forward_proj="gated-gelu", dropout_rate=0.0))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=PIXELS)
    scheduler = DDIMScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=False)
    pipe = LattePipeline(tokenizer=tiny_tokenizer(), text_encoder=encoder.eval(), vae=vae.eval(),
                         transformer=transformer.eval(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_tiny_latte1(folder: Path, seed: int = 0, frames: int = FRAMES):
    """Write the tiny pipeline to ``folder`` (transformer/, text_encoder/, tokenizer/, vae/, scheduler/); return it."""
    pipe = tiny_pipeline(seed, frames)
    pipe.save_pretrained(str(folder))
    return pipe

"""Every config key of sora_jax, with defaults sized for a small accelerator run.

Variants import this file and override a few keys. Launch:

  sora-jax train --config=configs/default.py --workdir=runs/default
  sora-jax train --config=configs/tiny_pixels.py --workdir=runs/tiny --config.train.steps=100
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = "dit"  # dit: the text-to-video diffusion transformer | vae: the video compression network

  c.data = ml_collections.ConfigDict()
  c.data.name = "shapes"
  c.data.data_dir = "data/tfds"  # relative paths resolve against the working directory
  c.data.frames = 16
  c.data.height = 32
  c.data.width = 32
  c.data.num_train = 20_000
  c.data.num_test = 256
  c.data.max_objects = 1
  c.data.text_len = 96  # bytes of caption kept (plus a BOS token)
  c.data.num_workers = 0  # Grain worker processes; part of the checkpointed data contract
  # a latent DiT reads latents pre-encoded by `sora-jax encode-latents` from here ("" = encode
  # on the fly in the train step)
  c.data.latent_cache = ""
  # each of a training caption's colour and shape words is dropped with this probability
  # (captions.drop_attributes), so the model learns what each word alone asks for
  c.data.attribute_dropout = 0.0
  # how often training draws each caption register (short, plain, detailed); equal: uniform
  c.data.register_weights = (1.0, 1.0, 1.0)
  # clips listed this many times an epoch by shape (circle, square, triangle; data/mixture.py)
  c.data.shape_repeats = (1, 1, 1)

  c.model = ml_collections.ConfigDict()
  c.model.width = 384
  c.model.depth = 12
  c.model.num_heads = 6
  c.model.mlp_ratio = 4.0
  c.model.patch = (1, 4, 4)  # (pt, ph, pw)
  c.model.channels = 3
  c.model.text_width = 256
  c.model.text_depth = 2
  c.model.text_heads = 4
  # > 0: each word's bytes also get a hashed word embedding (that many buckets; fastText's trick)
  c.model.text_word_buckets = 0
  c.model.rope_theta = 10_000.0
  # add 3D sin-cos position features to the patch embedding (measured neutral on the tiny world)
  c.model.abs_pos = False
  # known frames as extra input channels: image-to-video, extension, infilling, connecting
  c.model.known_frames = False
  # the previous step's x0 estimate as extra input channels (self-conditioning, Chen et al. 2022)
  c.model.self_condition = False
  # width of a GELU layer between the last block and the output layer (0: none); with it, output
  # patches are no longer confined to a `width`-dim subspace (matters when a patch > width)
  c.model.head_hidden = 0
  # channels of 3x3 convs at full resolution after the output layer (0: none; models/pixel_head.py):
  # they see the noisy pixels and the coarse prediction, so edges inside a patch stay sharp
  c.model.pixel_head = 0
  c.model.pixel_head_layers = 3  # convs, the zero-initialised output conv included
  # training only (models/routing.py): blocks [start, end) see a random share `route_keep` of
  # each frame's tokens, the rest skip them (TREAD); () or route_keep 1 routes nothing. Sampling
  # routes nothing.
  c.model.route_blocks = ()
  c.model.route_keep = 0.5
  # U-ViT long skips (models/long_skips.py): deep block i also reads shallow block depth - 1 - i.
  # Off: the demo with them (dls, 2026-12-05) read held-out presence 0.81, shape 0.28, direction
  # 0.56 against 0.91-1.00, 0.31-0.38, 0.69-0.78 for the demo's own runs, and the quality
  # recipe at seed 0 (ls0) drew 7 of 20 squares, direction 0.86, against 10 and 0.89
  # (experiments/STUDIES.md, "Runs repeat on one machine")
  c.model.long_skips = False
  c.model.dtype = "float32"  # matmul / activation dtype
  c.model.param_dtype = "float32"
  # dense layers' matmul operands: float32 | bfloat16 (products accumulated in float32, as a
  # TPU's default precision does; 1.6-1.7x the steps a second of configs/shapes_quality.py on
  # this CPU's AMX units; models/precision.py)
  c.model.matmul_dtype = "float32"
  c.model.remat = False
  # self-attention: full | ulysses (sequence parallel over mesh.sequence: all-to-all over heads)
  c.model.attention = "full"
  # a trained VAE workdir (`sora-jax train-vae`): the DiT then denoises its latents, not pixels
  c.model.vae_workdir = ""

  c.vae = ml_collections.ConfigDict()  # the causal 3D VAE (task = "vae")
  c.vae.channels = 3
  c.vae.latent_channels = 16
  c.vae.factors = (4, 8, 8)  # (ft, fh, fw): 1 + 4k frames of H x W -> 1 + k latents of H/8 x W/8
  c.vae.widths = (64, 128, 256, 256)  # channels per resolution level: log2(fh) + 1 of them
  c.vae.blocks = 1  # residual blocks per level
  c.vae.stem = (1, 1, 1)  # (pt, ps, ps) patchify first, so every heavy layer runs coarse
  # channels of a SiLU layer before the decoder's output conv (0: none): with a stem, output
  # patches bigger than widths[0] need it to keep sharp edges
  c.vae.head_hidden = 0
  c.vae.pixel_head = 0  # channels of 3x3 convs sharpening the decoded clip (0: none; as model.*)
  c.vae.pixel_head_layers = 3
  c.vae.dtype = "float32"
  c.vae.param_dtype = "float32"
  c.vae.kl_weight = 1e-4  # on the per-element KL; small, so latents stay near-deterministic
  c.vae.l1_weight = 1.0
  c.vae.l2_weight = 1.0
  c.vae.stats_batches = 16  # batches whose latents give the stored per-channel shift and scale
  # Decoder tuning (train/latent_errors.py): start from a trained VAE (workdir or export), train
  # "all" of it or only the "decoder" (encoder, latent space and stats kept), and decode latents
  # with a denoiser's errors drawn per clip up to these sizes (normalised latent units).
  c.vae.init_from = ""
  c.vae.train_parts = "all"  # all | decoder
  c.vae.latent_blur = 0.0  # weight of the 3 x 3 neighbourhood mean, at most 1
  c.vae.latent_shrink = 0.0  # latents scaled by 1 - s, s at most this
  c.vae.latent_noise = 0.0  # std of added Gaussian noise
  c.vae.latent_clean_prob = 0.0  # share of clips decoded untouched

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.schedule = "cosine"  # cosine | linear | rectified_flow
  c.diffusion.shift = 1.0  # >1 moves time toward noise (resolution shift)
  c.diffusion.prediction = "v"  # v | eps | x0 | flow
  # none | x0 | min_snr | velocity | clipped_velocity (objectives.loss_weight)
  c.diffusion.loss_weighting = "min_snr"
  c.diffusion.min_snr_gamma = 5.0  # min_snr's clip of the SNR; clipped_velocity's of its weight
  c.diffusion.loss_norm = "l2"  # l2 | l1: regress to the posterior mean or median (objectives.py)
  c.diffusion.caption_dropout = 0.1
  # > 0: the loss counts positions where the clean clip is object (not its frame's background)
  # 1 + this times the rest, each frame's weights averaging 1 (objectives.object_weights)
  c.diffusion.object_weight = 0.0
  c.diffusion.object_threshold = 0.5  # RMS distance from the background that counts as object
  c.diffusion.frame_noise_corr = 0.0  # share of noise variance common to all frames of a clip
  # share of training clips whose frame groups (temporal patches) get independent noise levels
  c.diffusion.independent_time_prob = 0.0
  # share of training clips whose noise level is drawn at shift `second_shift` instead of `shift`
  # (the model's time is unchanged: only how often each level is trained)
  c.diffusion.second_shift_prob = 0.0
  c.diffusion.second_shift = 1.0
  # share of training clips given some frames clean (first / prefix / suffix / both ends);
  # needs model.known_frames
  c.diffusion.known_frames_prob = 0.0
  # relative frequency of the patterns first / prefix / suffix / both ends among those clips
  c.diffusion.known_frames_weights = (1.0, 1.0, 1.0, 1.0)
  # share of training steps that condition on the model's own first-pass estimate (zeros on the
  # others); used only with model.self_condition
  c.diffusion.self_condition_prob = 0.5
  # where that estimate comes from: 0, a first pass at the step's own noise level; k, a pass k
  # sampler steps (of sample.steps) earlier, taken one DDIM step down to x_t as sampling does
  c.diffusion.self_condition_lag = 0
  # a latent DiT's x0 estimate also judged in pixels, decoded by the frozen VAE, on the
  # `decoded_loss_clips` least noisy clips of each batch (train/decoded_loss.py); 0: off
  c.diffusion.decoded_loss_weight = 0.0
  c.diffusion.decoded_loss_clips = 4

  c.train = ml_collections.ConfigDict()
  c.train.steps = 100_000
  c.train.batch_size = 64
  c.train.lr = 3e-4
  c.train.min_lr_ratio = 0.1
  c.train.warmup_steps = 1_000
  c.train.weight_decay = 0.01
  c.train.b2 = 0.99
  c.train.grad_clip = 1.0
  # adamw, or muon: orthogonalised momentum on the hidden matrices, AdamW on the rest
  c.train.optimizer = "adamw"
  c.train.muon_ns_dtype = "float32"  # Muon's Newton-Schulz matmuls; bfloat16 on accelerators
  c.train.ema_decay = 0.999
  c.train.log_every = 50
  c.train.checkpoint_every = 1_000
  c.train.max_to_keep = 3
  # wall-clock minutes a `sora-jax train` call may take, setup and compile included (0: no limit):
  # past it the run checkpoints and stops like a preemption; calling again resumes it
  c.train.time_limit_minutes = 0.0
  # wall-clock minutes, from the call's start, to size the schedule to (0: train.steps as given):
  # the run times steps inside the warmup and sets train.steps to what fits, at most the value
  # given (train/budget.py); steps_fitted records that it did, so a resumed run keeps that count
  c.train.fit_minutes = 0.0
  c.train.steps_fitted = False
  # first frames of this many of the batch's clips also trained as images (T = 1) each step:
  # one model for images and videos; needs model.patch[0] = 1
  c.train.image_batch = 0

  c.sample = ml_collections.ConfigDict()
  c.sample.steps = 50
  c.sample.guidance = 4.0
  c.sample.eta = 0.0
  # > 1: each DDIM step passes on eps_hat / eps_scale (epsilon scaling against exposure bias)
  c.sample.eps_scale = 1.0
  # > 0: a further pass on each prompt without its guided_attributes words (comma-separated:
  # colour, shape) and this weight on the difference; for models trained with
  # data.attribute_dropout (sampling.guided)
  c.sample.attribute_guidance = 0.0
  c.sample.guided_attributes = "shape"
  # attributes dropped from both prompts of that difference (e.g. "colour": what "square" changes
  # in "a small square", where no colour pulls toward the shapes it was seen with)
  c.sample.contrast_without = ""
  # 0: all frames denoised together; L > 0: frame group k starts k / (K - 1) * L of the chain
  # later than group 0 (needs diffusion.independent_time_prob > 0 in training)
  c.sample.stagger = 0.0
  c.sample.use_ema = True  # sample the EMA parameters; False: the raw ones (pipeline.load)
  # draw the clip, keep its first frame, draw it again knowing it (needs model.known_frames)
  c.sample.first_frame_pass = False
  # that first frame drawn alone, as an image (a model trained with train.image_batch > 0)
  c.sample.draft_image = False
  # rewrite prompts in the detailed register (captions.expand_prompt) before the model reads them
  c.sample.expand_prompts = False
  # autoguidance (sampling.autoguided): pred + w (pred - pred of a worse model), the worse model
  # being checkpoint `guide_step` of the same run (0: none; `--guide_workdir` takes another run)
  c.sample.autoguidance = 0.0
  c.sample.guide_step = 0
  # a VAE to decode (and encode) with instead of model.vae_workdir's: one whose decoder was tuned
  # on the same encoder (`vae.train_parts = "decoder"`), so the latent stats must match
  c.sample.vae_workdir = ""
  # best-of-N (diffusion/rerank.py): draw this many clips a prompt and keep the one the model
  # itself scores most the prompt's (denoising error told nothing minus told the prompt, over
  # rerank_levels noise levels); 1: one draw. N chains a prompt, then 2 x rerank_levels model
  # passes a candidate (twice that with self-conditioning)
  c.sample.candidates = 1
  c.sample.rerank_levels = 16
  # scored against no text ("pmi") or the prompt with each other shape word ("shape_margin")
  c.sample.rerank_score = "pmi"
  # with the first-frame pass: rank the drafts whose frame 0 the clip keeps, not finished clips
  c.sample.rerank_draft = False

  c.eval = ml_collections.ConfigDict()
  c.eval.num_prompts = 16
  c.eval.seeds = 1

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: all devices not taken by the other axes
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  c.mesh.sequence = 1
  # logical axis name -> mesh axis (or axes); the only place this mapping lives.
  c.mesh.rules = (
      ("batch", ("data", "fsdp")),
      ("embed", "fsdp"),
      ("mlp", "tensor"),
      ("heads", "tensor"),
      ("kv", None),
      ("vocab", None),
      ("patch", None),
      ("tokens", "sequence"),
      ("text_tokens", None),
      ("conv_in", None),
      ("conv_out", None),
  )
  return c
